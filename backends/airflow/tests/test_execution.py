"""Generated DAG files load in a DagBag and run under ``dag.test()`` with the expected results.

Expectations are the conformance cases' hand-written ``*.expected.yaml`` (the simulator's
semantics, SPEC §12). All DAGs run in one child process to keep Airflow start-up paid once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from af_helpers import CASES, compile_file, place, run_dags

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
STATES = {
    "success": "succeeded",
    "failed": "failed",
    "skipped": "skipped",
    "upstream_failed": "not_run",
    "None": "not_run",
}


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
    hostile = Path(__file__).parent / "pipelines" / "hostile.yaml"
    file_name, text = compile_file(hostile)
    jobs.append(
        {"file": str(place(airflow_env.dags, file_name, text)), "dag_id": "hostile-values", "conf": {}}
    )
    keys.append(("hostile", 0))
    return dict(zip(keys, run_dags(airflow_env.dags, jobs, env), strict=True))


def test_hostile_values_come_back_unchanged(results):
    from pipecast.api import load_checked

    result = results[("hostile", 0)]
    assert result["import_errors"] == {} and result["state"] == "success"
    pipeline = load_checked(Path(__file__).parent / "pipelines" / "hostile.yaml").pipeline
    got = result["tasks"]["echo_it"]["xcom"]["output"]
    assert got == {
        "value": pipeline.params["text"].default,
        "blob": pipeline.params["blob"].default,
        "fixed": pipeline.steps["echo_it"].inputs["fixed"],
    }


def test_structure_when(results):
    tasks = results[("when_true", 0)]["structure"]
    assert tasks["gate-condition"]["operator"] == "BranchPythonOperator"
    assert tasks["gate-condition"]["upstream"] == ["score"]
    assert tasks["deploy"]["upstream"] == ["gate-condition"]
    assert tasks["gate-join"] == {
        "upstream": ["deploy", "gate-condition"],
        "retries": 0,
        "trigger_rule": "none_failed_min_one_success",
        "operator": "EmptyOperator",
    }
    assert tasks["after_gate"]["upstream"] == ["gate-join"]


def test_structure_retries_and_finally(results):
    assert results[("retry_recovers", 0)]["structure"]["flaky"]["retries"] == 2
    tasks = results[("finally_failure", 0)]["structure"]
    assert tasks["finally"]["trigger_rule"] == "all_done"
    assert tasks["finally"]["upstream"] == ["broken", "later", "ok"]
    assert tasks["pipeline-status"] == {
        "upstream": ["finally"],
        "retries": 0,
        "trigger_rule": "all_done",
        "operator": "PythonOperator",
    }


def test_structure_for_each(results):
    tasks = results[("for_each", 0)]["structure"]
    assert tasks["fan.sq"]["upstream"] == ["fan-items"]  # the mapped group expands over it
    assert tasks["fan-done"]["upstream"] == ["fan-items", "fan.sq"]
    assert tasks["fan-done"]["trigger_rule"] == "none_failed_min_one_success"
    assert tasks["sum"]["upstream"] == ["fan-done"]


def _step_view(tasks: dict[str, dict]) -> dict[str, dict]:
    """Airflow task instances keyed like the run record: ``step`` / ``step[i]``."""
    out = {}
    for key, ti in tasks.items():
        base, _, index = key.partition("[")
        name = base.rsplit(".", 1)[-1]
        if "-" in name:
            continue  # pipecast's helper tasks (conditions, joins, items, status)
        out[name + (f"[{index}" if index else "")] = ti
    return out


@pytest.mark.parametrize(("name", "run", "expected"), _jobs(), ids=lambda v: str(v)[:20])
def test_runs_like_the_simulator(results, name, run, expected):
    result = results[(name, run)]
    assert result["import_errors"] == {}
    want_status = {"succeeded": "success", "failed": "failed"}[expected["status"]]
    assert result["state"] == want_status, result["tasks"]
    steps = _step_view(result["tasks"])
    for key, want in expected.get("steps", {}).items():
        if key not in steps:
            continue  # a group's own entry: Airflow has tasks only
        got = steps[key]
        assert STATES[got["state"]] == want["status"], (key, got)
        if "attempts" in want:
            assert got["tries"] == want["attempts"], (key, got)
        for out_name, value in (want.get("outputs") or {}).items():
            assert got["xcom"][out_name] == value, (key, got)
