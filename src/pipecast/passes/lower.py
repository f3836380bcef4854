"""IR → IR lowerings applied before a pipeline is compiled or simulated.

Each lowering is pure and keeps the pipeline's meaning; emitters then see fewer forms.
"""

from __future__ import annotations

import re
from typing import Any

from pipecast.ir.models import ContainerRun, ElseBranch, GroupStep, Pipeline, TaskStep

#: Prefix of inputs that lowerings add; user input names may not start with it.
RESERVED_INPUT_PREFIX = "__pipecast_"
_PIPELINE_REF = re.compile(r"\{\{\s*pipeline\.(name|run_id)\s*\}\}")


def pipeline_refs_as_inputs(pipeline: Pipeline) -> Pipeline:
    """Turn ``{{ pipeline.name }}`` / ``{{ pipeline.run_id }}`` in container commands into inputs.

    SPEC §4 allows those references everywhere, but a container command only has
    ``{{ inputs.X }}`` / ``{{ outputs.Y }}`` placeholders at run time. Rewriting
    ``{{ pipeline.run_id }}`` to ``{{ inputs.__pipecast_run_id }}`` plus an input
    ``__pipecast_run_id: "{{ pipeline.run_id }}"`` lets every target deliver the value the
    way it already delivers references in inputs.
    """
    steps = _steps(pipeline.steps)
    fin = _task(pipeline.finally_) if pipeline.finally_ is not None else None
    if steps is pipeline.steps and fin is pipeline.finally_:
        return pipeline
    return pipeline.model_copy(update={"steps": steps, "finally_": fin})


def _steps(steps: dict[str, Any]) -> dict[str, Any]:
    out = {name: _step(step) for name, step in steps.items()}
    return steps if all(out[n] is steps[n] for n in steps) else out


def _step(step: TaskStep | GroupStep) -> TaskStep | GroupStep:
    if isinstance(step, TaskStep):
        return _task(step)
    inner = _steps(step.steps)
    else_ = step.else_
    if else_ is not None:
        else_steps = _steps(else_.steps)
        if else_steps is not else_.steps:
            else_ = ElseBranch.model_construct(
                _fields_set=else_.model_fields_set, steps=else_steps, outputs=else_.outputs
            )
    if inner is step.steps and else_ is step.else_:
        return step
    return step.model_copy(update={"steps": inner, "else_": else_})


def _task(task: TaskStep) -> TaskStep:
    run = task.run
    if not isinstance(run, ContainerRun):
        return task
    used: set[str] = set()

    def rewrite(text: str) -> str:
        def repl(match: re.Match[str]) -> str:
            used.add(match.group(1))
            return "{{ inputs." + RESERVED_INPUT_PREFIX + match.group(1) + " }}"

        return _PIPELINE_REF.sub(repl, text)

    command = [rewrite(c) for c in run.command]
    args = [rewrite(a) for a in run.args]
    if not used:
        return task
    inputs = dict(task.inputs)
    for field in sorted(used):
        inputs[RESERVED_INPUT_PREFIX + field] = "{{ pipeline." + field + " }}"
    # Only touch fields that were written, so the lowered node serialises like the original.
    update: dict[str, Any] = {"command": command}
    if "args" in run.model_fields_set:
        update["args"] = args
    new_run = run.model_copy(update=update)
    return task.model_copy(update={"run": new_run, "inputs": inputs})
