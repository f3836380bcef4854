"""Container steps on stock images (SPEC §21): the shared half of every backend's emitter.

A container step's ``command``/``args`` hold ``{{ inputs.X }}`` / ``{{ outputs.Y }}`` slots.
A target fills them with its own placeholder mechanism (KFP ``{{$.inputs...}}``, Azure ML
``${{inputs.x}}``, SageMaker Processing paths, Airflow templated arguments), so the image
needs nothing from pipecast. This module:

* splits each argument into literal text and slots (:func:`arg_parts`) and renders an
  argument list with a backend's ``fill`` for slots and ``literal`` for user text
  (:func:`render_args`): a backend's placeholder generation stays apart from the escaping of
  user text, and user text never becomes a placeholder;
* classifies each input a slot reads (:func:`input_kind`, :func:`slot_ref`): a literal value (written into the
  command as text), one plain reference the target can bind (``param``/``step``/a whole loop
  item), or something only the pipecast runtime can build (a mixed string, a structured
  value, a loop item's key, ``pipeline.*``);
* collects, per backend, the reasons a step cannot run stock (:func:`plan`, one setup for every
  backend, which adds only its own reasons; :class:`StockPlan`) and the
  images that therefore need the runtime (:func:`runtime_images`), which ``pipecast compile``
  prints.

A backend decides what each reason means for it: fall back to the runtime wrapper (the
image then needs the pipecast runtime, and compile lists it), or a named error (§13).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pipecast.ir.models import ContainerRun, PythonRun
from pipecast.ir.refs import Ref
from pipecast.passes.analysis import PipelineIndex, StepNode
from pipecast.passes.resolve import LoopItem, ParamRef, RefNode, StepOutput, Value, command_parts


@dataclass(frozen=True)
class Slot:
    """One ``{{ inputs.X }}`` or ``{{ outputs.Y }}`` in a command argument."""

    kind: Literal["inputs", "outputs"]
    name: str


Part = str | Slot
InputKind = Literal["literal", "ref", "runtime"]


def arg_parts(arg: str) -> list[Part]:
    """One command argument as literal text and slots, in order. Literal text is unescaped
    (SPEC §19: ``\\{{`` is a literal ``{{``), so a backend's ``literal`` sees exactly the text
    the step must get."""
    parts: list[Part] = []
    for seg in command_parts(arg):
        if isinstance(seg, Ref) and seg.kind in ("inputs", "outputs"):
            kind: Literal["inputs", "outputs"] = "inputs" if seg.kind == "inputs" else "outputs"
            parts.append(Slot(kind, seg.name))
        else:
            parts.append(seg if isinstance(seg, str) else str(seg))
    return parts or [""]


def render_args(
    args: list[str], fill: Callable[[Slot], str], literal: Callable[[str], str] = lambda s: s
) -> list[str]:
    """``args`` with each slot filled by ``fill`` and each piece of literal text passed through
    ``literal`` (the target's escaping of user text: user text never becomes a placeholder)."""
    return ["".join(fill(p) if isinstance(p, Slot) else literal(p) for p in arg_parts(a)) for a in args]


def sh_text(text: str) -> str:
    """User text as one POSIX shell word: single-quoted pieces joined by ``\\$``, so no ``$``
    is followed by ``{`` or ``[`` (Azure ML reads ``${{``/``$[[`` in a command as its own
    expression) and the shell expands nothing."""
    import shlex

    return "\\$".join(shlex.quote(piece) for piece in text.split("$"))


def sh_locate_artifact(var: str) -> str:
    """A shell line turning ``$var`` (a folder holding an artifact as pipecast stores it: a file
    next to the marker, or the folder's own contents) into the artifact's path."""
    from pipecast.runtime.conventions.base import MARKER

    return f'if [ -f "${var}/{MARKER}" ]; then for f in "${var}"/*; do {var}=$f; done; fi'


def sh_store_marker(folder: str, name: str) -> str:
    """A shell line writing the marker that names ``<folder>/<name>`` (what a stock command wrote
    at ``{{ outputs.<name> }}``), so readers find it as they find any stored artifact."""
    from pipecast.runtime.conventions.base import MARKER

    return f'printf %s {sh_text(json.dumps({"file": name}))} > "{folder}/{MARKER}"'


def seconds_text(value: float) -> str:
    """A duration for ``timeout``/``sleep`` in a command: whole seconds as digits, else the
    shortest decimal."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def slots(run: ContainerRun) -> list[Slot]:
    """Every slot of the command, first use first, without repeats."""
    seen: dict[Slot, None] = {}
    for arg in [*run.command, *run.args]:
        for p in arg_parts(arg):
            if isinstance(p, Slot):
                seen.setdefault(p)
    return list(seen)


def input_kind(value: Any, resolved: Value | None = None) -> InputKind:
    """How an input value can reach a stock command.

    ``literal``: a JSON value without references (written into the command as text);
    ``ref``: exactly one reference to a parameter, a step or group output, or a whole loop
    item (the target binds it); ``runtime``: anything the pipecast runtime renders (a mixed
    string, a structured value holding references, a loop item's key, ``pipeline.*``).
    ``resolved`` is the input's resolved form (``node.resolved.inputs[name]``); without it a
    value with references is ``runtime``.
    """
    if not _has_refs(value):
        return "literal"
    if isinstance(resolved, ParamRef | StepOutput):
        return "ref"
    if isinstance(resolved, LoopItem) and resolved.key is None:
        return "ref"
    return "runtime"


def _has_refs(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, list):
        return any(_has_refs(v) for v in value)
    if isinstance(value, dict):
        return any(_has_refs(v) for v in value.values())
    return False


def literal_text(value: Any) -> str:
    """A literal input as command-line text (SPEC §3.1): a string raw, anything else JSON."""
    from pipecast.runtime._values import to_text

    return to_text(value)


def slot_ref(node: StepNode, slot: Slot) -> Ref | None:
    """The reference an input slot reads, when it is a plain one (see :func:`input_kind`)."""
    value = node.task.inputs.get(slot.name)
    resolved = node.resolved.inputs.get(slot.name)
    if input_kind(value, resolved) != "ref":
        return None
    assert isinstance(resolved, RefNode)
    return resolved.ref


@dataclass
class StockPlan:
    """Whether a container step runs its image unchanged on one target, and if not, why.

    Attributes:
        node: the step.
        reasons: what only the pipecast runtime could do for this step on this target;
            empty: the step runs stock.
    """

    node: StepNode
    reasons: list[str] = field(default_factory=list)

    @property
    def stock(self) -> bool:
        return not self.reasons


def common_reasons(node: StepNode) -> list[str]:
    """Reasons shared by every target: inputs only the runtime can build (see :func:`input_kind`)."""
    run = node.task.run
    assert isinstance(run, ContainerRun)
    reasons = []
    for slot in slots(run):
        value = node.task.inputs.get(slot.name)
        if (
            slot.kind == "inputs"
            and value is not None
            and input_kind(value, node.resolved.inputs.get(slot.name)) == "runtime"
        ):
            reasons.append(
                f"input {slot.name!r} is built at run time (a mixed string, a structured value, "
                "a loop item's key or pipeline.*)"
            )
    return reasons


#: The reason every target gives for a step with secrets: they reach its variables through the
#: runtime (each target's store: Secrets Manager, Key Vault, Secret Manager, Airflow Variables).
SECRETS_REASON = "secrets reach the step's variables through the runtime"
PIPELINE_FIELDS_REASON = "the command uses {{ pipeline.* }} (the runtime fills it)"
_PIPELINE_FIELD = re.compile(r"\{\{\s*pipeline\.")


def uses_pipeline_fields(run: ContainerRun) -> bool:
    """Whether the command reads ``{{ pipeline.* }}`` (only the runtime fills it on some targets)."""
    return any(_PIPELINE_FIELD.search(a) for a in [*run.command, *run.args])


def plan(
    plans: dict[str, StockPlan],
    node: StepNode,
    reasons: Callable[[ContainerRun], Iterable[str]] = lambda run: (),
    input_reason: Callable[[Slot, Ref], str | None] = lambda slot, ref: None,
    later: Callable[[ContainerRun], Iterable[str]] = lambda run: (),
) -> StockPlan | None:
    """Whether a container step runs its image unchanged on a target (``None``: a python step):
    the one plan every backend makes, kept per step in ``plans``.

    Its reasons, in order: :func:`common_reasons`, the target's ``reasons(run)``, then for each
    input slot that reads a plain reference, ``input_reason(slot, ref)`` (``None``: no reason),
    then ``later(run)``. The callables run once per step (not for a step already planned).
    """
    run = node.task.run
    if not isinstance(run, ContainerRun):
        return None
    found = plans.get(node.name)
    if found is not None:
        return found
    made = StockPlan(node, common_reasons(node))
    made.reasons.extend(reasons(run))
    for slot in slots(run):
        ref = slot_ref(node, slot) if slot.kind == "inputs" else None
        reason = input_reason(slot, ref) if ref is not None else None
        if reason:
            made.reasons.append(reason)
    made.reasons.extend(later(run))
    plans[node.name] = made
    return made


def runtime_only(index: PipelineIndex, reason: str) -> dict[str, StockPlan]:
    """A plan for every container step of a target that runs them all through the runtime."""
    return {n.name: StockPlan(n, [reason]) for n in index.tasks() if isinstance(n.task.run, ContainerRun)}


def runtime_images(
    index: PipelineIndex, stock: Mapping[str, StockPlan], default_image: str | None = None
) -> dict[str, list[str]]:
    """Image → the steps whose container runs the pipecast runtime on this target: every python
    step, and the container steps of ``stock`` whose plan has reasons (sorted, for printing)."""
    out: dict[str, list[str]] = {}
    for node in index.tasks():
        run = node.task.run
        if isinstance(run, ContainerRun):
            plan = stock.get(node.name)
            if plan is None or plan.stock:
                continue
            image = run.image
        elif isinstance(run, PythonRun):
            image = index.effective(node).image or default_image or "<no image>"
        else:
            continue  # an import step runs nothing
        out.setdefault(image, []).append(node.name)
    return {k: sorted(v) for k, v in sorted(out.items())}
