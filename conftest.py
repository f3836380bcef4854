"""Session-wide fixtures shared by the core tests, the backends' tests and the conformance suite.

One moto server and one Airflow home per test session keep the suite inside its CI budget.
Every installed backend's name is a pytest marker (``-m <backend>``), and every
``backends/<name>/tests`` folder is importable, so a new backend needs no line here.
"""

import sys
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures.moto_server", "tests.fixtures.airflow_env"]

for _tests in sorted(Path(__file__).parent.glob("backends/*/tests")):
    if str(_tests) not in sys.path:
        sys.path.append(str(_tests))


def pytest_configure(config: pytest.Config) -> None:
    from pipecast import registry

    for name in registry.available():
        config.addinivalue_line("markers", f"{name}: the {name} backend")
