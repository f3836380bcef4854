"""The resolved form of a validated pipeline (issue 16): references and conditions parsed and
typed once, so that the simulator, the runtime helpers and every backend read typed nodes
instead of parsing ``{{ }}`` templates or ``when`` strings again.

* every value a step reads (an input, a ``for_each`` list, a group/pipeline output, an
  import URI) is a :data:`Value`: a :class:`Lit` with its JSON type, a :class:`RefNode`
  subclass (:class:`ParamRef`, :class:`StepOutput` — :class:`MetricValue` for SPEC §15
  ``steps.S.outputs.M.NAME`` —, :class:`LoopItem`, :class:`PipelineField`, and
  :class:`GroupStatus` for SPEC §18 ``group.status``), a :class:`Text` (a mixed string: its
  literal parts and references, ``\\{{`` escapes decoded) or a :class:`ListOf` /
  :class:`DictOf` of values (SPEC §19);
* every ``when`` is an expression tree of :mod:`pipecast.ir.condition` nodes whose
  :class:`~pipecast.ir.condition.Path` operands carry their type and resolved node and whose
  :class:`~pipecast.ir.condition.Literal` operands carry their JSON type;
* every step knows its effective settings after ``defaults`` (:attr:`ResolvedStep.effective`),
  its sibling dependencies and the groups it sits in.

The form is built once per pipeline index (``index.resolved``) and lazily per step, so a
consumer that needs a handful of steps pays for a handful. Types come from
:meth:`PipelineIndex.resolve`, whose cache the validator has already filled: the types the
validator computes are the ones recorded here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipecast.ir import condition as cond
from pipecast.ir import values
from pipecast.ir.models import ImportSpec, TaskStep
from pipecast.ir.refs import Ref, RefSyntaxError, render_value
from pipecast.passes.parse import parse_condition, parse_template, single_ref

if TYPE_CHECKING:
    from pipecast.passes.analysis import EffectiveTask, FinallyKind, PipelineIndex, Scope, StepNode

ANY = "any"


# ---------------------------------------------------------------------------- value nodes


@dataclass(frozen=True)
class Lit:
    """A literal value (no reference in it) with its JSON type (``any`` for ``null``)."""

    value: Any
    type: str


@dataclass(frozen=True)
class RefNode:
    """One reference, resolved: ``ref`` is what was written, ``type`` the value's type
    (``any`` when not known statically)."""

    ref: Ref
    type: str

    @property
    def path(self) -> str:
        return self.ref.path


@dataclass(frozen=True)
class ParamRef(RefNode):
    """``params.NAME``."""

    @property
    def name(self) -> str:
        return self.ref.name


@dataclass(frozen=True)
class StepOutput(RefNode):
    """``steps.S.outputs.O``: ``producer`` is the step that produces the value (a dotted name
    for a step of a lowered sub-pipeline, SPEC §16), ``sibling`` the producer's sibling the
    reading step waits for (``None`` for group and pipeline outputs)."""

    producer: str = ""
    sibling: str | None = None

    @property
    def output(self) -> str:
        return self.ref.key or ""


@dataclass(frozen=True)
class MetricValue(StepOutput):
    """``steps.S.outputs.M.NAME`` (SPEC §15): one metric of a ``Metrics`` output, a float."""

    @property
    def metric(self) -> str:
        return self.ref.metric or ""


@dataclass(frozen=True)
class LoopItem(RefNode):
    """A loop variable (``item``) or one key of a dict item (``item.k``); ``group`` is the
    ``for_each`` group that binds it."""

    group: str = ""

    @property
    def key(self) -> str | None:
        return self.ref.key


@dataclass(frozen=True)
class PipelineField(RefNode):
    """``pipeline.name`` / ``pipeline.run_id`` / ``pipeline.status`` (the last in ``finally``)."""

    @property
    def field(self) -> str:
        return self.ref.name


@dataclass(frozen=True)
class GroupStatus(RefNode):
    """``group.status`` inside a group's ``finally`` (SPEC §18)."""


