"""Deploy through ``kfp.Client`` against a local server speaking the KFP v2beta1 REST shapes
(recorded exchanges in ``fixtures/``), asserting every request the client sends."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubeflow_api import KfpApi

from pipecast import registry
from pipecast.api import compile_pipeline, load_checked
from pipecast.diagnostics import UserError

pytestmark = [pytest.mark.kubeflow, pytest.mark.filterwarnings("ignore::FutureWarning")]

ROOT = Path(__file__).resolve().parents[3]
CHURN = ROOT / "examples/churn/pipeline.yaml"


def _deploy(settings: dict[str, Any], **options: Any) -> tuple[dict[str, Any], str]:
    backend = registry.get("kubeflow")
    model = backend.settings_model.model_validate({"image": "python:3.11-slim", **settings})
    loaded = load_checked(CHURN)
    files = compile_pipeline(loaded, "kubeflow", model).files
    return backend.deploy(loaded.pipeline, files, model, **options), files["churn-training.yaml"]


def test_new_pipeline_is_uploaded_scheduled_and_run_to_a_run_record() -> None:
    with KfpApi("new_pipeline") as api:
        outcome, spec = _deploy(
            {
                "host": api.url,
                "namespace": "team-ml",
                "experiment": "churn",
                "pipeline_root": "minio://mlpipeline/runs",
                "service_account": "pipeline-runner",
                "poll_interval": 0.01,
            },
            run=True,
            params={"dry": True, "regions": ["us"]},
        )
    assert api.problems == [] and api.unconsumed == []
    assert api.uploads == [spec]  # both documents: PipelineSpec and PlatformSpec
    assert "\nplatforms:\n" in spec
    run = api.requests[7]["body"]
    assert run["display_name"].startswith("churn-training-")
    assert {k: v for k, v in outcome.items() if k != "run"} == {
        "pipeline_id": "p-1",
        "version_id": "v-1",
        "experiment_id": "e-1",
        "recurring_run_id": "r-1",
    }
    record = outcome["run"]
    assert record["status"] == "succeeded"
    assert record["params"]["dry"] is True and record["params"]["regions"] == ["us"]
    steps = {k: (v["status"], v.get("attempts")) for k, v in record["steps"].items()}
    assert steps == {
        "ingest": ("succeeded", 1),
        "per_region": ("succeeded", None),
        "train[0]": ("succeeded", 2),
        "train[1]": ("succeeded", 1),
        "evaluate": ("succeeded", 1),
        "publish": ("succeeded", None),
        "register": ("skipped", None),
        "alert": ("succeeded", 1),
        "finally": ("succeeded", 1),
    }
    assert record["steps"]["ingest"]["started"] == "2026-12-06T10:00:01+00:00"
    assert record["ended"] == "2026-12-06T10:02:00+00:00"


def test_existing_pipeline_gets_a_new_version_and_one_recurring_run() -> None:
    backend = registry.get("kubeflow")
    model = backend.settings_model.model_validate({"image": "python:3.11-slim"})
    spec = compile_pipeline(load_checked(CHURN), "kubeflow", model).files["churn-training.yaml"]
    version = "churn-training-" + hashlib.sha256(spec.encode()).hexdigest()[:12]
    with KfpApi("existing_pipeline", {"VERSION_NAME": version}) as api:
        outcome, _ = _deploy({"host": api.url})
    assert api.problems == [] and api.unconsumed == []
    assert api.uploads == [spec]
    assert outcome == {
        "pipeline_id": "p-1",
        "version_id": "v-2",
        "experiment_id": "e-1",
        "recurring_run_id": "r-2",
    }
    assert ("DELETE", "/apis/v2beta1/recurringruns/r-1") in [(r["method"], r["path"]) for r in api.requests]


def test_deploy_needs_a_host_and_no_placeholders() -> None:
    backend = registry.get("kubeflow")
    loaded = load_checked(CHURN)
    model = backend.settings_model.model_validate({"image": "python:3.11-slim"})
    files = compile_pipeline(loaded, "kubeflow", model).files
    with pytest.raises(UserError, match="kubeflow deploy needs host"):
        backend.deploy(loaded.pipeline, files, model)
    model = backend.settings_model.model_validate({"host": "http://127.0.0.1:9"})
    spec = load_checked(ROOT / "tests/conformance/cases/secrets.yaml")
    files = compile_pipeline(spec, "kubeflow", model).files
    with pytest.raises(UserError, match="placeholder '<set image>'"):
        backend.deploy(spec.pipeline, files, model)


def test_cli_deploy_prints_the_outcome(tmp_path: Path) -> None:
    with KfpApi("new_pipeline") as api:
        settings = tmp_path / "kubeflow.yaml"
        settings.write_text(
            json.dumps(
                {
                    "host": api.url,
                    "namespace": "team-ml",
                    "experiment": "churn",
                    "pipeline_root": "minio://mlpipeline/runs",
                    "service_account": "pipeline-runner",
                    "image": "python:3.11-slim",
                    "poll_interval": 0.01,
                }
            )
        )
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipecast",
                "deploy",
                str(CHURN),
                "--target",
                "kubeflow",
                "--settings",
                str(settings),
                "--param",
                "dry=true",
                "--param",
                'regions=["us"]',
                "--run",
                "--json",
            ],
            capture_output=True,
            text=True,
        )
    assert proc.returncode == 0, proc.stderr
    outcome = json.loads(proc.stdout)  # kfp.Client's own prints stay out of stdout
    assert outcome["recurring_run_id"] == "r-1"
    assert outcome["run"]["status"] == "succeeded"
    assert outcome["run"]["steps"]["train[0]"]["attempts"] == 2
    assert api.problems == [] and api.unconsumed == []


def test_run_record_of_a_failed_run() -> None:
    """A failed task fails the record; tasks the server never listed did not start."""
    from pipecast_kubeflow.deploy import run_record

    loaded = load_checked(CHURN)
    run = {
        "run_id": "run-2",
        "state": "FAILED",
        "run_details": {
            "task_details": [
                {"task_id": "t1", "display_name": "pipeline--body", "state": "FAILED"},
                {
                    "task_id": "t2",
                    "display_name": "ingest",
                    "parent_task_id": "t1",
                    "state": "FAILED",
                    "state_history": [{"state": "RUNNING"}, {"state": "FAILED"}] * 3,
                },
                {"task_id": "t3", "display_name": "finally", "state": "SUCCEEDED"},
            ]
        },
    }
    record = run_record(loaded.pipeline, {}, run)
    assert record["status"] == "failed"
    assert record["steps"]["ingest"] == {"status": "failed", "attempts": 3}
    assert record["steps"]["train"] == {"status": "not_run"}
    assert record["steps"]["per_region"] == {"status": "not_run"}
    assert record["steps"]["finally"]["status"] == "succeeded"


def test_unreachable_api_is_a_user_error(tmp_path: Path) -> None:
    settings = tmp_path / "kubeflow.yaml"
    # With a namespace kfp.Client skips its healthz probe (5 attempts, 5 s apart).
    settings.write_text(
        json.dumps({"host": "http://127.0.0.1:9", "namespace": "ml", "image": "python:3.11-slim"})
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipecast",
            "deploy",
            str(CHURN),
            "--target",
            "kubeflow",
            "--settings",
            str(settings),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "cannot reach the KFP API at http://127.0.0.1:9" in proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
