"""The Step Functions local engine of ``pipecast verify`` (and of the test suite).

An in-process moto server with Step Functions execution switched on runs the compiled state
machine; the callback compute (``compute: callback``) sends each step to an SQS queue that a
``pipecast worker`` child process serves on this host. A pipeline compiled for SageMaker or
Batch is verified through the same definition with the callback compute swapped in: the
states around the step (bindings, choices, maps, retries, catches) are the same.

moto (5.x) differs from AWS in two ways the generated machines depend on; only the emulator
is adjusted (:func:`aws_like_s3_tasks`), never the machine under test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipecast.runtime.faults import fail_env
from pipecast.verify.engine import Engine, EngineJob, EngineResult, EngineSession, compile_job, environ

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/pipecast-verify"


def aws_like_s3_tasks() -> None:
    """Make moto's ``aws-sdk:s3`` tasks behave as on AWS, where Step Functions hands the
    state machine an S3 ``GetObject`` body as text and names a missing key
    ``S3.NoSuchKeyException`` (https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html).
    moto (5.x) passes the raw ``StreamingBody`` on (so ``States.StringToJson($.Body)``
    fails) and spells the error ``s3.NoSuchKeyException``.
    """
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as aws_sdk,
    )

    aws_sdk._SERVICE_ERROR_NAMES.setdefault("s3", "S3")
    cls: Any = aws_sdk.StateTaskServiceAwsSdk
    if getattr(cls, "_pipecast_text_bodies", False):
        return
    original = cls._eval_service_task

    def eval_service_task(self, env, *args, **kwargs):  # type: ignore[no-untyped-def]
        original(self, env, *args, **kwargs)
        response = env.stack[-1]
        body: Any = response.get("Body") if isinstance(response, dict) else None
        if body is not None and hasattr(body, "read"):
            response["Body"] = body.read().decode()

    cls._eval_service_task = eval_service_task
    cls._pipecast_text_bodies = True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    """A running moto server (Step Functions execution on); yields its endpoint URL."""
    import logging

    from moto.server import ThreadedMotoServer

    # werkzeug logs every request; moto's ASL interpreter logs each failed state with a dump
    # of its parse tree (a failure the run record reports anyway).
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
    port = _free_port()
    aws_like_s3_tasks()
    # moto's Step Functions interpreter calls other services (sqs:sendMessage, s3, ...) through
    # http://localhost:$MOTO_PORT; without it those tasks fail with "could not connect to :5000".
    with environ({"MOTO_PORT": str(port)}):
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            url = f"http://127.0.0.1:{port}"
            body = json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode()
            req = urllib.request.Request(
                f"{url}/moto-api/config",
                data=body,
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            urllib.request.urlopen(req, timeout=10).read()
            yield url
        finally:
            server.stop()


def aws_environ(url: str) -> dict[str, str | None]:
    """Environment variables that point boto3 (here and in child processes) at ``url``."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_PROFILE": None,
        "AWS_SESSION_TOKEN": None,
    }


def put_secrets(secrets: Mapping[str, str]) -> None:
    """Store secrets in (moto's) Secrets Manager, by name."""
    import boto3

    sm = boto3.client("secretsmanager", region_name=REGION)
    for name, value in sorted(secrets.items()):
        try:
            sm.create_secret(Name=name, SecretString=value)
        except sm.exceptions.ResourceExistsException:
            sm.put_secret_value(SecretId=name, SecretString=value)


def run_callback(job: EngineJob) -> EngineResult:
    """Compile with ``compute: callback``, deploy to the moto server the environment points
    at, run it with ``pipecast worker`` serving the queue; the run record."""
    import boto3

    from pipecast_stepfunctions.backend import StepFunctionsBackend

    tag = uuid.uuid4().hex[:8]
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName=f"pipecast-{tag}")["QueueUrl"]
    bucket = f"pipecast-verify-{tag}"
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=bucket)
    if job.secrets:
        put_secrets(job.secrets)
    notes = []
    compute = job.settings.get("compute", "sagemaker")
    if compute != "callback":
        notes.append(
            f"compute={compute} was verified through the same definition with compute=callback "
            "swapped in (the steps ran on this host through pipecast worker)"
        )
    files, settings = compile_job(
        job,
        "stepfunctions",
        {
            "compute": "callback",
            "queue_url": queue,
            "artifact_root": f"s3://{bucket}/runs",
            "role_arn": job.settings.get("role_arn") or ROLE,
            "name_prefix": f"v{tag}-",
        },
    )
    python_path = os.pathsep.join(str(p) for p in job.python_path)
    env = {**os.environ, "PYTHONPATH": python_path, "PIPECAST_PYTHON_PATH": python_path}
    if job.fail:
        env.update(fail_env(job.fail, job.workdir / "faults"))
    log = job.workdir / "worker.log"
    with log.open("wb") as log_file:
        worker = subprocess.Popen(
            [sys.executable, "-m", "pipecast.runtime", "worker", "--queue-url", queue,
             "--wait", "1", "--concurrency", "8"],
            env=env,
            cwd=str(job.python_path[0]) if job.python_path else None,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )  # fmt: skip
        try:
            out = StepFunctionsBackend().deploy(
                job.loaded.lowered().pipeline,
                files,
                settings,
                run=True,
                params=job.params,
                progress=False,
                poll=0.2,
                timeout=job.timeout,
            )
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    record = out["run"]
    record["_worker_log"] = log.read_text(errors="replace")
    return EngineResult(record=record, notes=notes, files=files, fetch=fetch_s3)


def fetch_s3(uri: str, scratch: Path) -> Path | None:
    """Download ``s3://bucket/key`` (a file, or every object under it as a folder)."""
    import boto3

    if not uri.startswith("s3://"):
        return None
    bucket, _, key = uri[len("s3://") :].partition("/")
    s3 = boto3.client("s3", region_name=REGION)
    target = scratch / uuid.uuid4().hex
    objects: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
        objects.extend(o["Key"] for o in page.get("Contents", []))
    prefix = key.rstrip("/") + "/"
    inner = [o for o in objects if o.startswith(prefix) and o != prefix]
    if not inner:
        if key not in objects:
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(target))
        return target
    # A folder artifact (a zero-byte object named like the folder, if any, is not content).
    for obj in inner:
        dest = target / obj[len(prefix) :]
        dest.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, obj, str(dest))
    return target


class _Session(EngineSession):
    def __init__(self, url: str) -> None:
        self.url = url

    def run(self, job: EngineJob) -> EngineResult:
        return run_callback(job)


class StepFunctionsEngine(Engine):
    """AWS Step Functions in moto, steps served by ``pipecast worker`` (compute=callback)."""

    target = "stepfunctions"
    title = "AWS Step Functions in an in-process moto server, steps run by pipecast worker (compute=callback)"
    extra = "verify-aws"
    modules = ("boto3", "moto", "flask")

    @contextmanager
    def session(self, workdir: Path) -> Iterator[EngineSession]:
        with moto_server() as url, environ(aws_environ(url)):
            yield _Session(url)