@dataclass(frozen=True)
class Text:
    """A string with references in it: literal parts and references, rendered at run time
    (strings bare, other values as compact JSON)."""

    parts: tuple[str | RefNode, ...]

    @property
    def refs(self) -> tuple[RefNode, ...]:
        return tuple(p for p in self.parts if isinstance(p, RefNode))


@dataclass(frozen=True)
class ListOf:
    """A list literal holding references (SPEC §19), built item by item."""

    items: tuple[Value, ...]


@dataclass(frozen=True)
class DictOf:
    """A mapping literal holding references (SPEC §19), built entry by entry."""

    items: tuple[tuple[str, Value], ...]


Value = Lit | RefNode | Text | ListOf | DictOf


def refs_of(value: Value) -> Iterator[RefNode]:
    """Every reference a value reads, in writing order."""
    if isinstance(value, RefNode):
        yield value
    elif isinstance(value, Text):
        yield from value.refs
    elif isinstance(value, ListOf):
        for item in value.items:
            yield from refs_of(item)
    elif isinstance(value, DictOf):
        for _k, item in value.items:
            yield from refs_of(item)


def is_dynamic(value: Value) -> bool:
    """Whether a value reads a reference (anything but a :class:`Lit`)."""
    return not isinstance(value, Lit)


def type_of(value: Value) -> str:
    """The type of a resolved value (a mixed string is a ``str``)."""
    if isinstance(value, Lit | RefNode):
        return value.type
    if isinstance(value, Text):
        return "str"
    return "list" if isinstance(value, ListOf) else "dict"


def evaluate_value(
    value: Value, lookup: Callable[[RefNode], Any], *, item: Callable[[Any], Any] = lambda v: v
) -> Any:
    """A value at run time (SPEC §4, §19): a reference keeps its type, a mixed string is a
    ``str``; ``item`` converts a value read inside a mixed string or a structured literal (the
    simulator passes an artifact as its local path there)."""
    if isinstance(value, Lit):
        return value.value
    if isinstance(value, RefNode):
        return lookup(value)
    if isinstance(value, Text):
        return "".join(p if isinstance(p, str) else render_value(item(lookup(p))) for p in value.parts)
    if isinstance(value, ListOf):
        return [_structured(v, lookup, item) for v in value.items]
    return {k: _structured(v, lookup, item) for k, v in value.items}


def _structured(value: Value, lookup: Callable[[RefNode], Any], item: Callable[[Any], Any]) -> Any:
    if isinstance(value, RefNode):
        return item(lookup(value))
    return evaluate_value(value, lookup, item=item)


# ---------------------------------------------------------------------------- steps


@dataclass(eq=False)
class ResolvedStep:
    """One step (task, group or ``finally``) in resolved form.

    Attributes:
        name: the step's name.
        node: its place in the index.
        inputs: a task's inputs.
        when: its condition, typed; ``None`` without one.
        for_each: a loop group's list.
        outputs: a group's outputs (read in its body / then-branch).
        else_outputs: a ``when`` group's ``else`` outputs (read in the else branch).
        import_uri: an import step's URI (SPEC §13).
    """

    name: str
    node: StepNode
    inputs: dict[str, Value] = field(default_factory=dict)
    when: cond.Expr | None = None
    for_each: Value | None = None
    outputs: dict[str, Value] = field(default_factory=dict)
    else_outputs: dict[str, Value] = field(default_factory=dict)
    import_uri: Value | None = None
    _index: PipelineIndex | None = field(default=None, repr=False)
    _effective: EffectiveTask | None = field(default=None, repr=False)

    @property
    def effective(self) -> EffectiveTask:
        """A task's settings after ``defaults`` (retry, resources, env, cache, image, timeout)."""
        if self._effective is None:
            assert self._index is not None
            self._effective = self._index.effective(self.node)
        return self._effective

    @property
    def groups(self) -> tuple[str, ...]:
        """The enclosing groups, innermost first (none for the pipeline's ``finally``)."""
        assert self._index is not None
        if self.node is self._index.finally_node:
            return ()
        return tuple(g.name for g in self._index.ancestors(self.node))

    @property
    def deps(self) -> list[str]:
        """The siblings (in the step's own scope) it waits for, in writing order."""
        assert self._index is not None
        return self._index.deps(self.node.scope).get(self.name, [])


