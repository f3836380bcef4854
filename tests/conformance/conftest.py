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
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "conformance-batches"


@pytest.fixture(scope="session")
def batched_records(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str, int, str], list[dict[str, Any]] | None]:
    """``get(backend, batch, case)``: the run records of one case of a batched backend
    (``Conformance.batches``).

    The first request for a batch runs all its cases through ``Conformance.execute_many``
    (the engine starts once per batch) and stores the records in a folder shared by the
    xdist workers, under a file lock: whichever worker asks first runs the batch, the others
    read it. (xdist's ``loadgroup`` cannot pin tests to a worker under pytest 9, hence the lock.)
    """
    from tests.conformance.test_conformance import batch_cases, hooks, job

    shared = _shared_dir(tmp_path_factory)
    shared.mkdir(parents=True, exist_ok=True)
    done: dict[tuple[str, int], dict[str, list[dict[str, Any]] | None]] = {}

    def get(backend: str, batch: int, case: str) -> list[dict[str, Any]] | None:
        if (backend, batch) not in done:
            results = shared / f"{backend}-{batch}.json"
            with (shared / f"{backend}-{batch}.lock").open("w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not results.exists():
                    conf = hooks(backend)
                    fixtures = {f: request.getfixturevalue(f) for f in conf.fixtures}
                    names = batch_cases(backend, batch)
                    work = tmp_path_factory.mktemp(f"{backend}-{batch}")
                    jobs = [job(n, backend, work / n, fixtures) for n in names]
                    for j in jobs:
                        j.work.mkdir()
                    records = conf.execute_many(jobs)
                    results.write_text(json.dumps(dict(zip(names, records, strict=True))), encoding="utf-8")
                done[backend, batch] = json.loads(results.read_text(encoding="utf-8"))
        return done[backend, batch][case]

    return get
