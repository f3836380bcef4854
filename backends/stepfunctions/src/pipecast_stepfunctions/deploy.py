"""Deploy with boto3: create or update the state machine(s), the schedule, Batch job
definitions and step specs (idempotent), and optionally run and follow one execution.

boto3 honours ``AWS_ENDPOINT_URL`` (moto, LocalStack) and the usual credentials chain.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any

from pipecast.backend import refuse_placeholders
from pipecast.diagnostics import Diagnostic, UserError
from pipecast.ir.models import Pipeline

from .names import MAX_NAME
from .settings import StepFunctionsSettings

TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def _client(name: str, settings: StepFunctionsSettings) -> Any:
    import boto3

    return boto3.client(name, region_name=settings.region)


def _find_state_machine(sfn: Any, name: str) -> str | None:
    for page in sfn.get_paginator("list_state_machines").paginate():
        for sm in page["stateMachines"]:
            if sm["name"] == name:
                return str(sm["stateMachineArn"])
    return None


def put_state_machine(sfn: Any, name: str, definition: str, role_arn: str) -> tuple[str, str]:
    """Create or update one state machine; returns ``(arn, "created" | "updated")``."""
    arn = _find_state_machine(sfn, name)
    if arn is None:
        resp = sfn.create_state_machine(name=name, definition=definition, roleArn=role_arn, type="STANDARD")
        return str(resp["stateMachineArn"]), "created"
    sfn.update_state_machine(stateMachineArn=arn, definition=definition, roleArn=role_arn)
    return arn, "updated"


def deploy(
    pipeline: Pipeline,
    files: Mapping[str, str],
    settings: StepFunctionsSettings,
    *,
    run: bool = False,
    params: Mapping[str, Any] | None = None,
    json_output: bool = False,
    progress: bool = True,
    poll: float = 0.5,
    timeout: float | None = None,
    **_: Any,
) -> dict[str, Any]:
    """Create or update everything the compiled files describe; with ``run``, start one
    execution, follow it and return its run record (SPEC §12) under ``"run"``."""
    from botocore.exceptions import BotoCoreError, ClientError

    refuse_placeholders(files)
    manifest = json.loads(files["deploy.json"])
    try:
        sfn = _client("stepfunctions", settings)
        result: dict[str, Any] = {"state_machines": {}}
        if manifest.get("specs"):
            s3 = _client("s3", settings)
            for rel, uri in manifest["specs"].items():
                bucket, _, key = uri[len("s3://") :].partition("/")
                s3.put_object(Bucket=bucket, Key=key, Body=files[rel].encode())
        if manifest.get("batch_job_definitions"):
            batch = _client("batch", settings)
            for rel in manifest["batch_job_definitions"]:
                batch.register_job_definition(**json.loads(files[rel]))
        for child in manifest["children"]:
            arn, how = put_state_machine(sfn, child["name"], files[child["file"]], settings.role_arn)
            result["state_machines"][child["name"]] = {"arn": arn, "action": how}
        main = manifest["state_machine"]
        arn, how = put_state_machine(sfn, main["name"], files[main["file"]], settings.role_arn)
        result["state_machines"][main["name"]] = {"arn": arn, "action": how}
        result["arn"] = arn
        if manifest.get("schedule"):
            req = json.loads(files[manifest["schedule"]])
            req["Target"]["Arn"] = arn
            result["schedule"] = _put_schedule(_client("scheduler", settings), req)
        if run:
            ex = sfn.start_execution(
                stateMachineArn=arn, name=execution_name(pipeline), input=json.dumps(dict(params or {}))
            )
            result["run"] = follow(
                sfn,
                ex["executionArn"],
                pipeline,
                manifest,
                progress=progress and not json_output,
                poll=poll,
                timeout=timeout,
            )
    except (BotoCoreError, ClientError) as exc:
        raise UserError(
            Diagnostic(
                f"stepfunctions deploy failed: {exc}",
                hint="check credentials, region, role_arn and AWS_ENDPOINT_URL",
                code="deploy",
            )
        ) from None
    return result


def _put_schedule(scheduler: Any, req: dict[str, Any]) -> str:
    from botocore.exceptions import ClientError

    try:
        scheduler.get_schedule(Name=req["Name"], GroupName=req["GroupName"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        scheduler.create_schedule(**req)
        return "created"
    scheduler.update_schedule(**req)
    return "updated"


def execution_name(pipeline: Pipeline) -> str:
    """``<pipeline>-<UTC time>-<random>``: the run id, and the artifact folder of the run.

    Always named: an unnamed execution gets a UUID on AWS but ``None`` in moto (so every
    run there would share one artifact prefix and the second start would be refused).
    """
    import datetime
    import uuid

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return name_of_execution(pipeline.name, stamp, uuid.uuid4().hex[:8])


def name_of_execution(pipeline_name: str, stamp: str, suffix: str) -> str:
    """``<pipeline>-<stamp>-<suffix>`` within 80 characters: the pipeline name is cut (the
    suffix keeps runs distinct), never shortened with ``~`` (not allowed in execution names,
    see ``names.AWS_NAMES``)."""
    room = MAX_NAME - len(stamp) - len(suffix) - 2
    return f"{pipeline_name[:room].rstrip('-')}-{stamp}-{suffix}"


def history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        events.extend(page["events"])
    return events


def follow(
    sfn: Any,
    execution_arn: str,
    pipeline: Pipeline,
    manifest: Mapping[str, Any],
    *,
    progress: bool = True,
    poll: float = 0.5,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Wait for an execution to end, printing each step as it starts and ends."""
    start = time.monotonic()
    seen = 0
    states = manifest["states"]
    while True:
        desc = sfn.describe_execution(executionArn=execution_arn)
        events = history(sfn, execution_arn)
        if progress:
            for ev in events[seen:]:
                line = _progress_line(ev, states)
                if line:
                    print(line, file=sys.stderr, flush=True)
        seen = len(events)
        if desc["status"] in TERMINAL:
            break
        if timeout is not None and time.monotonic() - start > timeout:
            raise UserError(
                Diagnostic(f"execution {execution_arn} did not finish within {timeout:g}s", code="timeout")
            )
        time.sleep(poll)
    from pipecast.verify.records import read_back

    from .record import run_record

    events = history(sfn, execution_arn)
    # The state machine names a sub-pipeline's steps as the compile inlined them.
    return read_back(pipeline, lambda compiled: run_record(compiled, manifest, desc, events))


def _progress_line(ev: dict[str, Any], states: Mapping[str, Any]) -> str | None:
    kind = ev["type"]
    if kind.endswith("StateEntered") or kind.endswith("StateExited"):
        details = ev.get("stateEnteredEventDetails") or ev.get("stateExitedEventDetails") or {}
        info = states.get(details.get("name", ""))
        if info and info["kind"] in ("task", "map") and info["step"]:
            verb = "started" if kind.endswith("Entered") else "done"
            return f"  {info['step']}: {verb}"
    if kind in ("ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"):
        return f"  execution: {kind[len('Execution') :].lower()}"
    return None