class Resolved:
    """The resolved form of a pipeline; see the module docstring. Build it with
    ``index.resolved`` (once per index)."""

    def __init__(self, index: PipelineIndex) -> None:
        self.index = index
        self._steps: dict[int, ResolvedStep] = {}
        self._outputs: dict[str, Value] | None = None
        self._loop_vars: dict[int, dict[str, StepNode]] = {}

    def step(self, node: StepNode | str) -> ResolvedStep:
        """The resolved form of a step (by node or name, ``finally`` included)."""
        if isinstance(node, str):
            node = self.index.node(node)
        found = self._steps.get(id(node))
        if found is None:
            found = self._steps[id(node)] = self._build(node)
        return found

    def __iter__(self) -> Iterator[ResolvedStep]:
        """Every step in writing order (groups and tasks), ``finally`` last."""
        for node in self.index.walk():
            yield self.step(node)
        if self.index.finally_node is not None:
            yield self.step(self.index.finally_node)

    @property
    def outputs(self) -> dict[str, Value]:
        """The pipeline's outputs, read at its top level."""
        if self._outputs is None:
            root = self.index.root
            self._outputs = {k: self.value(v, root, None) for k, v in self.index.pipeline.outputs.items()}
        return self._outputs

    # ------------------------------------------------------------------ building

    def _build(self, node: StepNode) -> ResolvedStep:
        index = self.index
        step = node.step
        out = ResolvedStep(
            name=node.name,
            node=node,
            _index=index,
        )
        if isinstance(step, TaskStep):
            # A group's finally (SPEC §18) reads as its group; the pipeline's finally as itself.
            scope, dependent, in_finally = index.context(node)
            if step.when is not None:
                out.when = self.condition(step.when, scope, dependent, in_finally)
            out.inputs = {k: self.value(v, scope, dependent, in_finally) for k, v in step.inputs.items()}
            spec = step.import_
            if isinstance(spec, ImportSpec):
                out.import_uri = self.value(spec.uri, scope, dependent, in_finally)
            return out
        if step.when is not None:
            out.when = self.condition(step.when, node.scope, node.name)
        if step.is_loop:
            out.for_each = self.value(step.for_each, node.scope, node.name)
        if node.body is not None:
            out.outputs = {k: self.value(v, node.body, None) for k, v in step.outputs.items()}
        if step.else_ is not None and node.else_body is not None:
            out.else_outputs = {k: self.value(v, node.else_body, None) for k, v in step.else_.outputs.items()}
        return out

    def value(self, raw: Any, scope: Scope, dependent: str | None, in_finally: FinallyKind = False) -> Value:
        """Resolve one value as written in the pipeline, read in ``scope`` by sibling
        ``dependent`` (``None`` for group and pipeline outputs)."""
        if isinstance(raw, str):
            if "{{" not in raw:
                return Lit(raw, "str")
            ref = single_ref(raw)  # a lone reference keeps its type, surrounding blanks aside
            if ref is not None:
                return self.ref(ref, scope, dependent, in_finally)
            parts = tuple(
                seg if isinstance(seg, str) else self.ref(seg, scope, dependent, in_finally)
                for seg in parse_template(raw)
            )
            if all(isinstance(p, str) for p in parts):
                return Lit("".join(p for p in parts if isinstance(p, str)), "str")  # only escapes
            return Text(parts)
        if isinstance(raw, list):
            items = tuple(self.value(v, scope, dependent, in_finally) for v in raw)
            if not any(is_dynamic(v) for v in items):
                return Lit([v.value for v in items if isinstance(v, Lit)], "list")  # escapes decoded
            return ListOf(items)
        if isinstance(raw, dict):
            entries = tuple((k, self.value(v, scope, dependent, in_finally)) for k, v in raw.items())
            if not any(is_dynamic(v) for _k, v in entries):
                return Lit({k: v.value for k, v in entries if isinstance(v, Lit)}, "dict")
            return DictOf(entries)
        return Lit(raw, values.json_type_of(raw) or ANY)

    def ref(self, ref: Ref, scope: Scope, dependent: str | None, in_finally: FinallyKind = False) -> RefNode:
        """One reference with its type and, for a step output, its producer."""
        kind = ref.kind
        if kind in ("inputs", "outputs"):  # container placeholders (validated elsewhere)
            return RefNode(ref, "str")
        res = self.index.resolve(ref, scope, dependent=dependent, in_finally=in_finally)
        type_ = res.type or ANY
        if kind == "param":
            return ParamRef(ref, type_)
        if kind == "step":
            sibling = res.dependency[2] if res.dependency is not None else None
            producer = res.target or ref.name
            if ref.metric is not None:
                return MetricValue(ref, type_, producer, sibling)
            return StepOutput(ref, type_, producer, sibling)
        if kind == "loop":
            group = self._loops(scope).get(ref.name)
            return LoopItem(ref, type_, group.name if group is not None else "")
        if kind == "pipeline":
            return PipelineField(ref, type_)
        if kind == "group":  # SPEC §18; a loop variable named 'group' shadows it
            group = self._loops(scope).get("group")
            if group is not None:
                return LoopItem(Ref("loop", "group", ref.name), type_, group.name)
            return GroupStatus(ref, type_)
        return RefNode(ref, type_)

    def _loops(self, scope: Scope) -> dict[str, StepNode]:
        found = self._loop_vars.get(id(scope))
        if found is None:
            found = self._loop_vars[id(scope)] = self.index.loop_vars(scope)
        return found

    def condition(
        self, text: str, scope: Scope, dependent: str | None, in_finally: FinallyKind = False
    ) -> cond.Expr:
        """A ``when`` expression with every path operand typed and resolved."""

        def typed(expr: cond.Expr) -> cond.Expr:
            if isinstance(expr, cond.Path):
                node = self.ref(expr.ref, scope, dependent, in_finally)
                return cond.Path(expr.ref, node.type, node)
            if isinstance(expr, cond.Literal):
                return expr
            if isinstance(expr, cond.Not):
                return cond.Not(typed(expr.operand))
            if isinstance(expr, cond.BoolOp):
                return cond.BoolOp(expr.op, tuple(typed(o) for o in expr.operands))
            if isinstance(expr, cond.Compare):
                return cond.Compare(expr.op, typed(expr.left), typed(expr.right))
            if isinstance(expr, cond.In):
                return cond.In(typed(expr.operand), expr.options)
            raise TypeError(expr)

        return typed(parse_condition(text))


