"""Shared helpers of the Step Functions tests: compile, and run in moto with the real worker."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pipecast_stepfunctions.backend import StepFunctionsBackend
from pipecast_stepfunctions.settings import StepFunctionsSettings

from pipecast.conformance import Conformance, Job, Record
from pipecast.loader import load

REPO = Path(__file__).resolve().parents[3]
BACKEND = StepFunctionsBackend()
ROLE = "arn:aws:iam::123456789012:role/pipecast-test"


def compile_file(path: Path | str, **settings: Any) -> tuple[Any, Any, StepFunctionsSettings]:
    loaded = load(path).lowered()  # what compile_pipeline emits from
    s = StepFunctionsSettings(**settings)
    result = BACKEND.emit(loaded.pipeline, loaded.index, s)
    return loaded, result, s


def run_in_moto(
    path: Path | str,
    params: Mapping[str, Any] | None = None,
    timeout: float = 90,
    secrets: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Compile with compute=callback, deploy to moto, run it with ``pipecast worker``; the run
    record. The product's own engine (``pipecast verify``) on the session's moto server."""
    import tempfile

    from pipecast_stepfunctions.local import run_callback

    from pipecast.api import load_checked
    from pipecast.verify.engine import EngineJob, given_params

    loaded = load_checked(path)
    with tempfile.TemporaryDirectory(prefix="pipecast-sfn-") as tmp:
        job = EngineJob(
            loaded=loaded,
            params=given_params(loaded.pipeline, params or {}),
            workdir=Path(tmp),
            secrets=dict(secrets or {}),
            python_path=[Path(path).resolve().parent],
            timeout=timeout,
            lenient=True,  # cases with declared approximations run as compiled with --lenient
        )
        return run_callback(job).record


def dumps(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True, default=str)


def shared_once(tmp_path_factory: Any, name: str, compute: Any) -> Any:
    """``compute()`` once per test session, even under pytest-xdist: the first worker computes
    and stores the JSON result under the session's shared temp folder (an flock orders the
    workers); the others read it. Without xdist it simply computes."""
    import fcntl

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return compute()
    root = tmp_path_factory.getbasetemp().parent  # .../pytest-N, shared by this session's workers
    path = root / f"{name}.json"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return json.loads(path.read_text())
        data = compute()
        path.write_text(json.dumps(data, default=str))
        return data


class StepFunctionsConformance(Conformance):
    """Conformance hooks: each run deploys to moto with compute=callback and a real worker.

    The executor compiles the source again with a fresh queue and bucket per run (the stored
    output's settings are portable placeholders), so ``job.files`` are not reused.
    """

    settings: ClassVar[Mapping[str, Any]] = {
        "compute": "callback",
        "queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/pipecast-conformance",
        "artifact_root": "s3://pipecast-conformance/runs",
        "role_arn": "arn:aws:iam::123456789012:role/pipecast-conformance",
        "default_image": "python:3.11-slim",
    }
    fixtures: ClassVar[tuple[str, ...]] = ("aws_env",)

    def fetch(self, uri: str, scratch: Path) -> Path | None:
        from pipecast_stepfunctions.local import fetch_s3

        return fetch_s3(uri, scratch)  # the session's moto server (the aws_env fixture)

    def execute(self, job: Job) -> list[Record]:
        return [
            run_in_moto(job.source, dict(params), timeout=120, secrets=job.secrets) for params in job.runs
        ]
