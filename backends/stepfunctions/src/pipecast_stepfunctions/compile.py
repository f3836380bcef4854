"""Compile orchestration: emit, check every limit, split if needed, and collect the files.

Limits (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html):

| limit                          | how it is checked                                                    |
|--------------------------------|----------------------------------------------------------------------|
| definition size 1 MB           | sizes summed while emitting; pieces over ``definition_split_bytes``  |
|                                | move to child machines (``startExecution.sync:2``, :mod:`.split`);   |
|                                | the written files are measured again, and a file still over 1 MB     |
|                                | (one state alone too big) is an error naming that state              |
| 25,000 history events          | per machine, estimated from the structure, retries and fan-out widths (literal |
|                                | lists and parameter defaults; unknown widths assume 10); ``auto`` map |
|                                | mode moves the biggest fan-outs to DISTRIBUTED, else an error        |
| names 80 characters            | :func:`.names.shorten` on state names, :func:`.names.aws_name` on    |
|                                | resource names (each field's pattern and length, ``names.AWS_NAMES``) |
| 10 intrinsic calls per field    | joins of 5 branches, big templates formatted in parts; every field   |
|                                | checked after emitting (:func:`_check_intrinsics`)                   |
| Batch ContainerOverrides 8,192 | rendered size per step (:mod:`.compute`)                             |
| state payload 256 KiB          | the largest state estimated from the IR (:mod:`.state_size`); over it  |
|                                | is an error (``States.DataLimitExceeded`` skips every Catch)          |
"""

from __future__ import annotations

from typing import Any

from pipecast import stock
from pipecast.backend import CompileResult
from pipecast.diagnostics import Diagnostic, UserError
from pipecast.io import dump_json
from pipecast.ir.models import Pipeline
from pipecast.passes.analysis import PipelineIndex

from . import compute, iam
from .emitter import Emitter
from .names import aws_name, state_machine_arn, state_machine_name
from .paths import MAX_INTRINSICS, intrinsic_calls
from .schedule import schedule_request
from .settings import StepFunctionsSettings
from .split import asl_json, biggest_states, compact
from .state_size import STATE_LIMIT, largest_state_bytes

HARD_LIMIT = 1_048_576  # bytes of one definition (Step Functions quota)


def _worst(
    em: Emitter, built: tuple[dict[str, Any], tuple[int, int]]
) -> tuple[dict[str, Any], tuple[int, int]]:
    """The definition, and the history estimate of the busiest machine (parent or child:
    each execution has its own history)."""
    definition, main = built
    every = [main, *(c.events for c in em.children)]
    return definition, (max(e[0] for e in every), max(e[1] for e in every))


def definition_text(definition: dict[str, Any], limit: int) -> str:
    """Indented JSON for small definitions (readable, diffable), compact JSON for big ones
    (what counts against the size limit, and far faster to write)."""
    text = compact(definition) + "\n"
    if len(text) < 64_000:
        pretty = asl_json(definition, 2) + "\n"
        if len(pretty.encode()) <= limit:
            return pretty
    return text


def _check_intrinsics(rel: str, definition: dict[str, Any]) -> None:
    """No field holds more than 10 intrinsic calls (the emitter splits the fields it knows
    can grow; anything else that does is an error here, not a failed deploy)."""
    stack: list[Any] = [definition["States"]]
    while stack:
        for name, st in stack.pop().items():
            for key in ("Parameters", "ResultSelector", "ItemSelector"):
                fields = [st.get(key)]
                while fields:
                    value = fields.pop()
                    if isinstance(value, list):
                        fields.extend(value)
                    if not isinstance(value, dict):
                        continue
                    for k, v in value.items():
                        if isinstance(v, str) and k.endswith(".$") and intrinsic_calls(v) > MAX_INTRINSICS:
                            raise UserError(
                                Diagnostic(
                                    f"stepfunctions: {rel}: state {name!r}: field {k[:-2]!r} needs "
                                    f"{intrinsic_calls(v)} intrinsic function calls; Step Functions allows "
                                    f"{MAX_INTRINSICS} per field",
                                    ("steps",),
                                    hint="split the value into several inputs or steps",
                                    code="limit",
                                )
                            )
                        fields.append(v)
            stack.extend(br["States"] for br in st.get("Branches", []))
            if "ItemProcessor" in st:
                stack.append(st["ItemProcessor"]["States"])


