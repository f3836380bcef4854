"""Task states for the three computes: SageMaker processing, AWS Batch, SQS callback.

Service integrations:
https://docs.aws.amazon.com/step-functions/latest/dg/connect-sagemaker.html
https://docs.aws.amazon.com/step-functions/latest/dg/connect-batch.html
https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html#connect-wait-token

Every compute hands the pipecast step runtime the same *request*::

    {"spec": <StepSpec>, "inputs": {<name>: <value>}, "artifact_prefix": "s3://.../<step>[/<i>...]"}

``callback`` sends it (plus ``taskToken``) as the SQS message that ``pipecast worker``
answers with ``SendTaskSuccess({"outputs": {...}})``. ``sagemaker`` and ``batch`` write it
to ``<artifact_prefix>/request.json`` (an ``aws-sdk:s3:putObject`` state), run
``python -m pipecast.runtime run --convention <sagemaker|s3> --request <uri>``, and read
``<artifact_prefix>/outputs.json`` back (``aws-sdk:s3:getObject``) so parameter outputs
land in the state like the callback's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipecast.diagnostics import Diagnostic, UserError
from pipecast.passes.analysis import StepNode
from pipecast.runtime.spec import step_spec

from .instances import batch_requirements, describe, pick_instance
from .names import resource_name
from .paths import literal_entry

if TYPE_CHECKING:
    from .emitter import Emitter, Frame

SQS_WAIT = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
SAGEMAKER_SYNC = "arn:aws:states:::sagemaker:createProcessingJob.sync"
BATCH_SYNC = "arn:aws:states:::batch:submitJob.sync"
S3_PUT = "arn:aws:states:::aws-sdk:s3:putObject"
S3_GET = "arn:aws:states:::aws-sdk:s3:getObject"
RUNTIME_ENTRY = ["python", "-m", "pipecast.runtime", "run"]
BATCH_OVERRIDES_LIMIT = 8192

#: History events per task state: Entered, Scheduled, Started, Submitted, Succeeded, Exited;
#: each retry adds Scheduled, Started, Submitted and Failed/TimedOut.
TASK_EVENTS = 6
RETRY_EVENTS = 4
SDK_EVENTS = 5


@dataclass
class Built:
    start: str
    events: tuple[int, int]


def request(em: Emitter, node: StepNode, frame: Frame) -> dict[str, Any]:
    """The runtime request as a payload template (see the module docstring)."""
    # Step Functions retries natively and enforces TimeoutSeconds; the runtime also kills
    # the step at the timeout so a timed-out callback attempt stops using the worker.
    spec = step_spec(
        em.index,
        node,
        retry_in_runtime=False,
        timeout_in_runtime=em.settings.compute == "callback",
        secret_store="aws",
    )
    spec_data = spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    key, spec_value = literal_entry("spec", spec_data)
    inputs = em.inputs_template(node)
    return {key: spec_value, "inputs": inputs, "artifact_prefix.$": em.prefix_call(node, frame)}


def callback(em: Emitter, node: StepNode, frame: Frame, nxt: str | None) -> Built:
    name = em.names.new(node.name, "task", node.name)
    body = {"taskToken.$": "$$.Task.Token", **request(em, node, frame)}
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": SQS_WAIT,
        "Parameters": {"QueueUrl": em.settings.queue_url, "MessageBody": body},
        "ResultSelector": {"outputs.$": "$.outputs"},
        "ResultPath": f"$.steps.{node.name}",
        **em.retry_and_timeout(node),
    }
    em.add(frame, name, state, nxt)
    return Built(name, em.task_events(node, TASK_EVENTS))


def _s3_states(
    em: Emitter, node: StepNode, frame: Frame, run_state: dict[str, Any], nxt: str | None
) -> Built:
    """putObject(request) → run_state → getObject(outputs), named after the step."""
    put = em.names.new(f"{node.name} (request)", "request", node.name)
    run = em.names.new(node.name, "task", node.name)
    get = em.names.new(f"{node.name} (outputs)", "outputs", node.name)
    key_of = _key_expr(em, node, frame)
    em.add(
        frame,
        put,
        {
            "Type": "Task",
            "Resource": S3_PUT,
            "Parameters": {
                "Bucket": em.settings.bucket,
                "Key.$": key_of("request.json"),
                "Body": request(em, node, frame),
            },
            "ResultPath": None,
        },
        run,
    )
    em.add(frame, run, {**run_state, "ResultPath": None, **em.retry_and_timeout(node)}, get)
    em.add(
        frame,
        get,
        {
            "Type": "Task",
            "Resource": S3_GET,
            "Parameters": {"Bucket": em.settings.bucket, "Key.$": key_of("outputs.json")},
            "ResultSelector": {"outputs.$": "States.StringToJson($.Body)"},
            "ResultPath": f"$.steps.{node.name}",
        },
        nxt,
    )
    expected, worst = em.task_events(node, TASK_EVENTS)
    return Built(put, (expected + 2 * SDK_EVENTS, worst + 2 * SDK_EVENTS))


def _key_expr(em: Emitter, node: StepNode, frame: Frame) -> Callable[[str], str]:
    def key_of(filename: str) -> str:
        return em.prefix_call(node, frame, with_bucket=False, suffix="/" + filename)

    return key_of


def request_uri_args(em: Emitter, node: StepNode, frame: Frame) -> str:
    uri = em.prefix_call(node, frame, with_bucket=True, suffix="/request.json")
    return f"States.Array('--request', {uri})"


def sagemaker(em: Emitter, node: StepNode, frame: Frame, nxt: str | None) -> Built:
    s = em.settings
    eff = em.index.effective(node)
    itype = s.instance_types.get(node.name)
    if itype is None:
        row = pick_instance(eff.resources)
        if row is None:
            raise UserError(
                Diagnostic(
                    f"stepfunctions (sagemaker): no processing instance type offers {describe(eff.resources)} "
                    f"(step {node.name!r})",
                    (*node.yaml_path, "resources"),
                    hint="lower the request, pick another accelerator, or set "
                    f"instance_types: {{{node.name}: <ml.type>}} in the target settings",
                    code="resources",
                )
            )
        itype = row.type
    env = {k: v for k, v in sorted(eff.env.items())}
    job_prefix = resource_name(node.name.replace("_", "-"), 26).strip("-_") or "step"
    params: dict[str, Any] = {
        "ProcessingJobName.$": f"States.Format('{job_prefix}-{{}}', States.UUID())",
        "RoleArn": s.role_arn,
        "AppSpecification": {
            "ImageUri": eff.image or "",
            "ContainerEntrypoint": [*RUNTIME_ENTRY, "--convention", "sagemaker"],
            "ContainerArguments.$": request_uri_args(em, node, frame),
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": itype,
                "VolumeSizeInGB": s.sagemaker_volume_gb,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": em.timeout_seconds(node) or 86400},
    }
    if env:
        params["Environment"] = env
    if not eff.image:
        raise UserError(
            Diagnostic(
                f"step {node.name!r} has no image: SageMaker runs every step in a container",
                node.yaml_path,
                hint="set 'image' on the step or in 'defaults' (an image with the code and pipecast installed)",
                code="no-image",
            )
        )
    run_state = {"Type": "Task", "Resource": SAGEMAKER_SYNC, "Parameters": params}
    return _s3_states(em, node, frame, run_state, nxt)


def job_definition_name(em: Emitter, image: str) -> str:
    import hashlib

    digest = hashlib.sha256(image.encode()).hexdigest()[:10]
    return resource_name(f"{em.settings.name_prefix}{em.pipeline.name}-{digest}", 128)


def batch(em: Emitter, node: StepNode, frame: Frame, nxt: str | None) -> Built:
    s = em.settings
    eff = em.index.effective(node)
    if not eff.image:
        raise UserError(
            Diagnostic(
                f"step {node.name!r} has no image: AWS Batch runs every step in a container",
                node.yaml_path,
                hint="set 'image' on the step or in 'defaults'",
                code="no-image",
            )
        )
    jobdef = job_definition_name(em, eff.image)
    em.job_definitions[jobdef] = eff.image
    overrides: dict[str, Any] = {
        "Command.$": "States.Array('python', '-m', 'pipecast.runtime', 'run', '--convention', 's3', "
        + request_uri_args(em, node, frame)[len("States.Array(") :],
        "ResourceRequirements": batch_requirements(eff.resources),
    }
    if eff.env:
        overrides["Environment"] = [{"Name": k, "Value": v} for k, v in sorted(eff.env.items())]
    # The limit counts the rendered overrides; the request URI adds at most the artifact
    # prefix, an 80-character execution name and the loop indices.
    size = len(json.dumps(overrides, separators=(",", ":"))) + len(s.artifact_root) + 80 + 64
    if size > BATCH_OVERRIDES_LIMIT:
        raise UserError(
            Diagnostic(
                f"stepfunctions (batch): the container overrides of step {node.name!r} take about {size} "
                f"characters; AWS Batch allows {BATCH_OVERRIDES_LIMIT}",
                (*node.yaml_path, "env"),
                hint="move large environment values into the image or a secret",
                code="limit",
            )
        )
    job_name = resource_name(node.name, 100)
    params: dict[str, Any] = {
        "JobName": job_name,
        "JobQueue": s.batch_job_queue,
        "JobDefinition": jobdef,
        "ContainerOverrides": overrides,
    }
    timeout = em.timeout_seconds(node)
    if timeout is not None and timeout >= 60:  # Batch's minimum attempt duration
        params["Timeout"] = {"AttemptDurationSeconds": timeout}
    run_state = {"Type": "Task", "Resource": BATCH_SYNC, "Parameters": params}
    return _s3_states(em, node, frame, run_state, nxt)


def job_definition(em: Emitter, name: str, image: str) -> dict[str, Any]:
    """A ``RegisterJobDefinition`` request for one image (deploy registers it)."""
    s = em.settings
    props: dict[str, Any] = {
        "image": image,
        "command": [*RUNTIME_ENTRY, "--help"],
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
    }
    if s.batch_job_role_arn:
        props["jobRoleArn"] = s.batch_job_role_arn
    if s.batch_platform == "FARGATE":
        props["executionRoleArn"] = s.batch_job_role_arn or s.role_arn
        props["networkConfiguration"] = {"assignPublicIp": "ENABLED"}
    return {
        "jobDefinitionName": name,
        "type": "container",
        "platformCapabilities": [s.batch_platform],
        "containerProperties": props,
        "tags": {"pipecast:pipeline": em.pipeline.name},
    }


COMPUTES = {"callback": callback, "sagemaker": sagemaker, "batch": batch}
