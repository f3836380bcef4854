"""The ``when`` expression language (SPEC §5): its AST and an evaluator (the parser is
:func:`pipecast.passes.parse.parse_condition`).

Backends translate the AST into their own condition language (ASL Choice rules, KFP
trigger conditions, Python in Airflow) by walking these node classes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pipecast.ir.refs import Ref


class ConditionSyntaxError(ValueError):
    """A ``when`` expression that does not follow the grammar; ``column`` is 1-based."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.column = column


@dataclass(frozen=True)
class Path:
    """A path operand. ``type`` (its pipecast type) and ``node`` (the resolved reference,
    :class:`pipecast.passes.resolve.RefNode`) are set by the resolve pass; equality is by
    ``ref`` alone."""

    ref: Ref
    type: str | None = field(default=None, compare=False)
    node: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Literal:
    """A literal operand with its JSON type (``bool``/``int``/``float``/``str``), set by the
    parser."""

    value: Any  # int | float | str | bool
    type: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Not:
    operand: Expr


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Compare:
    op: str  # == != < <= > >=
    left: Expr
    right: Expr


@dataclass(frozen=True)
class In:
    operand: Expr
    options: tuple[Literal, ...]


Expr = Path | Literal | Not | BoolOp | Compare | In
COMPARE_OPS = ("==", "!=", "<=", ">=", "<", ">")


def paths(expr: Expr) -> Iterator[Ref]:
    """Every reference an expression reads, in order."""
    if isinstance(expr, Path):
        yield expr.ref
    elif isinstance(expr, Not):
        yield from paths(expr.operand)
    elif isinstance(expr, BoolOp):
        for op in expr.operands:
            yield from paths(op)
    elif isinstance(expr, Compare):
        yield from paths(expr.left)
        yield from paths(expr.right)
    elif isinstance(expr, In):
        yield from paths(expr.operand)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def evaluate(expr: Expr, lookup: Callable[[Ref], Any]) -> Any:
    """Evaluate an expression; ``lookup`` gives the value of each path.

    ``and``/``or`` short-circuit; a bare path must hold a boolean to be used as a
    condition (the validator checks this statically where types are known).
    """
    if isinstance(expr, Literal):
        return expr.value
    if isinstance(expr, Path):
        return lookup(expr.ref)
    if isinstance(expr, Not):
        return not _truth(evaluate(expr.operand, lookup))
    if isinstance(expr, BoolOp):
        if expr.op == "and":
            return all(_truth(evaluate(op, lookup)) for op in expr.operands)
        return any(_truth(evaluate(op, lookup)) for op in expr.operands)
    if isinstance(expr, Compare):
        return _COMPARE[expr.op](evaluate(expr.left, lookup), evaluate(expr.right, lookup))
    if isinstance(expr, In):
        value = evaluate(expr.operand, lookup)
        return any(_same(value, opt.value) for opt in expr.options)
    raise TypeError(f"not a condition node: {expr!r}")


def _same(a: Any, b: Any) -> bool:
    # Keep true != 1, as a typed language would.
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _truth(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"a condition operand must be a boolean, got {value!r}")
    return value


def to_text(expr: Expr) -> str:
    """Render an expression back to the SPEC §5 syntax (fully parenthesised where needed)."""
    if isinstance(expr, Literal):
        if isinstance(expr.value, bool):
            return "true" if expr.value else "false"
        if isinstance(expr.value, str):
            return "'" + expr.value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return repr(expr.value)
    if isinstance(expr, Path):
        return expr.ref.path
    if isinstance(expr, Not):
        return "not " + _wrap(expr.operand)
    if isinstance(expr, BoolOp):
        return f" {expr.op} ".join(_wrap(op) for op in expr.operands)
    if isinstance(expr, Compare):
        return f"{_wrap(expr.left)} {expr.op} {_wrap(expr.right)}"
    if isinstance(expr, In):
        return f"{_wrap(expr.operand)} in [" + ", ".join(to_text(o) for o in expr.options) + "]"
    raise TypeError(expr)


def _wrap(expr: Expr) -> str:
    text = to_text(expr)
    return f"({text})" if isinstance(expr, BoolOp | Compare | In) else text