def build(
    pipeline: Pipeline, index: PipelineIndex, settings: StepFunctionsSettings
) -> tuple[Emitter, dict[str, Any], tuple[int, int]]:
    """Emit once; if the history estimate is over the limit and the map mode is ``auto``,
    move the fan-outs that add the most events to DISTRIBUTED maps and emit again."""
    em = Emitter(pipeline, index, settings)
    definition, events = _worst(em, em.build())
    limit = settings.max_history_events
    if events[0] > limit and settings.map_mode == "auto":
        moved: list[str] = []
        estimate = events[0]
        for info in sorted(em.maps, key=lambda m: (-m.events, m.group)):
            if estimate <= limit:
                break
            moved.append(info.group)
            estimate -= info.events - 8
        em = Emitter(pipeline, index, settings, distributed=frozenset(moved))
        definition, events = _worst(em, em.build())
        for group in moved:
            em.diagnostics.append(
                Diagnostic(
                    f"stepfunctions: fan-out {group!r} runs as a DISTRIBUTED map (child executions) to keep "
                    f"the execution history under {limit} events",
                    index.node(group).yaml_path,
                    severity="warning",
                    code="limit",
                )
            )
    if events[0] > limit:
        assumed = ", ".join(f"{g}={w}" for g, w in sorted(em.assumed_widths.items()))
        raise UserError(
            Diagnostic(
                f"stepfunctions: an execution of {pipeline.name!r} would write about {events[0]} history events; "
                f"Step Functions stops executions at {limit}"
                + (f" (fan-out widths assumed: {assumed})" if assumed else ""),
                ("steps",),
                hint="set map_mode: auto or distributed (fan-outs then run as child executions), "
                "or split the pipeline",
                code="limit",
            )
        )
    if events[1] > limit:
        em.diagnostics.append(
            Diagnostic(
                f"stepfunctions: if every retry is used (and every wait polls until its producer's timeout, "
                "24 h without one), an execution writes "
                f"about {events[1]} history events "
                f"(limit {limit})",
                ("steps",),
                severity="warning",
                code="limit",
            )
        )
    state_bytes, where = largest_state_bytes(em)
    if state_bytes > STATE_LIMIT:
        raise UserError(
            Diagnostic(
                f"stepfunctions: the state of {pipeline.name!r} would reach about {state_bytes} bytes "
                f"({'the pipeline steps' if where == 'steps' else f'an item of {where!r}'}); Step Functions "
                f"fails an execution over {STATE_LIMIT} bytes (256 KiB), and no Catch (so no finally) runs then",
                ("steps",) if where == "steps" else index.node(where).yaml_path,
                hint="split the pipeline, group steps into for_each bodies, or pass large values as artifacts",
                code="limit",
            )
        )
    em.state_bytes = state_bytes
    return em, definition, events


