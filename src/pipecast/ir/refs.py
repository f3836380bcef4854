"""References (SPEC §4): ``{{ params.P }}``, ``{{ steps.S.outputs.O }}``, loop variables,
``{{ pipeline.status|name|run_id }}`` and, inside container commands, ``{{ inputs.X }}`` /
``{{ outputs.Y }}``.

A string value is a *template*: literal text and references. A value that is exactly one
reference keeps the referenced value's type; anything else is a ``str`` in which values
are rendered as JSON and strings bare (:func:`render`).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

RefKind = Literal["param", "step", "loop", "pipeline", "inputs", "outputs"]

_TEMPLATE_RE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
# A run of backslashes right before ``{{`` (SPEC §19): an odd count escapes the braces (``\{{``
# is a literal ``{{``), an even count is that many halved backslashes before a reference
# (``\\{{ x }}`` is a backslash then ``x``). No other backslash has a meaning.
_OPEN_RE = re.compile(r"(\\*)\{\{")
_SEGMENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PIPELINE_FIELDS = ("status", "name", "run_id")


class RefSyntaxError(ValueError):
    """A ``{{ ... }}`` whose inside is not a reference path."""


@dataclass(frozen=True)
class Ref:
    """One parsed reference.

    Attributes:
        kind: what it points at.
        name: the parameter, step, loop variable, pipeline field or input/output name.
        key: the output name of a step reference, or the dict key of a loop variable.
        metric: one metric of a ``Metrics`` output (``steps.S.outputs.O.NAME``, SPEC §15),
            read as a ``float``.
    """

    kind: RefKind
    name: str
    key: str | None = None
    metric: str | None = None

    @property
    def path(self) -> str:
        """The reference as a bare path, as written inside braces or in a condition."""
        if self.kind == "param":
            return f"params.{self.name}"
        if self.kind == "step":
            tail = "" if self.metric is None else f".{self.metric}"
            return f"steps.{self.name}.outputs.{self.key}{tail}"
        if self.kind == "pipeline":
            return f"pipeline.{self.name}"
        if self.kind in ("inputs", "outputs"):
            return f"{self.kind}.{self.name}"
        return self.name if self.key is None else f"{self.name}.{self.key}"

    def __str__(self) -> str:
        return "{{ " + self.path + " }}"


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
        raise RefSyntaxError(
            f"{text.strip()!r}: a step reference is steps.<step>.outputs.<output> "
            "(or steps.<step>.outputs.<metrics output>.<metric name>)"
        )
    if head == "pipeline" and len(parts) == 2:
        return Ref("pipeline", parts[1])
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


Segment = str | Ref


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


#: Appended to a reference syntax error that a literal ``{{`` would explain (SPEC §19).
ESCAPE_HINT = "; to pass a literal '{{' write '\\{{'"


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


def render_value(value: Any) -> str:
    """How a value appears inside a mixed string: strings bare, everything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=False)  # compact (SPEC §22)


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