def has_template_text(raw: Any) -> bool:
    """Whether a value as written holds ``{{`` anywhere (a reference or a ``\\{{`` escape): a
    target that hands the written text to the runtime must have it rendered there."""
    if isinstance(raw, str):
        return "{{" in raw
    if isinstance(raw, list):
        return any(has_template_text(v) for v in raw)
    if isinstance(raw, dict):
        return any(has_template_text(v) for v in raw.values())
    return False


def command_parts(arg: str) -> tuple[str | Ref, ...]:
    """One argument of a container's ``command``/``args``: literal text (``\\{{`` escapes
    decoded) and the ``{{ inputs.X }}`` / ``{{ outputs.Y }}`` references in it, in order."""
    return tuple(parse_template(arg)) if "{{" in arg else (arg,)


def literal_type(value: Any) -> str:
    """The JSON type of a literal (``any`` for ``null``)."""
    return values.json_type_of(value) or ANY


__all__ = [
    "DictOf",
    "GroupStatus",
    "ListOf",
    "Lit",
    "LoopItem",
    "MetricValue",
    "ParamRef",
    "PipelineField",
    "RefNode",
    "RefSyntaxError",
    "Resolved",
    "ResolvedStep",
    "StepOutput",
    "Text",
    "Value",
    "command_parts",
    "evaluate_value",
    "has_template_text",
    "is_dynamic",
    "literal_type",
    "refs_of",
    "type_of",
]
