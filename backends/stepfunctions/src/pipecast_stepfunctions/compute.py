"""Task states for the three computes: SageMaker processing, AWS Batch, SQS callback.

Service integrations:
https://docs.aws.amazon.com/step-functions/latest/dg/connect-sagemaker.html
https://docs.aws.amazon.com/step-functions/latest/dg/connect-batch.html
https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html#connect-wait-token

Every compute hands the pipecast step runtime the same *request*::

    {"spec_uri": "s3://.../_pipecast/specs/<step>-<hash>.json",
     "inputs": {<name>: <value>}, "artifact_prefix": "s3://.../<step>[/<i>...]"}

The StepSpec (a few KB per step) is never embedded in the state machine: ``compile`` writes
it to ``specs/<step>.json`` and ``deploy`` uploads it to a content-addressed key under the
artifact root, so a Task state stays small whatever the step looks like, and executions
started before a redeploy keep reading the spec they were compiled with.

``callback`` sends the request (plus ``taskToken``) as the SQS message that
``pipecast worker`` answers with ``SendTaskSuccess({"outputs": {...}})``. ``sagemaker``
maps the spec in as a ProcessingInput and writes the inputs to S3 first (an
``aws-sdk:s3:putObject`` state); ``batch`` passes ``@<spec_uri>`` as a job parameter. Both
read ``<artifact_prefix>/pipecast-outputs/outputs.json`` back (``aws-sdk:s3:getObject``) so
parameter outputs land in the state like the callback's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipecast import stock
from pipecast.backend import placeholder
from pipecast.diagnostics import Diagnostic, UserError
from pipecast.ir.models import ContainerRun
from pipecast.ir.values import is_artifact
from pipecast.passes.analysis import ANY, StepNode, is_artifact_type
from pipecast.runtime.spec import step_spec
from pipecast.sizes import describe

from .instances import batch_requirements, pick_instance
from .names import aws_name, resource_name
from .paths import value_entry

if TYPE_CHECKING:
    from pipecast.ir.refs import Ref

    from .emitter import Emitter, Frame

SQS_WAIT = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
SAGEMAKER_SYNC = "arn:aws:states:::sagemaker:createProcessingJob.sync"
BATCH_SYNC = "arn:aws:states:::batch:submitJob.sync"
S3_PUT = "arn:aws:states:::aws-sdk:s3:putObject"
S3_GET = "arn:aws:states:::aws-sdk:s3:getObject"
RUNTIME_ENTRY = ["python", "-m", "pipecast.runtime", "run"]
BATCH_OVERRIDES_LIMIT = 8192
# Throttling or a 5xx from S3 must not fail the pipeline: every aws-sdk:s3 helper state
# (request upload, outputs download, publish, wait) retries it.
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html
S3_HICCUP_RETRY = {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "BackoffRate": 2.0, "MaxAttempts": 4}
# ProcessingStoppingCondition.MaxRuntimeInSeconds: 1..777,600 (9 days); a step without a
# timeout (SPEC §7: no limit) gets the longest SageMaker allows, not its 1-day default.
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingStoppingCondition.html
SAGEMAKER_MAX_RUNTIME = 777_600
SAGEMAKER_DEFAULT_RUNTIME = SAGEMAKER_MAX_RUNTIME
# Batch JobTimeout.attemptDurationSeconds: at least 60.
# https://docs.aws.amazon.com/batch/latest/APIReference/API_JobTimeout.html
BATCH_MIN_ATTEMPT = 60
# SageMaker takes images from Amazon ECR only (private registries need VPC settings pipecast
# does not write): https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_AppSpecification.html
ECR_IMAGE = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/")

#: History events per task state: Entered, Scheduled, Started, Submitted, Succeeded, Exited;
#: each retry adds Scheduled, Started, Submitted and Failed/TimedOut.
TASK_EVENTS = 6
RETRY_EVENTS = 4
SDK_EVENTS = 5


@dataclass
class Built:
    start: str
    events: tuple[int, int]


def cache_store(em: Emitter) -> str:
    """Where the runtime keeps cached results (SPEC §20): Step Functions has no result cache."""
    return f"{em.settings.artifact_root.rstrip('/')}/.pipecast-cache/{em.pipeline.name}"


def request(em: Emitter, node: StepNode, frame: Frame) -> dict[str, Any]:
    """The runtime request as a payload template (see the module docstring)."""
    # callback: the worker retries and enforces the per-attempt timeout (moto reuses one task
    # token across Step Functions retries, so a native Retry cannot be executed there; the
    # runtime also honours sub-second delays and jitter exactly as the simulator does).
    callback = em.settings.compute == "callback"
    spec = step_spec(
        em.index,
        node,
        retry_in_runtime=callback,
        timeout_in_runtime=callback,
        secret_store="aws",
        cache_store=cache_store(em),
    )
    return {
        "spec_uri": em.store_spec(node, spec.to_arg()),
        "inputs": em.inputs_template(node),
        "artifact_prefix.$": em.prefix_call(node, frame),
    }


def callback(em: Emitter, node: StepNode, frame: Frame, nxt: str | None) -> Built:
    name = em.names.new(node.name, "task", node.name)
    body = {"taskToken.$": "$$.Task.Token", **request(em, node, frame), "envelope": True}
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": SQS_WAIT,
        "Parameters": {"QueueUrl": em.settings.queue_url, "MessageBody": body},
        # The worker answers SendTaskSuccess with {"outputs": {...}, "attempts": n} (plus
        # "metrics" for a step with Metrics outputs: SPEC §15 numbers for conditions and inputs).
        "ResultSelector": {
            "outputs.$": "$.outputs",
            "attempts.$": "$.attempts",
            **({"metrics.$": "$.metrics"} if "Metrics" in node.task.outputs.values() else {}),
        },
        "ResultPath": f"$.steps.{node.name}",
    }
    total = em.total_timeout(node)
    if total is not None:
        state["TimeoutSeconds"] = total
    em.add(frame, name, state, nxt)
    return Built(name, (TASK_EVENTS, TASK_EVENTS))


def _need_image(em: Emitter, node: StepNode, image: str | None, service: str) -> str:
    """The step's image, or a marked placeholder and a warning (deploy refuses placeholders),
    as on Vertex and Azure ML: a compile without an image still shows the whole machine."""
    if image:
        return image
    image = placeholder("image")
    warning = Diagnostic(
        f"stepfunctions: step {node.name!r} has no image ({service} runs every step in a container); "
        f"the output holds the placeholder {image!r} and deploy refuses it",
        node.yaml_path,
        hint="set 'image' on the step or in 'defaults' (an image with the code and pipecast installed), "
        "or --set default_image=<registry/image:tag>",
        severity="warning",
        code="placeholder",
    )
    if warning not in em.diagnostics:  # a step emitted twice (child machines) warns once
        em.diagnostics.append(warning)
    return image


def _max_runtime(em: Emitter, node: StepNode) -> int:
    """``MaxRuntimeInSeconds``: the step's per-attempt timeout, within SageMaker's range."""
    timeout = em.timeout_seconds(node)
    if timeout is None:
        return SAGEMAKER_DEFAULT_RUNTIME
    if timeout > SAGEMAKER_MAX_RUNTIME:
        raise UserError(
            Diagnostic(
                f"stepfunctions (sagemaker): step {node.name!r} has a timeout of {timeout} s; a SageMaker "
                f"processing job runs at most {SAGEMAKER_MAX_RUNTIME} s (9 days)",
                (*node.yaml_path, "timeout")
                if "timeout" in node.task.model_fields_set
                else ("defaults", "timeout"),
                hint="lower the timeout to 9d or less, or use compute=batch (no upper limit)",
                code="limit",
            )
        )
    return timeout


def _image_warning(em: Emitter, node: StepNode, image: str) -> None:
    if not ECR_IMAGE.match(image) and image != placeholder("image") and image not in em.warned_images:
        em.warned_images.add(image)
        em.diagnostics.append(
            Diagnostic(
                f"stepfunctions (sagemaker): image {image!r} (step {node.name!r}) is not in Amazon ECR; "
                "SageMaker processing jobs pull images from ECR only",
                node.yaml_path,
                severity="warning",
                hint="push the image to ECR (<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>) and use that URI",
                code="image",
            )
        )


def _static_spec(em: Emitter, node: StepNode) -> str:
    """The StepSpec for computes that retry and time out natively (sagemaker, batch)."""
    spec = step_spec(
        em.index,
        node,
        retry_in_runtime=False,
        timeout_in_runtime=False,
        secret_store="aws",
        cache_store=cache_store(em),
    )
    return spec.to_arg()


SM_ROOT = "/opt/ml/processing"


def _instance_type(em: Emitter, node: StepNode, eff: Any) -> str:
    """The step's processing instance type: the settings' choice, else the smallest that fits."""
    itype = em.settings.instance_types.get(node.name)
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
        itype = row.name
    return itype


def sagemaker(em: Emitter, node: StepNode, frame: Frame, nxt: str | None) -> Built:
    """putObject(inputs.json) → createProcessingJob.sync → [getObject(outputs.json) → merge]."""
    s = em.settings
    eff = em.eff(node)
    image = _need_image(em, node, eff.image or s.default_image, "SageMaker")
    _image_warning(em, node, image)
    itype = _instance_type(em, node, eff)
    plan = stock_plan(em, node)
    if plan is not None and plan.stock:
        return _sagemaker_stock(em, node, frame, nxt, image, itype)
    spec_uri = em.store_spec(node, _static_spec(em, node))
    nxt, metric_events = read_metrics(em, node, frame, nxt)
    task = node.task
    artifacts = [o for o, t in task.outputs.items() if is_artifact(t)]
    params_out = [o for o, t in task.outputs.items() if not is_artifact(t)]
    put = em.names.new(f"{node.name} (inputs)", "request", node.name)
    run = em.names.new(node.name, "task", node.name)
    get = em.names.new(f"{node.name} (outputs)", "outputs", node.name) if params_out else None
    merge = (
        em.names.new(f"{node.name} (merge outputs)", "outputs", node.name)
        if params_out and artifacts
        else None
    )
    # ProcessingJobName: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62} (names.AWS_NAMES): 26 + "-" + a UUID.
    job_prefix = aws_name(node.name, 26, "A-Za-z0-9").strip("-") or "step"
    outputs_cfg = [
        {
            "OutputName": o,
            "S3Output": {
                "S3Uri.$": em.prefix_call(node, frame, suffix=f"/{o}"),
                "LocalPath": f"{SM_ROOT}/output/{o}",
                "S3UploadMode": "EndOfJob",
            },
        }
        for o in artifacts
    ]
    outputs_cfg.append(
        {
            "OutputName": "pipecast-outputs",
            "S3Output": {
                "S3Uri.$": em.prefix_call(node, frame, suffix="/pipecast-outputs"),
                "LocalPath": f"{SM_ROOT}/output/pipecast-outputs",
                "S3UploadMode": "EndOfJob",
            },
        }
    )
    params: dict[str, Any] = {
        "ProcessingJobName.$": f"States.Format('{job_prefix}-{{}}', States.UUID())",
        "RoleArn": s.role_arn,
        "AppSpecification": {
            "ImageUri": image,
            "ContainerEntrypoint": [
                *RUNTIME_ENTRY,
                "--spec",
                f"@{SM_ROOT}/input/pipecast-spec/{spec_uri.rsplit('/', 1)[1]}",
                "--convention",
                "sagemaker",
                "--inputs",
                f"@{SM_ROOT}/input/pipecast-request/inputs.json",
            ],
        },
        "ProcessingInputs": [
            {
                "InputName": "pipecast-spec",
                "S3Input": {
                    "S3Uri": spec_uri,
                    "LocalPath": f"{SM_ROOT}/input/pipecast-spec",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            },
            {
                "InputName": "pipecast-request",
                "S3Input": {
                    "S3Uri.$": em.prefix_call(node, frame, suffix="/pipecast-request/inputs.json"),
                    "LocalPath": f"{SM_ROOT}/input/pipecast-request",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            },
        ],
        "ProcessingOutputConfig": {"Outputs": outputs_cfg},
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": itype,
                "VolumeSizeInGB": s.sagemaker_volume_gb,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": _max_runtime(em, node)},
    }
    if eff.env:
        params["Environment"] = dict(sorted(eff.env.items()))
    em.add(
        frame,
        put,
        {
            "Type": "Task",
            "Resource": S3_PUT,
            "Parameters": {
                "Bucket": s.bucket,
                "Key.$": em.prefix_call(
                    node, frame, with_bucket=False, suffix="/pipecast-request/inputs.json"
                ),
                "Body": em.inputs_template(node),
            },
            "ResultPath": None,
            "Retry": [S3_HICCUP_RETRY],
        },
        run,
    )
    run_state = _processing_state(node, params, artifacts, params_out)
    em.add(frame, run, {**run_state, **em.retry_and_timeout(node)}, get or nxt)
    events = em.task_events(node, TASK_EVENTS)
    events = (events[0] + SDK_EVENTS, events[1] + SDK_EVENTS)
    if get is not None:
        key = em.prefix_call(node, frame, with_bucket=False, suffix="/pipecast-outputs/outputs.json")
        em.add(
            frame,
            get,
            {
                "Type": "Task",
                "Resource": S3_GET,
                "Parameters": {"Bucket": s.bucket, "Key.$": key},
                "ResultSelector": {"outputs.$": "States.StringToJson($.Body)"},
                "ResultPath": "$.fetched" if merge else f"$.steps.{node.name}",
                "Retry": [S3_HICCUP_RETRY],
            },
            merge or nxt,
        )
        events = (events[0] + SDK_EVENTS, events[1] + SDK_EVENTS)
    if merge is not None:
        em.add(
            frame,
            merge,
            {
                "Type": "Pass",
                "Parameters": {
                    "outputs.$": f"States.JsonMerge($.steps.{node.name}.outputs, $.fetched.outputs, false)"
                },
                "ResultPath": f"$.steps.{node.name}",
            },
            nxt,
        )
        events = (events[0] + 2, events[1] + 2)
    return Built(put, (events[0] + metric_events, events[1] + metric_events))


def read_metrics(em: Emitter, node: StepNode, frame: Frame, nxt: str | None) -> tuple[str | None, int]:
    """SPEC §15 with a SageMaker or Batch job: the runtime writes each Metrics output's numbers
    to ``pipecast-outputs/metrics.json`` beside the outputs file; a ``getObject`` state reads
    it and a ``Pass`` puts it at ``$.steps.<step>.metrics`` (as the callback worker's answer
    does). Returns the state to go to after the job's own states (``nxt`` when the step has no
    Metrics output) and the history events added."""
    if "Metrics" not in node.task.outputs.values():
        return nxt, 0
    get = em.names.new(f"{node.name} (metrics)", "outputs", node.name)
    put = em.names.new(f"{node.name} (metrics into state)", "outputs", node.name)
    em.add(
        frame,
        get,
        {
            "Type": "Task",
            "Resource": S3_GET,
            "Parameters": {
                "Bucket": em.settings.bucket,
                "Key.$": em.prefix_call(
                    node, frame, with_bucket=False, suffix="/pipecast-outputs/metrics.json"
                ),
            },
            "ResultSelector": {"numbers.$": "States.StringToJson($.Body)"},
            "ResultPath": "$.fetched_metrics",
            "Retry": [S3_HICCUP_RETRY],
        },
        put,
    )
    em.add(
        frame,
        put,
        {
            "Type": "Pass",
            "InputPath": "$.fetched_metrics.numbers",
            "ResultPath": f"$.steps.{node.name}.metrics",
        },
        nxt,
    )
    return get, SDK_EVENTS + 2


def job_definition_name(em: Emitter, image: str) -> str:
    import hashlib

    digest = hashlib.sha256(image.encode()).hexdigest()[:10]
    return resource_name(f"{em.settings.name_prefix}{em.pipeline.name}-{digest}", 128)


def batch(em: Emitter, node: StepNode, frame: Frame, nxt: str | None) -> Built:
    """Pass(inputs → $.request) → submitJob.sync → getObject(outputs.json)."""
    s = em.settings
    eff = em.eff(node)
    image = _need_image(em, node, eff.image or s.default_image, "AWS Batch")
    jobdef = job_definition_name(em, image)
    em.job_definitions[jobdef] = image
    nxt, metric_events = read_metrics(em, node, frame, nxt)
    # The job definition's command takes these through Ref:: placeholders (job parameters);
    # the runtime reads ``--spec @s3://...`` from S3.
    job_params = {
        "spec": "@" + em.store_spec(node, _static_spec(em, node)),
        "inputs.$": "States.JsonToString($.request)",
        "prefix.$": em.prefix_call(node, frame),
        "result.$": em.prefix_call(node, frame, suffix="/pipecast-outputs/outputs.json"),
    }
    overrides: dict[str, Any] = {
        "ResourceRequirements": batch_requirements(eff.resources),
    }
    if eff.env:
        overrides["Environment"] = [{"Name": k, "Value": v} for k, v in sorted(eff.env.items())]
    # The limit counts the rendered overrides: the static part, plus the inputs (estimated
    # from their literal form, references as 256 characters) and three URIs.
    inputs_estimate = len(json.dumps(node.task.inputs)) + 256 * len(node.task.inputs)
    size = (
        len(json.dumps(overrides, separators=(",", ":"))) + inputs_estimate + 3 * (len(s.artifact_root) + 160)
    )
    if size > BATCH_OVERRIDES_LIMIT:
        raise UserError(
            Diagnostic(
                f"stepfunctions (batch): the container overrides of step {node.name!r} take about {size} "
                f"characters; AWS Batch allows {BATCH_OVERRIDES_LIMIT}",
                node.yaml_path,
                hint="move large environment values or literal inputs into the image, a parameter or a secret",
                code="limit",
            )
        )
    req = em.names.new(f"{node.name} (inputs)", "request", node.name)
    run = em.names.new(node.name, "task", node.name)
    get = em.names.new(f"{node.name} (outputs)", "outputs", node.name)
    params: dict[str, Any] = {
        "JobName": resource_name(node.name, 100),
        "JobQueue": s.batch_job_queue,
        "JobDefinition": jobdef,
        "Parameters": job_params,
        "ContainerOverrides": overrides,
    }
    timeout = em.timeout_seconds(node)
    if timeout is not None:
        # The step timeout is run time (queue time excluded); Batch enforces at least 60 s.
        if timeout < BATCH_MIN_ATTEMPT:
            em._warn(
                node,
                "timeout",
                f"timeout {timeout}s is raised to {BATCH_MIN_ATTEMPT} s (AWS Batch's minimum)",
            )
        params["Timeout"] = {"AttemptDurationSeconds": max(timeout, BATCH_MIN_ATTEMPT)}
    em.add(
        frame, req, {"Type": "Pass", "Parameters": em.inputs_template(node), "ResultPath": "$.request"}, run
    )
    em.add(
        frame,
        run,
        {
            "Type": "Task",
            "Resource": BATCH_SYNC,
            "Parameters": params,
            "ResultPath": None,
            **em.retry_and_timeout(node),
        },
        get,
    )
    em.add(
        frame,
        get,
        {
            "Type": "Task",
            "Resource": S3_GET,
            "Parameters": {
                "Bucket": s.bucket,
                "Key.$": em.prefix_call(
                    node, frame, with_bucket=False, suffix="/pipecast-outputs/outputs.json"
                ),
            },
            "ResultSelector": {"outputs.$": "States.StringToJson($.Body)"},
            "ResultPath": f"$.steps.{node.name}",
            "Retry": [S3_HICCUP_RETRY],
        },
        nxt,
    )
    expected, worst = em.task_events(node, TASK_EVENTS)
    extra = 2 + SDK_EVENTS + metric_events
    return Built(req, (expected + extra, worst + extra))


def job_definition(em: Emitter, name: str, image: str) -> dict[str, Any]:
    """A ``RegisterJobDefinition`` request for one image (deploy registers it)."""
    s = em.settings
    props: dict[str, Any] = {
        "image": image,
        "command": [
            *RUNTIME_ENTRY,
            "--spec",
            "Ref::spec",
            "--convention",
            "s3",
            "--inputs",
            "Ref::inputs",
            "--artifact-prefix",
            "Ref::prefix",
            "--result",
            "Ref::result",
        ],
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


# ---------------------------------------------------------------------------- stock images

#: ``{{ pipeline.name }}`` / ``{{ pipeline.run_id }}`` in a container command (the runtime fills them).
#: Where a stock step's parameter outputs are written (one file each), inside the job.
SM_PARAMS = f"{SM_ROOT}/output/pipecast-outputs"
#: A stock step's entrypoint: its script arrives in ``ContainerArguments`` cut into pieces of
#: at most 256 characters without newlines (``ContainerArgument``: max 256, pattern ``.*``;
#: at most 100 of them), which ``printf %s`` joins back for ``eval``.
#: https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_AppSpecification.html
STOCK_ENTRYPOINT = ["sh", "-c", 'eval "$(printf %s "$@")"', "pipecast-stock"]
MAX_ARGUMENT = 256
MAX_ARGUMENTS = 100
#: Sets ``$PIPECAST_NL`` to a newline without writing one (``printf`` reads ``\n``).
_NEWLINE = "PIPECAST_NL=$(printf '\\nx'); PIPECAST_NL=${PIPECAST_NL%x}; "


def _script_arguments(node: StepNode, script: str) -> list[str]:
    """``script`` as ``ContainerArguments`` (see :data:`STOCK_ENTRYPOINT`). Newlines occur
    only inside single-quoted user text: each becomes ``'"$PIPECAST_NL"'`` there."""
    if "\n" in script:
        script = _NEWLINE + script.replace("\n", "'\"$PIPECAST_NL\"'")
    pieces = [script[i : i + MAX_ARGUMENT] for i in range(0, len(script), MAX_ARGUMENT)]
    if len(pieces) > MAX_ARGUMENTS:
        raise UserError(
            Diagnostic(
                f"stepfunctions (sagemaker): the command of step {node.name!r} is {len(script)} characters "
                f"as a processing job's arguments; SageMaker takes at most {MAX_ARGUMENTS} of "
                f"{MAX_ARGUMENT} characters",
                (*node.yaml_path, "run"),
                hint="move the script into the image (or a file artifact) and run it from there",
                code="limit",
            )
        )
    return pieces


def metrics_read(em: Emitter) -> frozenset[str]:
    """Steps whose Metrics numbers some condition or input reads by name (SPEC §15)."""
    if em.metric_sources is None:
        from pipecast.ir.condition import paths

        found: set[str] = set()
        nodes = [*em.index.walk(), *([em.index.finally_node] if em.index.finally_node else [])]
        for n in nodes:
            refs = [r for _p, r in em.index.input_refs(n)]
            if n.resolved.when is not None:
                refs += list(paths(n.resolved.when))
            found.update(r.name for r in refs if r.kind == "step" and r.metric is not None)
        em.metric_sources = frozenset(found)
    return em.metric_sources


def stock_plan(em: Emitter, node: StepNode) -> stock.StockPlan | None:
    """Whether a container step runs its image unchanged on this compute (``None``: python)."""

    def reasons(run: ContainerRun) -> list[str]:
        eff = em.eff(node)
        out = []
        if em.settings.compute == "batch":
            out.append("Batch stages no files: the runtime moves artifacts to and from S3")
        if eff.secrets:
            out.append(stock.SECRETS_REASON)
        if eff.cache:
            out.append("Step Functions has no result cache: the runtime keeps it (SPEC §20)")
        if stock.uses_pipeline_fields(run):
            out.append(stock.PIPELINE_FIELDS_REASON)
        if node.name in metrics_read(em):
            out.append("its metrics are read by name (SPEC §15): the runtime publishes the numbers")
        return out

    def input_reason(slot: stock.Slot, ref: Ref) -> str | None:
        type_name = em.type_of(node.scope, node.name)(ref)
        if type_name == ANY or ref.kind == "loop":
            return f"input {slot.name!r} has no type known at compile time"
        if is_artifact_type(type_name) and not is_artifact(type_name):
            return f"input {slot.name!r} is a list of artifacts (no single local path)"
        return None

    return stock.plan(em.stock_plans, node, reasons, input_reason)


def _sagemaker_stock(
    em: Emitter, node: StepNode, frame: Frame, nxt: str | None, image: str, itype: str
) -> Built:
    """A container step as a processing job running its image unchanged (SPEC §21):
    createProcessingJob.sync → [getObject per parameter output → Pass (outputs)].

    ``ProcessingInputs`` download each artifact input (the S3 prefix pipecast stores it under)
    to ``/opt/ml/processing/input/<name>``; ``ProcessingOutputs`` upload
    ``/opt/ml/processing/output/<name>`` (a folder SageMaker creates) to the step's prefix, and
    the command writes ``<that folder>/<name>``, the marker naming it then stored beside it
    (docs/semantics.md, "Stock images"). Parameter inputs reach the command through
    ``Environment`` (``PIPECAST_IN_<name>``: a ``str`` raw, other types JSON); parameter outputs
    are one file each under ``pipecast-outputs/``, which the following states read back.
    The entrypoint is ``sh -c`` (no pipecast in the image).
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateProcessingJob.html
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingS3Output.html
    """
    s = em.settings
    eff = em.eff(node)
    run = node.task.run
    assert isinstance(run, ContainerRun)
    type_of = em.type_of(node.scope, node.name)
    task = node.task
    artifacts = [o for o, t in task.outputs.items() if is_artifact(t)]
    params_out = [o for o, t in task.outputs.items() if not is_artifact(t)]
    run_name = em.names.new(node.name, "task", node.name)
    gets = {o: em.names.new(f"{node.name} (output {o})", "outputs", node.name) for o in params_out}
    collect = em.names.new(f"{node.name} (outputs)", "outputs", node.name) if params_out else None
    lines = ["set -e"]
    env: dict[str, str] = {}
    inputs_cfg: list[dict[str, Any]] = []
    words: dict[stock.Slot, str] = {}
    after: list[str] = []
    for slot in stock.slots(run):
        if slot.kind == "outputs":
            if slot.name in artifacts:
                folder = f"{SM_ROOT}/output/{slot.name}"
                words[slot] = stock.sh_text(f"{folder}/{slot.name}")
                after.append(stock.sh_store_marker(folder, slot.name))
            else:
                words[slot] = stock.sh_text(f"{SM_PARAMS}/{slot.name}")
            continue
        value = task.inputs.get(slot.name)
        ref = stock.slot_ref(node, slot)
        if ref is None:
            words[slot] = stock.sh_text(stock.literal_text(value))
            continue
        key, path = value_entry(slot.name, value, node.resolved.inputs[slot.name], type_of, em.pipeline.name)
        assert key.endswith(".$"), key
        var = f"PIPECAST_IN_{slot.name}"
        if is_artifact(type_of(ref)):
            local = f"{SM_ROOT}/input/{slot.name}"
            inputs_cfg.append(
                {
                    "InputName": f"in-{slot.name}",
                    "S3Input": {
                        # A trailing "/": the prefix .../out must not also match .../out2/...
                        "S3Uri.$": f"States.Format('{{}}/', {path})",
                        "LocalPath": local,
                        "S3DataType": "S3Prefix",
                        "S3InputMode": "File",
                    },
                }
            )
            lines += [f"{var}={stock.sh_text(local)}", stock.sh_locate_artifact(var)]
        else:
            env[f"{var}.$"] = path if type_of(ref) == "str" else f"States.JsonToString({path})"
        words[slot] = f'"${var}"'
    argv = stock.render_args([*run.command, *run.args], lambda slot: words[slot], stock.sh_text)
    arguments = _script_arguments(node, "; ".join([*lines, " ".join(argv), *after]))
    outputs_cfg = [
        {
            "OutputName": o,
            "S3Output": {
                "S3Uri.$": em.prefix_call(node, frame, suffix=f"/{o}"),
                "LocalPath": f"{SM_ROOT}/output/{o}",
                "S3UploadMode": "EndOfJob",
            },
        }
        for o in artifacts
    ]
    if params_out:
        outputs_cfg.append(
            {
                "OutputName": "pipecast-outputs",
                "S3Output": {
                    "S3Uri.$": em.prefix_call(node, frame, suffix="/pipecast-outputs"),
                    "LocalPath": SM_PARAMS,
                    "S3UploadMode": "EndOfJob",
                },
            }
        )
    job_prefix = aws_name(node.name, 26, "A-Za-z0-9").strip("-") or "step"
    params: dict[str, Any] = {
        "ProcessingJobName.$": f"States.Format('{job_prefix}-{{}}', States.UUID())",
        "RoleArn": s.role_arn,
        "AppSpecification": {
            "ImageUri": image,
            "ContainerEntrypoint": STOCK_ENTRYPOINT,
            "ContainerArguments": arguments,
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": itype,
                "VolumeSizeInGB": s.sagemaker_volume_gb,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": _max_runtime(em, node)},
    }
    if inputs_cfg:
        params["ProcessingInputs"] = inputs_cfg
    if outputs_cfg:
        params["ProcessingOutputConfig"] = {"Outputs": outputs_cfg}
    if eff.env or env:
        params["Environment"] = {**dict(sorted(eff.env.items())), **env}
    run_state = _processing_state(node, params, artifacts, params_out)
    chain = [*gets.values(), collect] if collect else []
    em.add(frame, run_name, {**run_state, **em.retry_and_timeout(node)}, chain[0] if chain else nxt)
    events = em.task_events(node, TASK_EVENTS)
    for i, (o, get) in enumerate(gets.items()):
        body = "$.Body" if task.outputs[o] == "str" else "States.StringToJson($.Body)"
        em.add(
            frame,
            get,
            {
                "Type": "Task",
                "Resource": S3_GET,
                "Parameters": {
                    "Bucket": s.bucket,
                    "Key.$": em.prefix_call(node, frame, with_bucket=False, suffix=f"/pipecast-outputs/{o}"),
                },
                "ResultSelector": {"value.$": body},
                "ResultPath": f"$.fetched.{o}",
                "Retry": [S3_HICCUP_RETRY],
            },
            chain[i + 1],
        )
        events = (events[0] + SDK_EVENTS, events[1] + SDK_EVENTS)
    if collect is not None:
        outs = {f"{o}.$": f"$.steps.{node.name}.outputs.{o}" for o in artifacts}
        outs |= {f"{o}.$": f"$.fetched.{o}.value" for o in params_out}
        em.add(
            frame,
            collect,
            {"Type": "Pass", "Parameters": {"outputs": outs}, "ResultPath": f"$.steps.{node.name}"},
            nxt,
        )
        events = (events[0] + 2, events[1] + 2)
    return Built(run_name, events)


def _processing_state(node: Any, params: dict[str, Any], artifacts: Any, params_out: Any) -> dict[str, Any]:
    """The ``.sync`` CreateProcessingJob state; artifact outputs are read from the job
    description, which lists the outputs in the order given: artifact i is ``Outputs[i]``."""
    state: dict[str, Any] = {"Type": "Task", "Resource": SAGEMAKER_SYNC, "Parameters": params}
    if artifacts or not params_out:
        state["ResultSelector"] = {
            "outputs": {
                f"{o}.$": f"$.ProcessingOutputConfig.Outputs[{i}].S3Output.S3Uri"
                for i, o in enumerate(artifacts)
            }
        }
        state["ResultPath"] = f"$.steps.{node.name}"
    else:
        state["ResultPath"] = None
    return state
