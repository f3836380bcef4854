"""The ``when`` expression language (SPEC §5): a parser to a small AST and an evaluator.

Backends translate the AST into their own condition language (ASL Choice rules, KFP
trigger conditions, Python in Airflow) by walking these node classes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pipecast.ir.refs import Ref, RefSyntaxError, parse_path


class ConditionSyntaxError(ValueError):
    """A ``when`` expression that does not follow the grammar; ``column`` is 1-based."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.column = column


@dataclass(frozen=True)
class Path:
    ref: Ref


@dataclass(frozen=True)
class Literal:
    value: Any  # int | float | str | bool


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

_TOKEN_RE = re.compile(
    r"""\s*(?:
      (?P<num>-?\d+\.\d*(?:[eE][-+]?\d+)?|-?\d+(?:[eE][-+]?\d+)?|-?\.\d+)
    | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,)
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false"}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    column: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN_RE.match(text, pos)
        if not match or match.end() == pos:
            col = pos + len(text[pos:]) - len(text[pos:].lstrip()) + 1
            raise ConditionSyntaxError(f"unexpected character {text[col - 1]!r}", col)
        kind = match.lastgroup or ""
        col = match.start(kind) + 1
        tokens.append(_Token(kind, match.group(kind), col))
        pos = match.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def next(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def accept(self, text: str) -> bool:
        tok = self.peek()
        if tok.text == text and tok.kind in ("op", "word"):
            self.i += 1
            return True
        return False

    def expect(self, text: str) -> None:
        tok = self.peek()
        if not self.accept(text):
            found = "the end" if tok.kind == "end" else repr(tok.text)
            raise ConditionSyntaxError(f"expected {text!r}, found {found}", tok.column)

    def parse(self) -> Expr:
        expr = self.or_()
        tok = self.peek()
        if tok.kind != "end":
            raise ConditionSyntaxError(
                f"unexpected {tok.text!r}; join conditions with 'and' / 'or'", tok.column
            )
        return expr

    def or_(self) -> Expr:
        operands = [self.and_()]
        while self.accept("or"):
            operands.append(self.and_())
        return operands[0] if len(operands) == 1 else BoolOp("or", tuple(operands))

    def and_(self) -> Expr:
        operands = [self.not_()]
        while self.accept("and"):
            operands.append(self.not_())
        return operands[0] if len(operands) == 1 else BoolOp("and", tuple(operands))

    def not_(self) -> Expr:
        if self.accept("not"):
            return Not(self.not_())
        return self.cmp()

    def cmp(self) -> Expr:
        left = self.atom()
        tok = self.peek()
        if tok.kind == "op" and tok.text in COMPARE_OPS:
            self.next()
            return Compare(tok.text, left, self.atom())
        if tok.kind == "word" and tok.text == "in":
            self.next()
            self.expect("[")
            options = [self.literal()]
            while self.accept(","):
                options.append(self.literal())
            self.expect("]")
            return In(left, tuple(options))
        return left

    def literal(self) -> Literal:
        tok = self.peek()
        atom = self.atom()
        if not isinstance(atom, Literal):
            raise ConditionSyntaxError("the list after 'in' holds literals only", tok.column)
        return atom

    def atom(self) -> Expr:
        tok = self.next()
        if tok.kind == "num":
            text = tok.text
            is_float = any(c in text for c in ".eE")
            return Literal(float(text) if is_float else int(text))
        if tok.kind == "str":
            body = tok.text[1:-1]
            return Literal(re.sub(r"\\(.)", r"\1", body))
        if tok.kind == "op" and tok.text == "(":
            expr = self.or_()
            self.expect(")")
            return expr
        if tok.kind == "word":
            if tok.text in ("true", "false"):
                return Literal(tok.text == "true")
            if tok.text in _KEYWORDS:
                raise ConditionSyntaxError(f"unexpected keyword {tok.text!r}", tok.column)
            try:
                return Path(parse_path(tok.text))
            except RefSyntaxError as exc:
                raise ConditionSyntaxError(str(exc), tok.column) from None
        found = "the end of the condition" if tok.kind == "end" else repr(tok.text)
        raise ConditionSyntaxError(
            f"expected a value (a path, number, 'string', true or false), found {found}", tok.column
        )


def parse_condition(text: str) -> Expr:
    """Parse a ``when`` expression.

    Raises:
        ConditionSyntaxError: with the 1-based column of the problem.
    """
    if "{{" in text:
        col = text.index("{{") + 1
        raise ConditionSyntaxError("conditions use bare paths, without '{{ }}'", col)
    return _Parser(text).parse()


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
