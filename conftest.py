"""Session-wide fixtures shared by the core tests, the backends' tests and the conformance suite.

One moto server and one Airflow home per test session keep the suite inside its CI budget.
"""

pytest_plugins = ["tests.fixtures.moto_server", "tests.fixtures.airflow_env"]
