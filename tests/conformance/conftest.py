"""Options and session fixtures of the conformance suite.

``--update-golden`` rewrites ``tests/golden/<backend>/<case>/`` from the current compilers
instead of comparing against them (review the result with ``git diff tests/golden``).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden from the current compilers instead of comparing",
    )


@pytest.fixture(scope="session")
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden", default=False))


def _shared_dir(factory: pytest.TempPathFactory) -> Path:
    """A folder every xdist worker of this session sees (the session's base temp)."""
    base = factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "conformance-airflow"


@pytest.fixture(scope="session")
def airflow_batches(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str, str], list[dict[str, Any]]]:
    """``get(batch, case)``: the ``dag.test()`` results of one case.

    The first request for a batch runs all its cases in one child process (Airflow starts
    once per batch) and stores the results in a folder shared by the xdist workers, under a
    file lock: whichever worker asks first runs the batch, the others read it. (xdist's
    ``loadgroup`` cannot pin tests to a worker under pytest 9, hence the lock.)
    """
    from tests.conformance.targets import airflow_batch
    from tests.conformance.test_conformance import airflow_batch_cases, compiled_files

    shared = _shared_dir(tmp_path_factory)
    shared.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def get(batch: str, case: str) -> list[dict[str, Any]]:
        if batch not in done:
            results = shared / f"{batch}.json"
            with (shared / f"{batch}.lock").open("w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not results.exists():
                    env = request.getfixturevalue("airflow_env")
                    cases = [(c, compiled_files(c.name, "airflow")) for c in airflow_batch_cases(batch)]
                    results.write_text(json.dumps(airflow_batch(cases, env.dags)), encoding="utf-8")
                done[batch] = json.loads(results.read_text(encoding="utf-8"))
        return done[batch][case]

    return get
