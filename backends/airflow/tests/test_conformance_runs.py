"""Conformance cases under ``dag.test()``, compared with their hand-written expectations.

This file is the per-case loop only (the shared suite in ``tests/conformance`` runs the same
cases on every backend): delete it once that suite covers Airflow's executions. The
Airflow-specific execution tests live in ``test_execution.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from af_helpers import CASES, STATES, compile_file, place, run_dags, step_view

pytestmark = pytest.mark.airflow

#: Cases that run on Airflow with operator 'python' (container steps run on the worker host).
RUN_CASES = [
    "linear",
    "diamond",
    "after",
    "non_series_parallel",
    "param_types",
    "output_types",
    "artifacts",
    "env",
    "secrets",
    "container",
    "retry_recovers",
    "retry_exhausted",
    "timeout",
    "when_true",
    "when_false",
    "else_outputs",
    "for_each",
    "when_in_for_each",
    "finally_success",
    "finally_failure",
    "schedule",
]


def _expected(name: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    from tests.conformance.catalogue import load_case

    case = load_case(name)
    runs = [{"params": r.params, "status": r.status, "steps": r.steps} for r in case.runs]
    return runs, case.secrets


def _jobs() -> list[tuple[str, int, dict[str, Any]]]:
    out = []
    for name in RUN_CASES:
        runs, _ = _expected(name)
        for i, run in enumerate(runs):
            out.append((name, i, run))
    return out


@pytest.fixture(scope="module")
def results(airflow_env) -> dict[tuple[str, int], dict]:
    jobs, keys, env = [], [], {}
    for name in RUN_CASES:
        file_name, text = compile_file(CASES / f"{name}.yaml")
        path = place(airflow_env.dags, file_name, text)
        runs, secrets = _expected(name)
        for var_name, value in secrets.items():
            env[f"AIRFLOW_VAR_{var_name.upper()}"] = value
        dag_id = name.replace("_", "-")
        for i, run in enumerate(runs):
            jobs.append({"file": str(path), "dag_id": dag_id, "conf": run.get("params") or {}})
            keys.append((name, i))
    return dict(zip(keys, run_dags(airflow_env.dags, jobs, env), strict=True))


@pytest.mark.parametrize(("name", "run", "expected"), _jobs(), ids=lambda v: str(v)[:20])
def test_runs_like_the_expectation(results, name, run, expected):
    result = results[(name, run)]
    assert result["import_errors"] == {}
    want_status = {"succeeded": "success", "failed": "failed"}[expected["status"]]
    assert result["state"] == want_status, result["tasks"]
    steps = step_view(result["tasks"])
    for key, want in expected.get("steps", {}).items():
        if key not in steps:
            continue  # a group's own entry: Airflow has tasks only
        got = steps[key]
        assert STATES[got["state"]] == want["status"], (key, got)
        if "attempts" in want:
            assert got["tries"] == want["attempts"], (key, got)
        for out_name, value in (want.get("outputs") or {}).items():
            assert got["xcom"][out_name] == value, (key, got)
