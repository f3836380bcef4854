"""Execute compiled state machines in moto (compute=callback) with the real ``pipecast worker``.

Every pipeline is deployed through the backend's own ``deploy`` (state machine, step specs on
S3), all executions start at once and one worker subprocess serves them all, so the file
costs about as much as its slowest pipeline. Each run record is rebuilt from the execution
history by the backend and compared with the simulator's record of the same pipeline. The
conformance cases run in ``tests/conformance`` (``-m stepfunctions``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sfn_helpers import BACKEND, REPO, ROLE, compile_file, shared_once

pytestmark = [pytest.mark.stepfunctions, pytest.mark.slow]

EXAMPLES = ["churn", "containers", "dataeng", "sweep"]
RERUN = "dataeng"  # has artifacts
#: Run-time parameters of an example: churn reads its base dataset, whose default is a
#: remote URI; the worker and the simulator read the shipped copy (absolute: the worker's
#: working folder is not the pipeline's).
PARAMS: dict[str, dict[str, Any]] = {
    "churn": {"data_uri": str(REPO / "examples" / "churn" / "data" / "customers.csv")}
}
TIMEOUT = 120.0


def _runs() -> list[tuple[str, Path, dict[str, Any]]]:
    """(label, pipeline file, params) of every execution this file checks."""
    out = [
        (f"example:{name}", REPO / "examples" / name / "pipeline.yaml", PARAMS.get(name, {}))
        for name in EXAMPLES
    ]
    # A second execution of one machine: each execution must get its own artifact prefix.
    out.append((f"rerun:{RERUN}", REPO / "examples" / RERUN / "pipeline.yaml", {}))
    return out


@pytest.fixture(scope="module")
def records(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Deploy and run every pipeline concurrently; the run records by label (plus the
    simulator's records of the examples, computed while moto runs)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", moto_server)
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.delenv("AWS_PROFILE", raising=False)
        # Deployed and executed once per session, whichever xdist worker gets here first.
        yield shared_once(tmp_path_factory, "sfn-execute", lambda: _run_all(tmp_path_factory))


def _run_all(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import boto3
    from pipecast_stepfunctions.deploy import TERMINAL, history
    from pipecast_stepfunctions.record import run_record

    from pipecast.api import load_checked
    from pipecast.simulator import run_pipeline

    tag = uuid.uuid4().hex[:8]
    sqs = boto3.client("sqs", region_name="us-east-1")
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    queue = sqs.create_queue(QueueName=f"pipecast-exec-{tag}")["QueueUrl"]
    bucket = f"pipecast-exec-{tag}"
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=bucket)
    started: dict[str, tuple[str, Any, dict[str, Any]]] = {}
    deployed: dict[Path, tuple[Any, dict[str, Any], str]] = {}
    for label, path, params in _runs():
        if path not in deployed:
            loaded, result, s = compile_file(
                path,
                compute="callback",
                queue_url=queue,
                artifact_root=f"s3://{bucket}/runs",
                role_arn=ROLE,
                name_prefix=f"x{tag}-",
            )
            out = BACKEND.deploy(loaded.pipeline, result.files, s)
            deployed[path] = (loaded, json.loads(result.files["deploy.json"]), out["arn"])
        loaded, manifest, arn = deployed[path]
        run_name = f"{label.replace(':', '-').replace('_', '-')}-{tag}"
        ex = sfn.start_execution(stateMachineArn=arn, name=run_name, input=json.dumps(params))
        started[label] = (ex["executionArn"], loaded, manifest)

    python_path = [REPO / "examples" / n for n in EXAMPLES]
    workdir = tmp_path_factory.mktemp("worker")
    worker = subprocess.Popen(
        [sys.executable, "-m", "pipecast.runtime", "worker", "--queue-url", queue, "--wait", "1"]
        + ["--concurrency", "12", "--heartbeat", "5", "--containers", "host"]
        + [a for p in python_path for a in ("--python-path", str(p))],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(map(str, python_path))},
        cwd=str(workdir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    simulated: dict[str, Any] = {}
    try:
        sim_root = tmp_path_factory.mktemp("sim")
        for name in EXAMPLES:
            example = load_checked(REPO / "examples" / name / "pipeline.yaml")
            simulated[name] = run_pipeline(
                example, params=PARAMS.get(name), run_dir=sim_root, containers="host"
            )
        out: dict[str, Any] = {}
        deadline = time.monotonic() + TIMEOUT
        pending = dict(started)
        while pending and time.monotonic() < deadline:
            for label, (arn, loaded, manifest) in list(pending.items()):
                desc = sfn.describe_execution(executionArn=arn)
                if desc["status"] in TERMINAL:
                    out[label] = run_record(loaded.pipeline, manifest, desc, history(sfn, arn))
                    del pending[label]
            time.sleep(0.3)
    finally:
        worker.terminate()
        try:
            _, err = worker.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            _, err = worker.communicate()
    assert not pending, f"executions still running after {TIMEOUT}s: {sorted(pending)}\n{err[-3000:]}"
    return {"records": out, "simulated": simulated, "worker_log": err, "bucket": bucket}


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    """Statuses and parameter outputs of every step, and the final status. Artifact URIs
    (file:// for the simulator, s3:// here) and times differ by design."""

    def values(outputs: dict[str, Any] | None) -> dict[str, Any]:
        return {
            k: v
            for k, v in (outputs or {}).items()
            if not (isinstance(v, str) and v.startswith(("s3://", "file://", "/")))
            and not (isinstance(v, list) and v and all(isinstance(x, str) and "://" in x for x in v))
        }

    return {
        "status": record["status"],
        "outputs": values(record.get("outputs")),
        "steps": {
            k: {"status": v["status"], "outputs": values(v.get("outputs"))}
            for k, v in record["steps"].items()
        },
    }


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_matches_simulator(records: dict[str, Any], name: str) -> None:
    ours = _comparable(records["records"][f"example:{name}"])
    theirs = _comparable(records["simulated"][name])
    diff = [
        f"{k}: stepfunctions {ours['steps'].get(k)} != simulator {theirs['steps'].get(k)}"
        for k in sorted(set(ours["steps"]) | set(theirs["steps"]))
        if ours["steps"].get(k) != theirs["steps"].get(k)
    ]
    if ours["status"] != theirs["status"] or ours["outputs"] != theirs["outputs"]:
        diff.append(
            f"status/outputs: {ours['status']} {ours['outputs']} != {theirs['status']} {theirs['outputs']}"
        )
    assert not diff, "\n".join(diff)
    # Artifacts are S3 objects under <root>/<pipeline>/<execution name>/<step>/...
    rec = records["records"][f"example:{name}"]
    uris = [
        v
        for e in rec["steps"].values()
        for v in (e.get("outputs") or {}).values()
        if isinstance(v, str) and v.startswith("s3://")
    ]
    for uri in uris:
        assert uri.startswith(f"s3://{records['bucket']}/runs/{rec['pipeline']}/{rec['run_id']}/"), uri


def test_each_execution_gets_its_own_artifact_prefix(records: dict[str, Any]) -> None:
    """moto leaves $$.Execution.Name empty: the run id comes from the execution ARN, so two
    executions of one machine never share artifacts."""
    run_ids = [r["run_id"] for r in records["records"].values()]
    assert all(run_ids) and len(set(run_ids)) == len(run_ids)
    for label in (f"example:{RERUN}", f"rerun:{RERUN}"):
        rec = records["records"][label]
        uris = [
            v
            for e in rec["steps"].values()
            for v in (e.get("outputs") or {}).values()
            if isinstance(v, str) and v.startswith("s3://")
        ]
        assert uris and all(f"/{rec['run_id']}/" in u for u in uris), (label, uris)


def test_deploy_is_idempotent(aws_env: str) -> None:
    import boto3

    tag = uuid.uuid4().hex[:8]
    path = REPO / "tests/conformance/cases/schedule.yaml"
    loaded, result, s = compile_file(
        path,
        compute="callback",
        queue_url=f"https://sqs.us-east-1.amazonaws.com/123456789012/q{tag}",
        artifact_root=f"s3://pipecast-idem-{tag}/runs",
        role_arn=ROLE,
        name_prefix=f"i{tag}-",
    )
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=f"pipecast-idem-{tag}")
    first = BACKEND.deploy(loaded.pipeline, result.files, s)
    second = BACKEND.deploy(loaded.pipeline, result.files, s)
    assert [v["action"] for v in first["state_machines"].values()] == ["created"]
    assert [v["action"] for v in second["state_machines"].values()] == ["updated"]
    assert (first["schedule"], second["schedule"]) == ("created", "updated")
    assert first["arn"] == second["arn"]
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    names = [
        m["name"] for m in sfn.list_state_machines()["stateMachines"] if m["name"].startswith(f"i{tag}-")
    ]
    assert len(names) == 1
    scheduler = boto3.client("scheduler", region_name="us-east-1")
    schedules = [x for x in scheduler.list_schedules()["Schedules"] if x["Name"].startswith(f"i{tag}-")]
    assert len(schedules) == 1
    assert schedules[0]["Target"]["Arn"] == first["arn"]


