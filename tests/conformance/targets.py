"""How the conformance suite compiles for and executes on each target.

Each target gets one :class:`Target`: the settings its compile stage uses (fixed, portable
values, so golden files hold no machine paths), and how its local executor runs a case:

* ``local``: the simulator (:func:`pipecast.simulator.run_pipeline`);
* ``stepfunctions``: moto with the callback worker (``sfn_helpers.run_in_moto``);
* ``vertex``: ``kfp.local`` with the pipecast runtime (``kfp_local.run_local``);
* ``airflow``: ``dag.test()`` in one child process per batch of cases (``af_helpers.run_dags``);
* ``azureml``: no local executor exists; its stage (c) is the graph-equivalence check
  (``azml_helpers.graph_problems``): every job, binding, condition and loop maps one to one
  onto the IR.

The backends' own test helpers are reused, never copied.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.conformance.catalogue import CASES_DIR, Case

ROLE = "arn:aws:iam::123456789012:role/pipecast-conformance"
IMAGE = "python:3.11-slim"

#: Settings of the compile stage (and of execution, except Step Functions, whose helper
#: compiles with a fresh queue and bucket per run). Stable values: they end up in goldens.
SETTINGS: dict[str, dict[str, Any]] = {
    "local": {},
    "stepfunctions": {
        "compute": "callback",
        "queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/pipecast-conformance",
        "artifact_root": "s3://pipecast-conformance/runs",
        "role_arn": ROLE,
        "default_image": IMAGE,
    },
    "vertex": {"image": IMAGE, "pipeline_root": "gs://pipecast-conformance/runs"},
    "azureml": {
        "serverless": True,
        "image": "example.azurecr.io/steps:1",
        "key_vault_url": "https://kv-test.vault.azure.net",
    },
    "airflow": {},
}


def settings_for(backend: str, case: Case) -> dict[str, Any]:
    """The compile settings of one (case, backend)."""
    settings = dict(SETTINGS.get(backend, {}))
    if backend == "vertex" and case.secrets:
        # kfp.local has no Google Secret Manager: the runtime reads PIPECAST_SECRET_<NAME>.
        settings["secret_store"] = "env"
    return settings


def secret_env(secrets: dict[str, str]) -> dict[str, str]:
    """``PIPECAST_SECRET_<NAME>`` variables (the runtime's ``env`` secret store)."""
    return {"PIPECAST_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", k).upper(): v for k, v in secrets.items()}


# ------------------------------------------------------------------------------ executors


def run_local(case: Case, loaded: Any, tmp: Path) -> list[dict[str, Any]]:
    from pipecast.simulator import run_pipeline

    return [
        run_pipeline(
            loaded,
            params=run.params,
            run_dir=tmp / f"runs{i}",
            containers="host",
            secrets=case.secrets,
            max_parallel=4,
            seed=1,
        )
        for i, run in enumerate(case.runs)
    ]


def run_stepfunctions(case: Case) -> list[dict[str, Any]]:
    import boto3
    from sfn_helpers import run_in_moto

    if case.secrets:
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        for name, value in case.secrets.items():
            try:
                sm.create_secret(Name=name, SecretString=value)
            except sm.exceptions.ResourceExistsException:
                sm.put_secret_value(SecretId=name, SecretString=value)
    return [run_in_moto(case.path, run.params, timeout=120) for run in case.runs]


def run_vertex(case: Case, files: dict[str, str], tmp: Path, monkeypatch: Any) -> list[dict[str, Any]]:
    from kfp_local import run_local as kfp_run

    (rel,) = [r for r in files if r.endswith((".yaml", ".json")) and ".schedule" not in r]
    spec = tmp / Path(rel).name
    spec.write_text(files[rel], encoding="utf-8")
    records = []
    for i, run in enumerate(case.runs):
        work = tmp / f"run{i}"
        work.mkdir()
        records.append(
            kfp_run(spec, run.params, work, monkeypatch, [CASES_DIR], env=secret_env(case.secrets))
        )
    return records


def airflow_batch(cases: list[tuple[Case, dict[str, str]]], dags: Path) -> dict[str, list[dict[str, Any]]]:
    """Run several cases' DAGs in one child process (Airflow's start-up paid once).

    Returns:
        case name → one harness result per run (``import_errors``, ``state``, ``tasks``).
    """
    from af_helpers import place, run_dags

    jobs: list[dict[str, Any]] = []
    keys: list[str] = []
    env = {"PIPECAST_PYTHON_PATH": str(CASES_DIR)}
    for case, files in cases:
        ((rel, text),) = files.items()
        path = place(dags, Path(rel).name, text)
        for name, value in case.secrets.items():
            env[f"AIRFLOW_VAR_{name.upper()}"] = value
        dag_id = _dag_id(text)
        for run in case.runs:
            jobs.append({"file": str(path), "dag_id": dag_id, "conf": run.params or {}})
            keys.append(case.name)
    out: dict[str, list[dict[str, Any]]] = {}
    for key, result in zip(keys, run_dags(dags, jobs, env), strict=True):
        out.setdefault(key, []).append(result)
    return out


def _dag_id(text: str) -> str:
    match = re.search(r"dag_id=(['\"])(.+?)\1", text)
    assert match, "no dag_id in the generated DAG file"
    return match.group(2)
