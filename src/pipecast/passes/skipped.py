"""Which references may read the output of a skipped producer (SPEC §22, docs/semantics.md).

A pipeline output (or a ``when`` group branch's output) that reads an output a skipped
step did not produce is *absent* from the run's outputs: the run succeeds and the other
outputs are there, as the simulator does. Targets that assemble outputs in the definition
(Step Functions) use :func:`optional_refs` to know which outputs need a presence check.
"""

from __future__ import annotations

from pipecast.ir.refs import Ref
from pipecast.passes.analysis import PipelineIndex, Scope
from pipecast.passes.resolve import Value, refs_of


def may_be_missing(
    index: PipelineIndex, name: str, key: str | None, seen: frozenset[str] = frozenset()
) -> bool:
    """Whether output ``key`` of step or group ``name`` may be absent when it is read.

    A task with a ``when`` (readers of skipped steps inherit their producers' conditions, see
    :func:`pipecast.passes.lower.guard_readers`); a ``when`` group without ``else``; a ``when``
    or plain group whose branch output reads such an output; a ``for_each`` group with a
    ``when`` or over such an output. A ``for_each`` group's outputs otherwise always exist.
    """
    node = index.nodes.get(name)
    if node is None or name in seen:
        return False
    seen = seen | {name}
    if node.is_task:
        return node.task.when is not None
    group = node.group
    if group.for_each is not None:
        for_each = node.resolved.for_each
        reads = list(refs_of(for_each)) if for_each is not None else []
        return group.when is not None or any(
            r.ref.kind == "step" and may_be_missing(index, r.ref.name, r.ref.key, seen) for r in reads
        )
    if group.when is not None and group.else_ is None:
        return True
    branches: list[tuple[Scope | None, dict[str, str]]] = [(node.body, group.outputs)]
    if group.else_ is not None:
        branches.append((node.else_body, group.else_.outputs))
    for body, outputs in branches:
        if body is None or key not in outputs:
            continue
        value = index.resolved.value(outputs[key], body, None)
        if optional_refs(index, value, seen):
            return True
    return False


def optional_refs(index: PipelineIndex, value: Value, seen: frozenset[str] = frozenset()) -> list[Ref]:
    """The step references in ``value`` whose producer may have been skipped (writing order)."""
    return [
        r.ref
        for r in refs_of(value)
        if r.ref.kind == "step"
        and r.ref.metric is None
        and may_be_missing(index, r.ref.name, r.ref.key, seen)
    ]
