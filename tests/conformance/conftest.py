"""Options and session fixtures of the conformance suite.

``--update-golden`` rewrites ``tests/golden/<backend>/<case>/`` from the current compilers
instead of comparing against them (review the result with ``git diff tests/golden``).
"""

from __future__ import annotations

from collections.abc import Callable
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


@pytest.fixture(scope="session")
def airflow_batches(request: pytest.FixtureRequest) -> Callable[[str, str], list[dict[str, Any]]]:
    """``get(group, case)``: the harness results of one case, running its whole batch (every
    case of that xdist group) in one child process on first use, so Airflow starts once per
    batch. The batch's tests share an ``xdist_group``, so one worker runs each batch."""
    from tests.conformance.targets import airflow_batch
    from tests.conformance.test_conformance import airflow_group_cases, compiled_files

    done: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def get(group: str, case: str) -> list[dict[str, Any]]:
        if group not in done:
            env = request.getfixturevalue("airflow_env")
            cases = [(c, compiled_files(c.name, "airflow")) for c in airflow_group_cases(group)]
            done[group] = airflow_batch(cases, env.dags)
        return done[group][case]

    return get
