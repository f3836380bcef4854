"""IR → IR lowerings applied before a pipeline is compiled or simulated.

Each lowering is pure and keeps the pipeline's meaning; emitters then see fewer forms.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pipecast.ir.models import ContainerRun, ElseBranch, GroupStep, Pipeline, TaskStep

if TYPE_CHECKING:
    from pipecast.passes.analysis import PipelineIndex

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
    fin = _task(step.finally_) if step.finally_ is not None else None
    if inner is step.steps and else_ is step.else_ and fin is step.finally_:
        return step
    return step.model_copy(update={"steps": inner, "else_": else_, "finally_": fin})


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


def guard_readers(pipeline: Pipeline, index: PipelineIndex | None = None) -> Pipeline:
    """SPEC §22 skipped producers: a task that reads an output of a task with a ``when``
    inherits that condition (conjoined with its own, producers' first), transitively.

    A step whose producer was skipped is skipped; a condition that holds exactly when every
    producer ran says the same in a form every target already runs (Step Functions
    ``Choice``, KFP ``triggerPolicy``, Airflow branches, Azure ML ``if_else``), so no target
    has to detect a missing output at run time. ``after`` adds no condition (SPEC §22: it
    still runs). Producers are tasks, and sub-pipeline steps with a ``when`` (SPEC §17: like a
    task with ``when``, their outputs exist only if they ran); a ``when`` group's output exists
    when the branch that ran produced it (``_Guards.branch``: the group's condition and that
    branch's producer's guards), and a ``for_each`` group's outputs always
    exist (docs/semantics.md: they collect the items where the inner step ran).

    ``index``: the pipeline's index when the caller has it already (validation built it, and
    its references are resolved once there); otherwise one is built.
    """
    from pipecast.passes.analysis import PipelineIndex

    if index is None or index.pipeline is not pipeline:
        index = PipelineIndex(pipeline)
    guards = _Guards(index).of

    changed: dict[str, str] = {}
    for node in index.walk():
        if not node.is_task:
            continue
        own = node.task.when.strip() if node.task.when is not None else None
        conds = guards(node.name)
        if conds and conds != ((own,) if own else ()):
            changed[node.name] = " and ".join(f"({c})" if len(conds) > 1 else c for c in conds)
    if not changed:
        return pipeline
    return _with_whens(pipeline, changed)


class _Guards:
    """The conditions under which each task runs, for :func:`guard_readers` (memoised)."""

    def __init__(self, index: PipelineIndex) -> None:
        self.index = index
        self.memo: dict[str, tuple[str, ...]] = {}

    def of(self, name: str, seen: frozenset[str] = frozenset()) -> tuple[str, ...]:
        """The conditions under which task ``name`` runs (inherited first, then its own)."""
        if name in self.memo:
            return self.memo[name]
        index = self.index
        node = index.nodes[name]
        found: list[str] = []
        if node.is_task and name not in seen:
            for _path, ref in index.input_refs(node):
                if ref.kind != "step":
                    continue
                res = index.resolve(ref, node.scope, dependent=node.name)
                producer = index.nodes.get(res.target or "")
                if not res.ok or producer is None:
                    continue
                if producer.is_task or _gated_subpipeline(producer):
                    found += self.of(producer.name, seen | {name})
                elif ref.key is not None:
                    branch = self.branch(producer, ref.key, seen | {name})
                    found += [branch] if branch is not None else []
            if node.task.when is not None:
                found.append(node.task.when.strip())
        elif _gated_subpipeline(node) and node.group.when is not None:
            found.append(node.group.when.strip())
        self.memo[name] = tuple(dict.fromkeys(found))
        return self.memo[name]

    def branch(self, group: Any, key: str, seen: frozenset[str]) -> str | None:
        """When an output of a ``when`` group with ``else`` exists: the branch that ran
        produced it (``(G and <then producer's guards>) or (not (G) and <else producer's>)``);
        None when both branches always produce it, or a guard reads a step inside the group
        (not visible to the reader, which then keeps failing on a skipped producer)."""
        from pipecast.passes.resolve import StepOutput

        step = group.step
        if (
            not isinstance(step, GroupStep)
            or step.when is None
            or step.else_ is None
            or step.for_each is not None
        ):
            return None
        sides: list[tuple[str, ...]] = []
        for value in (group.resolved.outputs.get(key), group.resolved.else_outputs.get(key)):
            producer = self.index.nodes.get(value.ref.name) if isinstance(value, StepOutput) else None
            sides.append(self.of(producer.name, seen) if producer is not None and producer.is_task else ())
        if not any(sides):
            return None
        inside = {n.name for body in (group.body, group.else_body) for n in self.index.walk(body)}
        if any(m in inside for c in (*sides[0], *sides[1]) for m in _STEP_REF.findall(c)):
            return None
        cond = step.when.strip()
        then_c = " and ".join(f"({c})" for c in (cond, *sides[0]))
        else_c = " and ".join(f"({c})" for c in (f"not ({cond})", *sides[1]))
        return f"({then_c}) or ({else_c})"


#: A step reference inside a condition (``steps.S.outputs.O``): its step name.
_STEP_REF = re.compile(r"\bsteps\.(\w+)\.")


def _with_whens(pipeline: Pipeline, changed: dict[str, str]) -> Pipeline:
    """``pipeline`` with the ``when`` of each task named in ``changed`` replaced."""

    def step(name: str, s: TaskStep | GroupStep) -> TaskStep | GroupStep:
        if isinstance(s, TaskStep):
            return s.model_copy(update={"when": changed[name]}) if name in changed else s
        inner = {k: step(k, v) for k, v in s.steps.items()}
        else_ = s.else_
        if else_ is not None:
            else_ = ElseBranch.model_construct(
                _fields_set=else_.model_fields_set,
                steps={k: step(k, v) for k, v in else_.steps.items()},
                outputs=else_.outputs,
            )
        return s.model_copy(update={"steps": inner, "else_": else_})

    return pipeline.model_copy(update={"steps": {k: step(k, v) for k, v in pipeline.steps.items()}})


def _gated_subpipeline(node: Any) -> bool:
    """A sub-pipeline ``uses:`` step with ``when`` and no ``else`` (SPEC §17)."""
    group = node.step
    return (
        isinstance(group, GroupStep)
        and group.subpipeline is not None
        and group.when is not None
        and group.else_ is None
    )
