"""The one place that parses reference templates (SPEC §4, §19) and ``when`` conditions
(SPEC §5). Only the passes call these functions: validation (to report syntax errors with
their column) and :mod:`pipecast.passes.resolve`, which turns a validated pipeline into the
resolved form every consumer reads. The run-time step runtime decodes the few template
strings a compiled spec carries through :func:`render` here, too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pipecast.ir.condition import (
    COMPARE_OPS,
    BoolOp,
    Compare,
    ConditionSyntaxError,
    Expr,
    In,
    Literal,
    Not,
    Path,
)
from pipecast.ir.refs import ESCAPE_HINT, Ref, RefSyntaxError, Segment, render_value

_TEMPLATE_RE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
# A run of backslashes right before ``{{`` (SPEC §19): an odd count escapes the braces (``\{{``
# is a literal ``{{``), an even count is that many halved backslashes before a reference
# (``\\{{ x }}`` is a backslash then ``x``). No other backslash has a meaning.
_OPEN_RE = re.compile(r"(\\*)\{\{")
_SEGMENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_path(text: str, loop_vars: frozenset[str] | None = None) -> Ref:
    """Parse a bare reference path such as ``steps.train.outputs.auc``.

    Args:
        text: the path.
        loop_vars: names that are loop variables here. ``None`` accepts any other
            one- or two-part name as a loop variable (validation then checks it).

    Raises:
        RefSyntaxError: when the path has no valid shape; the message shows the shapes.
    """
    parts = text.strip().split(".")
    if not all(_SEGMENT_RE.match(p) for p in parts):
        raise RefSyntaxError(f"{text.strip()!r} is not a reference path")
    head = parts[0]
    if head == "params" and len(parts) == 2:
        return Ref("param", parts[1])
    if head == "steps":
        if len(parts) == 4 and parts[2] == "outputs":
            return Ref("step", parts[1], parts[3])
        if len(parts) == 5 and parts[2] == "outputs":
            return Ref("step", parts[1], parts[3], parts[4])  # one metric (SPEC §15)
        # Lowered sub-pipeline steps have dotted names (SPEC §17): steps.prep.clean.outputs.t
        # (validation keeps user-written names to the SPEC §3 pattern).
        for at in range(3, len(parts) - 1):
            if parts[at] == "outputs" and len(parts) - at in (2, 3):
                name = ".".join(parts[1:at])
                return Ref("step", name, parts[at + 1], parts[at + 2] if len(parts) - at == 3 else None)
        raise RefSyntaxError(
            f"{text.strip()!r}: a step reference is steps.<step>.outputs.<output> "
            "(or steps.<step>.outputs.<metrics output>.<metric name>)"
        )
    if head == "pipeline" and len(parts) == 2:
        return Ref("pipeline", parts[1])
    if head == "group" and len(parts) == 2 and (loop_vars is None or "group" not in loop_vars):
        # SPEC §18; a loop variable named ``group`` shadows it (resolution checks the scope).
        return Ref("group", parts[1])
    if head == "inputs" and len(parts) == 2:
        return Ref("inputs", parts[1])
    if head == "outputs" and len(parts) == 2:
        return Ref("outputs", parts[1])
    if head == "params":
        raise RefSyntaxError(f"{text.strip()!r}: a parameter reference is params.<name>")
    if head in ("pipeline", "inputs", "outputs"):
        raise RefSyntaxError(f"{text.strip()!r}: expected {head}.<name>")
    if len(parts) <= 2 and (loop_vars is None or head in loop_vars):
        return Ref("loop", head, parts[1] if len(parts) == 2 else None)
    raise RefSyntaxError(
        f"{text.strip()!r} is not a reference; use params.<name>, steps.<step>.outputs.<name>, "
        "pipeline.<status|name|run_id> or a loop variable"
    )


def parse_template(text: str) -> list[Segment]:
    """Split a string into literal text and references.

    Raises:
        RefSyntaxError: for an unparsable ``{{ ... }}`` or an unbalanced brace pair.
    """
    # Validation, analysis and the simulator parse the same strings many times over
    # (10,000-step pipelines): parse each once. Callers get their own list.
    return list(_parse_template(text))


@functools.lru_cache(maxsize=1 << 16)
def _parse_template(text: str) -> tuple[Segment, ...]:
    if "\\{{" in text:
        return _parse_escaped(text)
    segments: list[Segment] = []
    pos = 0
    for match in _TEMPLATE_RE.finditer(text):
        if match.start() > pos:
            segments.append(text[pos : match.start()])
        segments.append(_parse_inside(match.group(1)))
        pos = match.end()
    if pos < len(text):
        segments.append(text[pos:])
    for seg in segments:
        if isinstance(seg, str) and ("{{" in seg or "}}" in seg):
            raise RefSyntaxError(f"unbalanced '{{{{ }}}}' in {text!r}{ESCAPE_HINT}")
    return tuple(segments)


def _parse_inside(inside: str) -> Ref:
    """The reference inside one ``{{ ... }}``; a non-path (``{{ .Values.x }}``) says how to
    write a literal ``{{`` instead (SPEC §19)."""
    try:
        return parse_path(inside)
    except RefSyntaxError as exc:
        if _SEGMENT_RE.match(inside.strip().split(".")[0] or "-"):
            raise
        raise RefSyntaxError(f"{exc}{ESCAPE_HINT}") from None


def _parse_escaped(text: str) -> tuple[Segment, ...]:
    """:func:`_parse_template` for a string holding ``\\{{`` (SPEC §19). An escaped ``{{``
    is literal text up to and including its own ``}}`` (so ``\\{{ .Values.x }}`` is the
    literal ``{{ .Values.x }}``); adjacent literal pieces are merged."""
    out: list[Segment] = []

    def text_piece(piece: str) -> None:
        if not piece:
            return
        if out and isinstance(out[-1], str):
            out[-1] += piece
        else:
            out.append(piece)

    pos = 0
    while True:
        match = _OPEN_RE.search(text, pos)
        if match is None:
            rest = text[pos:]
            if "}}" in rest:
                raise RefSyntaxError(f"unbalanced '{{{{ }}}}' in {text!r}{ESCAPE_HINT}")
            text_piece(rest)
            return tuple(out)
        slashes = len(match.group(1))
        before = text[pos : match.start()]
        if "}}" in before:
            raise RefSyntaxError(f"unbalanced '{{{{ }}}}' in {text!r}{ESCAPE_HINT}")
        text_piece(before + "\\" * (slashes // 2))
        close = text.find("}}", match.end())
        if slashes % 2:  # escaped: literal through its own closing braces, if any
            end = len(text) if close < 0 else close + 2
            literal = text[match.end() : end]
            if "{{" in literal:
                raise RefSyntaxError(f"unbalanced '{{{{ }}}}' in {text!r}{ESCAPE_HINT}")
            text_piece("{{" + literal)
            pos = end
            continue
        if close < 0:
            raise RefSyntaxError(f"unbalanced '{{{{ }}}}' in {text!r}{ESCAPE_HINT}")
        inside = text[match.end() : close]
        if "{{" in inside:
            raise RefSyntaxError(f"unbalanced '{{{{ }}}}' in {text!r}{ESCAPE_HINT}")
        out.append(_parse_inside(inside))
        pos = close + 2


def single_ref(value: Any) -> Ref | None:
    """The reference if ``value`` is a string that is exactly one reference (type-keeping)."""
    if not isinstance(value, str) or "{{" not in value:
        return None
    segments = _parse_template(value.strip())
    if len(segments) == 1 and isinstance(segments[0], Ref):
        return segments[0]
    return None


def is_template(value: Any) -> bool:
    """Whether ``value`` is a string containing at least one reference."""
    return isinstance(value, str) and "{{" in value


def refs_in(value: Any) -> Iterator[Ref]:
    """Every reference in a value, inside list and mapping literals too (SPEC §19)."""
    if isinstance(value, str):
        if "{{" in value:
            for seg in parse_template(value):
                if isinstance(seg, Ref):
                    yield seg
    elif isinstance(value, list):
        for item in value:
            yield from refs_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from refs_in(item)


def is_structured_template(value: Any) -> bool:
    """Whether ``value`` is a list or mapping literal holding a template string (SPEC §19)."""
    if isinstance(value, list):
        return any(is_template(v) or is_structured_template(v) for v in value)
    if isinstance(value, dict):
        return any(is_template(v) or is_structured_template(v) for v in value.values())
    return False


def render(value: Any, lookup: Callable[[Ref], Any]) -> Any:
    """Resolve a value: a single reference keeps its type, a mixed string becomes ``str``.

    Args:
        value: a literal JSON value or a template string; a list or mapping literal is built
            item by item, each string in it resolved the same way (SPEC §19).
        lookup: returns the value of one reference.
    """
    if isinstance(value, list):
        return [render(v, lookup) for v in value] if is_structured_template(value) else value
    if isinstance(value, dict):
        return {k: render(v, lookup) for k, v in value.items()} if is_structured_template(value) else value
    if not is_template(value):
        return value
    segments = parse_template(value)
    if len(segments) == 1 and isinstance(segments[0], Ref):
        return lookup(segments[0])
    stripped = value.strip()
    if stripped != value and single_ref(stripped) is not None:
        return lookup(parse_template(stripped)[0])  # type: ignore[arg-type]
    return "".join(seg if isinstance(seg, str) else render_value(lookup(seg)) for seg in segments)


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
            return Literal(float(text), "float") if is_float else Literal(int(text), "int")
        if tok.kind == "str":
            body = tok.text[1:-1]
            return Literal(re.sub(r"\\(.)", r"\1", body), "str")
        if tok.kind == "op" and tok.text == "(":
            expr = self.or_()
            self.expect(")")
            return expr
        if tok.kind == "word":
            if tok.text in ("true", "false"):
                return Literal(tok.text == "true", "bool")
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