def test_batch_job_command_reads_its_spec_from_s3(aws_env: str, tmp_path: Path) -> None:
    """moto cannot run Batch jobs, so run the job definition's own command the way Batch
    would (``Ref::`` placeholders replaced by the task's parameters) against moto's S3: the
    runtime reads ``--spec @s3://...`` uploaded by deploy and writes the result object."""
    import boto3

    tag = uuid.uuid4().hex[:8]
    bucket = f"pipecast-batch-{tag}"
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    _loaded, result, _s = compile_file(
        REPO / "tests/conformance/cases/linear.yaml",
        compute="batch",
        artifact_root=f"s3://{bucket}/runs",
        role_arn=ROLE,
        default_image="python:3.11-slim",
    )
    manifest = json.loads(result.files["deploy.json"])
    for rel, uri in manifest["specs"].items():  # what deploy uploads
        key = uri.split("/", 3)[3]
        s3.put_object(Bucket=bucket, Key=key, Body=result.files[rel].encode())
    definition = json.loads(result.files["linear.asl.json"])
    submit = next(
        st
        for st in definition["States"].values()
        if st.get("Resource", "").endswith("submitJob.sync") and st["Parameters"]["JobName"] == "b"
    )
    job_def = json.loads(result.files[manifest["batch_job_definitions"][0]])
    values = {
        "spec": submit["Parameters"]["Parameters"]["spec"],
        "inputs": json.dumps({"a": 9}),
        "prefix": f"s3://{bucket}/runs/linear/r1/b",
        "result": f"s3://{bucket}/runs/linear/r1/b/pipecast-outputs/outputs.json",
    }
    command = [
        values.get(a[len("Ref::") :], a) if a.startswith("Ref::") else a
        for a in job_def["containerProperties"]["command"]
    ]
    assert command[:4] == ["python", "-m", "pipecast.runtime", "run"]
    proc = subprocess.run(
        [sys.executable, *command[1:]],
        env={**os.environ, "PYTHONPATH": str(REPO / "tests/conformance/cases")},
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    body = s3.get_object(Bucket=bucket, Key="runs/linear/r1/b/pipecast-outputs/outputs.json")["Body"].read()
    assert json.loads(body) == {"output": 10}
