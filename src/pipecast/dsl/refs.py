"""References and conditions in the DSL.

A :class:`Value` stands for a SPEC §4 reference (a parameter, a step or group output, a
loop item, a pipeline field). Passing it to a step writes ``{{ ... }}``; ``str(value)``
gives the same text, so f-strings build mixed templates. Comparison and boolean
operators build a :class:`Cond`, rendered in SPEC §5 syntax for ``when``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pipecast.dsl._context import Builder, ScopeRec, StepRec, did_you_mean, dsl_error
from pipecast.ir import condition as cond
from pipecast.ir import values
from pipecast.ir.refs import Ref
from pipecast.passes.analysis import ANY, accepts, element_type
from pipecast.passes.frontend import condition_of

if TYPE_CHECKING:
    from pipecast.dsl.groups import ForEach, Group


_BOOL_HINT = (
    "a pipeline function runs once, at build time, so Python 'if'/'and'/'or'/'not' cannot see "
    "run-time values; use 'with when(cond):' and the operators &, |, ~"
)


class Value:
    """A reference to a run-time value (see the module docstring)."""

    __slots__ = ("_origin", "_ref", "_type")

    def __init__(self, ref: Ref, type_: str | None = None, origin: Any = None) -> None:
        self._ref = ref
        self._type = type_ or ANY
        self._origin = origin  # StepRec | Group | ForEach (loop items) | None

    # ----------------------------------------------------------------- text
    def __str__(self) -> str:
        return str(self._ref)

    def __format__(self, spec: str) -> str:
        return str(self._ref)

    def __repr__(self) -> str:
        return f"<pipecast ref {self._ref.path}: {self._type}>"

    __hash__ = object.__hash__

    # ----------------------------------------------------------------- loop items
    def __getitem__(self, key: str) -> Value:
        if self._ref.kind != "loop" or self._ref.key is not None:
            raise dsl_error(
                f"{self._ref.path} cannot be indexed",
                hint="only a for_each item can be indexed, one level deep: item['key'] (SPEC §4)",
            )
        if not isinstance(key, str) or not values.IDENT_RE.match(key):
            raise dsl_error(f"{key!r} is not a valid key of a loop item", hint="use an identifier key")
        return Value(Ref("loop", self._ref.name, key), ANY, self._origin)

    def __getattr__(self, key: str) -> Value:
        if not key.startswith("_") and self._type == "Metrics" and self._ref.kind == "step":
            return self.metric(key)
        if key.startswith("_") or self._ref.kind != "loop" or self._ref.key is not None:
            raise AttributeError(key)
        return self[key]

    def metric(self, name: str) -> Value:
        """One metric of a ``Metrics`` step output, a ``float`` (SPEC §15):
        ``ev.outputs.scores.auc`` or ``ev.outputs.scores.metric("auc")``."""
        ref = self._ref
        if self._type != "Metrics" or ref.kind != "step" or ref.metric is not None:
            raise dsl_error(
                f"{ref.path} is not a Metrics output of a step; only those have metrics",
                hint="declare the output as Metrics",
            )
        if not isinstance(name, str) or not values.IDENT_RE.match(name):
            raise dsl_error(f"{name!r} is not a valid metric name", hint="use an identifier")
        return Value(Ref("step", ref.name, ref.key, name), "float", self._origin)

    def __iter__(self) -> Any:
        raise dsl_error(
            f"cannot iterate over {self._ref.path} while building the pipeline",
            hint="use 'with for_each(values) as item:' to fan out at run time",
        )

    def __bool__(self) -> bool:
        raise dsl_error(f"the truth of {self._ref.path} is only known at run time", hint=_BOOL_HINT)

    # ----------------------------------------------------------------- conditions
    def _cmp(self, op: str, other: Any) -> Cond:
        return Cond(cond.Compare(op, cond.Path(self._ref), _operand(other)), (self, *_values_of(other)))

    def __eq__(self, other: object) -> Cond:  # type: ignore[override]
        return self._cmp("==", other)

    def __ne__(self, other: object) -> Cond:  # type: ignore[override]
        return self._cmp("!=", other)

    def __lt__(self, other: Any) -> Cond:
        return self._cmp("<", other)

    def __le__(self, other: Any) -> Cond:
        return self._cmp("<=", other)

    def __gt__(self, other: Any) -> Cond:
        return self._cmp(">", other)

    def __ge__(self, other: Any) -> Cond:
        return self._cmp(">=", other)

    def isin(self, options: list[Any] | tuple[Any, ...]) -> Cond:
        """``value in [a, b]`` (SPEC §5); the options are literals."""
        lits = tuple(_literal(o) for o in options)
        if not lits:
            raise dsl_error("isin() needs at least one option")
        return Cond(cond.In(cond.Path(self._ref), lits), (self,))

    def __invert__(self) -> Cond:
        return ~Cond.of(self)

    def __and__(self, other: Any) -> Cond:
        return Cond.of(self) & other

    def __rand__(self, other: Any) -> Cond:
        return Cond.of(other) & self

    def __or__(self, other: Any) -> Cond:
        return Cond.of(self) | other

    def __ror__(self, other: Any) -> Cond:
        return Cond.of(other) | self


def _literal(value: Any) -> cond.Literal:
    if isinstance(value, bool | int | str) or (isinstance(value, float) and math.isfinite(value)):
        return cond.Literal(value)
    raise dsl_error(
        f"{value!r} cannot appear in a condition",
        hint="conditions compare with numbers, strings and booleans (SPEC §5)",
    )


def _operand(value: Any) -> cond.Expr:
    if isinstance(value, Value):
        return cond.Path(value._ref)
    if isinstance(value, Cond):
        return value.expr
    return _literal(value)


def _values_of(value: Any) -> tuple[Value, ...]:
    if isinstance(value, Value):
        return (value,)
    if isinstance(value, Cond):
        return value.values
    return ()


class Cond:
    """A ``when`` condition built with operators; ``str(cond)`` is its SPEC §5 text."""

    __slots__ = ("expr", "values")

    def __init__(self, expr: cond.Expr, values_: tuple[Value, ...] = ()) -> None:
        self.expr = expr
        self.values = values_

    @classmethod
    def of(cls, value: Any) -> Cond:
        """A condition from a :class:`Cond`, a boolean :class:`Value` or SPEC §5 text."""
        if isinstance(value, Cond):
            return value
        if isinstance(value, Value):
            return cls(cond.Path(value._ref), (value,))
        if isinstance(value, str):
            try:
                return cls(condition_of(value))
            except cond.ConditionSyntaxError as exc:
                raise dsl_error(
                    f"condition {value!r}: {exc} (column {exc.column})",
                    hint='see SPEC §5, e.g. "steps.pick.outputs.best >= params.min_auc and not params.dry"',
                ) from None
        if isinstance(value, bool):
            return cls(cond.Literal(value))
        raise dsl_error(
            f"{value!r} is not a condition",
            hint="use a comparison of references (a >= b), a boolean reference, or SPEC §5 text",
        )

    def _join(self, op: str, other: Any, flip: bool = False) -> Cond:
        right = Cond.of(other)
        left = self
        if flip:
            left, right = right, left
        operands: list[cond.Expr] = []
        for side in (left.expr, right.expr):
            if isinstance(side, cond.BoolOp) and side.op == op:
                operands.extend(side.operands)
            else:
                operands.append(side)
        return Cond(cond.BoolOp(op, tuple(operands)), left.values + right.values)

    def __and__(self, other: Any) -> Cond:
        return self._join("and", other)

    def __rand__(self, other: Any) -> Cond:
        return self._join("and", other, flip=True)

    def __or__(self, other: Any) -> Cond:
        return self._join("or", other)

    def __ror__(self, other: Any) -> Cond:
        return self._join("or", other, flip=True)

    def __invert__(self) -> Cond:
        return Cond(cond.Not(self.expr), self.values)

    def __bool__(self) -> bool:
        raise dsl_error(f"the truth of '{self}' is only known at run time", hint=_BOOL_HINT)

    def __str__(self) -> str:
        return render_condition(self.expr)

    def __repr__(self) -> str:
        return f"<pipecast condition {self}>"


_PREC = {"or": 1, "and": 2}


def _prec(expr: cond.Expr) -> int:
    if isinstance(expr, cond.BoolOp):
        return _PREC[expr.op]
    if isinstance(expr, cond.Not):
        return 3
    if isinstance(expr, cond.Compare | cond.In):
        return 4
    return 5


def render_condition(expr: cond.Expr, min_prec: int = 0) -> str:
    """SPEC §5 text with only the parentheses the grammar needs."""
    if isinstance(expr, cond.BoolOp):
        text = f" {expr.op} ".join(render_condition(o, _PREC[expr.op] + 1) for o in expr.operands)
    elif isinstance(expr, cond.Not):
        text = "not " + render_condition(expr.operand, 3)
    elif isinstance(expr, cond.Compare):
        text = f"{render_condition(expr.left, 5)} {expr.op} {render_condition(expr.right, 5)}"
    elif isinstance(expr, cond.In):
        text = (
            f"{render_condition(expr.operand, 5)} in ["
            + ", ".join(cond.to_text(o) for o in expr.options)
            + "]"
        )
    else:
        text = cond.to_text(expr)
    return f"({text})" if _prec(expr) < min_prec else text


# --------------------------------------------------------------------- pipeline fields


class _PipelineFields:
    """``PIPELINE.name``, ``PIPELINE.run_id`` and (in ``finally`` only) ``PIPELINE.status``."""

    @property
    def name(self) -> Value:
        return Value(Ref("pipeline", "name"), "str")

    @property
    def run_id(self) -> Value:
        return Value(Ref("pipeline", "run_id"), "str")

    @property
    def status(self) -> Value:
        return Value(Ref("pipeline", "status"), "str")


PIPELINE = _PipelineFields()


def pipeline_status() -> Value:
    """``{{ pipeline.status }}``: ``"succeeded"`` or ``"failed"``; valid in the finally step only."""
    return PIPELINE.status


# --------------------------------------------------------------------- arguments


def check_visible(value: Value, builder: Builder, scope: ScopeRec, what: str) -> None:
    """Raise when ``value`` is not visible from ``scope`` (SPEC §3.2 scope rules)."""
    from pipecast.dsl.groups import ForEach, Group

    origin = value._origin
    chain = scope.chain()
    ref = value._ref
    if ref.kind == "pipeline" and ref.name == "status" and not builder.in_finally:
        raise dsl_error(
            f"{what}: pipeline.status is only known in the finally step",
            hint="pass it to the step given to finally_(...)",
        )
    if isinstance(origin, StepRec) and origin.scope is not None and origin.scope not in chain:
        owner = origin.scope.owner
        group = owner.name if owner is not None else "?"
        raise dsl_error(
            f"{what}: step {origin.name!r} is inside group {group!r} and cannot be read from here",
            hint=f"declare a group output, e.g. {group}.outputs({ref.key}={origin.name}.outputs.{ref.key}), "
            f"and pass {group}.outputs.{ref.key}",
        )
    if isinstance(origin, ForEach) and ref.kind == "loop" and origin.body not in chain:
        raise dsl_error(
            f"{what}: the loop item {ref.name!r} is only visible inside 'with {origin.name}'",
            hint="use it inside the for_each block, or collect results with a group output",
        )
    if isinstance(origin, Group) and ref.kind == "step":
        if origin.scope is not None and origin.scope not in chain:
            raise dsl_error(f"{what}: group {origin.name!r} is not visible from here")
        if any(s.owner is origin for s in chain):
            raise dsl_error(
                f"{what}: the outputs of group {origin.name!r} are read inside the group itself",
                hint="a group's outputs exist only after it finished; read them after the 'with' block",
            )


def check_type(declared: str | None, actual: str | None, what: str) -> None:
    if not declared or not actual or ANY in (declared, actual):
        return
    if not accepts(declared, actual):
        raise dsl_error(
            f"{what} expects {declared} but gets {actual}", hint="SPEC §2: only int converts to float"
        )


def to_arg(value: Any, declared: str | None, builder: Builder, what: str) -> Any:
    """Convert a call argument to its IR form (a literal or a ``{{ ... }}`` reference)."""
    from pipecast.dsl.groups import Group
    from pipecast.dsl.steps import StepHandle

    if isinstance(value, Value):
        check_visible(value, builder, builder.scope, what)
        check_type(declared, value._type, what)
        return str(value)
    if isinstance(value, StepHandle):
        raise dsl_error(
            f"{what}: a step handle is not a value",
            hint=f"pass one of its outputs: {value.name}.outputs.<name> ({', '.join(value._outputs) or 'it has none'})"
            ", or use after=[...] to only wait for it",
        )
    if isinstance(value, Group):
        raise dsl_error(f"{what}: a group is not a value", hint=f"pass {value.name}.outputs.<name>")
    if isinstance(value, Cond):
        raise dsl_error(f"{what}: a condition is not a value", hint="conditions go into when(...)")
    data = _literal_data(value, what, builder)
    check_type(declared, values.json_type_of(data), what)
    return data


def _literal_data(value: Any, what: str, builder: Builder) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise dsl_error(f"{what}: {value!r} is not a JSON number")
        return value
    if isinstance(value, list | tuple):
        return [_nested(v, what, builder) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise dsl_error(f"{what}: dict keys must be strings, got {k!r}")
            out[k] = _nested(v, what, builder)
        return out
    raise dsl_error(f"{what}: {type(value).__name__} {value!r} is not a JSON value")


def _nested(value: Any, what: str, builder: Builder) -> Any:
    """An item of a list or dict argument: a reference stays one, keeping its type (SPEC §19)."""
    if isinstance(value, Value):
        check_visible(value, builder, builder.scope, what)
        return str(value)
    if isinstance(value, Cond):
        raise dsl_error(f"{what}: a condition is not a value", hint="conditions go into when(...)")
    return _literal_data(value, what, builder)


def loop_item_type(items_type: str) -> str:
    el = element_type(items_type)
    return el if el is not None else ANY


def group_output_value(group: Group, name: str, type_: str) -> Value:
    return Value(Ref("step", group.name, name), type_, group)


def loop_value(loop: ForEach) -> Value:
    return Value(Ref("loop", loop.as_), loop.item_type, loop)


def did_you_mean_output(owner: str, name: str, outputs: list[str]) -> str:
    listing = ", ".join(outputs) if outputs else "none"
    hint = did_you_mean(name, outputs)
    return f"{owner} has no output {name!r} (its outputs: {listing})" + (f"; {hint}" if hint else "")