def compile_pipeline(
    pipeline: Pipeline, index: PipelineIndex, settings: StepFunctionsSettings
) -> CompileResult:
    em, definition, events = build(pipeline, index, settings)
    diags = list(em.diagnostics)
    for key in settings.placeholders_used():
        diags.append(
            Diagnostic(
                f"stepfunctions: setting {key!r} is a placeholder ({getattr(settings, key)}); the output cannot "
                "be deployed as is",
                severity="warning",
                hint=f"set {key} in the target settings file or with --set {key}=...",
                code="placeholder",
            )
        )
    if settings.compute == "callback" and any(
        index.effective(n).resources.model_fields_set for n in index.tasks()
    ):
        diags.append(
            Diagnostic(
                "stepfunctions: with compute=callback, steps run wherever 'pipecast worker' runs; their "
                "resources are not enforced",
                severity="warning",
                hint="use compute=sagemaker or batch to get machines sized per step",
                code="ignored",
            )
        )
    sm_name = state_machine_name(pipeline, settings)
    files: dict[str, str] = {}
    limit = min(settings.definition_split_bytes, HARD_LIMIT)
    main_name = f"{pipeline.name}.asl.json"
    children = []
    definitions = {}
    for i, child in enumerate(em.children, 1):
        rel = f"{pipeline.name}.part-{i}.asl.json"
        files[rel] = definition_text(child.definition, limit)
        definitions[rel] = child.definition
        children.append({"name": child.name, "file": rel, "arn": state_machine_arn(child.name, settings)})
    files[main_name] = definition_text(definition, limit)
    definitions[main_name] = definition
    size = len(files[main_name].encode())
    for rel, child_def in definitions.items():
        actual = len(files[rel].encode())
        if actual > HARD_LIMIT:
            comment = len(str(child_def.get("Comment", "")).encode())
            (state, state_size), *_ = biggest_states(child_def) or [("", 0)]
            if comment > state_size:
                raise UserError(
                    Diagnostic(
                        f"stepfunctions: {rel} is {actual} bytes, over the 1 MB definition limit: its "
                        f"Comment, the pipeline's description, takes {comment} bytes",
                        ("description",),
                        hint="shorten the pipeline's description (keep long documentation in a file)",
                        code="limit",
                    )
                )
            raise UserError(
                Diagnostic(
                    f"stepfunctions: {rel} is {actual} bytes, over the 1 MB definition limit even after "
                    f"splitting into {len(children)} child state machines; its biggest state, {state!r}, "
                    f"takes {state_size} bytes (a single state cannot be split)",
                    ("steps",),
                    hint="move large literal inputs, env values or conditions out of the pipeline file "
                    "(into parameters, artifacts or the image), or split the pipeline",
                    code="limit",
                )
            )
    for rel, d in definitions.items():
        _check_intrinsics(rel, d)
    schedule = None
    if pipeline.schedule is not None:
        req = schedule_request(
            pipeline.schedule,
            aws_name(sm_name, 64, "0-9a-zA-Z_.-"),
            state_machine_arn(sm_name, settings),
            settings.role_arn,
        )
        files["schedule.json"] = dump_json(req)
        schedule = "schedule.json"
    job_defs = []
    for name, image in sorted(em.job_definitions.items()):
        rel = f"batch/{name}.json"
        files[rel] = dump_json(compute.job_definition(em, name, image))
        job_defs.append(rel)
    specs = {}
    for step, (key, text) in sorted(em.specs.items()):
        rel = f"specs/{step}.json"
        files[rel] = text + "\n"
        specs[rel] = f"s3://{settings.bucket}/{key}"
    manifest = {
        "specs": specs,
        "state_machine": {"name": sm_name, "file": main_name, "arn": state_machine_arn(sm_name, settings)},
        "children": children,
        "schedule": schedule,
        "batch_job_definitions": job_defs,
        "role_arn": settings.role_arn,
        "region": settings.region,
        "compute": settings.compute,
        "runtime_attempts": {
            n.name: em.eff(n).retry.attempts for n in index.tasks() if settings.compute == "callback"
        },
        "states": {
            name: {"kind": kind, "step": step} for name, (kind, step) in sorted(em.names.kinds.items())
        },
    }
    policy, trust = iam.policies(
        definitions.values(),
        settings,
        machine_arn=state_machine_arn(sm_name, settings),
        child_arns=[c["arn"] for c in children],
        schedule=schedule is not None,
        secrets=any(em.eff(n).secrets for n in index.tasks()),
    )
    files["iam-policy.json"] = dump_json(policy)
    files["iam-trust-policy.json"] = dump_json(trust)
    files["deploy.json"] = definition_text(manifest, HARD_LIMIT)
    summary = {
        "state_machine": sm_name,
        "compute": settings.compute,
        "states": len(em.names.kinds),
        "definition_bytes": size,
        "child_state_machines": len(children),
        "history_events_estimate": events[0],
        "history_events_worst_case": events[1],
        "history_events_limit": settings.max_history_events,
        "state_bytes_estimate": em.state_bytes,
        "state_bytes_limit": STATE_LIMIT,
    }
    # SPEC §21: which images need the pipecast runtime. callback: the worker runs every step
    # on its host (container steps in their image, unchanged); sagemaker: python steps and the
    # container steps compute.stock_plan sends to the runtime; batch: every step (no staging).
    summary["runtime_images"] = (
        {}
        if settings.compute == "callback"
        else stock.runtime_images(
            index,
            em.stock_plans
            if settings.compute == "sagemaker"
            else stock.runtime_only(index, "Batch stages no files: the runtime moves artifacts"),
            settings.default_image,
        )
    )
    if em.wait_for:
        # dag_mode waits: edges nested Parallel states cannot order, kept as S3 waits.
        summary["cross_branch_waits"] = sum(len(v) for v in em.wait_for.values())
    if em.assumed_widths:
        summary["assumed_fan_out_widths"] = dict(sorted(em.assumed_widths.items()))
    if em.names.shortened:
        summary["shortened_names"] = len(em.names.shortened)
    return CompileResult(files=files, diagnostics=diags, summary=summary)
