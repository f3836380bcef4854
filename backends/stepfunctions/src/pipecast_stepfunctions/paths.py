"""References as JSONPath and intrinsic functions, and payload templates.

The state layout every generated state machine uses (docs/targets/stepfunctions.md)::

    $.params.<P>                 parameters, defaults merged with the execution input
    $.pipeline.name|run_id       run_id is the execution name
    $.pipeline.status            only on the way into ``finally``
    $.group.status               only on the way into a group's ``finally`` (SPEC §18)
    $.steps.<S>.outputs.<O>      each step's outputs (ResultPath of its state)
    $.loop.<var>                 the current item of each enclosing for_each
    $.index.<group>              the current index of each enclosing for_each

Intrinsic functions: https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html
Payload templates: https://docs.aws.amazon.com/step-functions/latest/dg/input-output-inputpath-params.html
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipecast.ir.refs import Ref
from pipecast.passes.resolve import (
    DictOf,
    ListOf,
    Lit,
    RefNode,
    Text,
    Value,
    has_template_text,
    literal_type,
    refs_of,
)

TypeOf = Callable[[Ref], str]


def is_built(raw: Any) -> bool:
    """Whether a value as written is a list or mapping literal with ``{{`` text in it (SPEC
    §19): the step runtime builds it (a ``\\{{`` escape counts: the runtime decodes it)."""
    return isinstance(raw, list | dict) and has_template_text(raw)


def text_segments(text: Text) -> list[str | Ref]:
    """A mixed string's literal parts and references, in order."""
    return [p if isinstance(p, str) else p.ref for p in text.parts]


def part(value: Value, key: str | int) -> Value:
    """The resolved item ``key`` of a resolved list or mapping literal."""
    if isinstance(value, ListOf) and isinstance(key, int):
        return value.items[key]
    if isinstance(value, DictOf):
        return dict(value.items)[str(key)]
    assert isinstance(value, Lit), value
    inner = value.value[key]
    return Lit(inner, literal_type(inner))


def ref_path(ref: Ref) -> str:
    """The JSONPath of a reference in the state layout (``pipeline.name`` excluded)."""
    if ref.kind == "param":
        return f"$.params.{ref.name}"
    if ref.kind == "step" and ref.metric is not None:
        # SPEC §15: the callback worker publishes each Metrics output's numbers beside the outputs.
        return f"$.steps.{ref.name}.metrics.{ref.key}.{ref.metric}"
    if ref.kind == "step":
        return f"$.steps.{ref.name}.outputs.{ref.key}"
    if ref.kind == "loop":
        return f"$.loop.{ref.name}" + (f".{ref.key}" if ref.key else "")
    if ref.kind == "pipeline":
        return f"$.pipeline.{ref.name}"
    if ref.kind == "group":
        return f"$.group.{ref.name}"
    raise ValueError(f"{ref} has no place in the state")


def escape(text: str) -> str:
    """Text for inside an intrinsic string literal, with ``' { } \\`` escaped."""
    out = text.replace("\\", "\\\\")
    for ch in "'{}":
        out = out.replace(ch, "\\" + ch)
    return out


def intrinsic_str(text: str) -> str:
    """A string argument of an intrinsic function: a ``'...'`` literal, or a
    ``States.Base64Decode`` call for text with a reserved or control character (:data:`RESERVED`)."""
    return base64_text(text) if as_data(text) else "'" + text + "'"


def format_string(pieces: list[str | None]) -> str:
    """A ``States.Format`` template literal: text pieces escaped, ``None`` as a ``{}`` slot."""
    return "'" + "".join("{}" if p is None else escape(p) for p in pieces) + "'"


def has_control(text: str) -> bool:
    """Whether text holds what an intrinsic string literal cannot: a control character
    (newline, tab: statelint rejects them raw, and there is no escape for them) or a
    backslash (validators reject the escaped ``\\\\``)."""
    return "\\" in text or any(ord(c) < 32 or ord(c) == 127 for c in text)


#: Characters an intrinsic string literal must escape ("' { } \\ ... must be escaped with
#: backslash", https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html#amazon-states-language-intrinsic-functions-escapes).
#: AWS reads ``\\'`` as ``'`` and ``\\{`` as ``{``; moto's parser (the engine the suite and
#: ``pipecast verify`` execute on) keeps the backslash, and a ``\\'`` fails the state there. So
#: text holding any of them is not written as a literal at all: it travels base64-encoded
#: (:func:`base64_text`), which both read the same.
RESERVED = frozenset("'{}\\")


def as_data(text: str) -> bool:
    """Whether literal text must travel base64-encoded rather than as a ``'...'`` literal."""
    return has_control(text) or not RESERVED.isdisjoint(text)


#: "States.Base64Decode: the input string can be at most 10,000 characters"
#: (https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html#asl-intrsc-func-data-encode-decode).
BASE64_CHUNK = 7_000  # characters of text per call: at most 4 bytes each -> <= 10,000 base64


def base64_text(text: str) -> str:
    """Text as ``States.Base64Decode('...')`` (a ``States.Format`` of several calls for long
    text): base64 needs no escape, so any text survives as data."""
    import base64

    calls = [
        f"States.Base64Decode('{base64.b64encode(text[i : i + BASE64_CHUNK].encode()).decode()}')"
        for i in range(0, len(text), BASE64_CHUNK)
    ]
    if len(calls) == 1:
        return calls[0]
    return "States.Format('" + "{}" * len(calls) + "', " + ", ".join(calls) + ")"


def format_call(segments: list[str | Ref], type_of: TypeOf, pipeline_name: str) -> str:
    """``States.Format(...)`` for a mixed template: values as JSON, strings bare (SPEC §4).

    Non-string values go through ``States.JsonToString`` because ``States.Format`` renders
    objects as ``{k=v}``, not JSON. Literal text with braces is passed as an argument rather
    than inside the format string, which keeps it out of ``{}`` placeholder parsing.
    """
    fmt: list[str | None] = []
    args: list[str] = []
    for seg in segments:
        if isinstance(seg, Ref) and seg.kind == "pipeline" and seg.name == "name":
            seg = pipeline_name
        if isinstance(seg, str):
            if as_data(seg):  # braces, quotes, backslashes, control characters (RESERVED)
                fmt.append(None)
                args.append(base64_text(seg))
            else:
                fmt.append(seg)
            continue
        path = ref_path(seg)
        fmt.append(None)
        args.append(path if type_of(seg) == "str" else f"States.JsonToString({path})")
    inner = format_string(fmt)
    return "States.Format(" + ", ".join([inner, *args]) + ")"


#: "You can nest up to 10 intrinsic functions within a field" (calls are counted):
#: https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html
MAX_INTRINSICS = 10


def intrinsic_calls(expr: str) -> int:
    """How many intrinsic function calls (``States.X(``) a field holds, string literals
    (``'...'`` with ``\\`` escapes) skipped."""
    count, i, quoted = 0, 0, False
    while i < len(expr):
        ch = expr[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == "'":
                quoted = False
        elif ch == "'":
            quoted = True
        elif expr.startswith("States.", i):
            j = i + len("States.")
            while j < len(expr) and expr[j].isalnum():
                j += 1
            if j < len(expr) and expr[j] == "(":
                count += 1
            i = j
            continue
        i += 1
    return count


def format_parts(
    segments: list[str | Ref], type_of: TypeOf, pipeline_name: str, at: str
) -> tuple[str, dict[str, str]]:
    """A mixed template too big for one field (over :data:`MAX_INTRINSICS` calls) as parts
    of at most 10 calls each, computed by an earlier ``Pass`` into ``<at>.p<i>``, and the
    field that joins them (one ``States.Format`` over plain paths)."""
    parts: dict[str, str] = {}
    chunk: list[str | Ref] = []
    calls = 0
    for seg in [*segments, None]:
        cost = _calls(seg, type_of)
        if seg is None or (cost and calls + cost > MAX_INTRINSICS - 1):
            if chunk:
                parts[f"p{len(parts)}.$"] = format_call(chunk, type_of, pipeline_name)
            chunk, calls = [], 0
        if seg is not None:
            chunk.append(seg)
            calls += cost
    paths = [f"{at}.{k[:-2]}" for k in parts]
    return "States.Format('" + "{}" * len(paths) + "', " + ", ".join(paths) + ")", parts


def _calls(seg: str | Ref | None, type_of: TypeOf) -> int:
    """How many intrinsic calls a segment adds to its ``States.Format`` (:func:`format_call`)."""
    if isinstance(seg, Ref):
        return int(type_of(seg) != "str")
    if isinstance(seg, str) and as_data(seg):
        return intrinsic_calls(base64_text(seg))
    return 0


def _has_path_keys(value: Any) -> bool:
    if isinstance(value, dict):
        return any(str(k).endswith(".$") or _has_path_keys(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_path_keys(v) for v in value)
    return False


def reorders(value: Any) -> bool:
    """Whether sorting keys would change the order of some mapping inside ``value``."""
    if isinstance(value, dict):
        return list(value) != sorted(value) or any(reorders(v) for v in value.values())
    if isinstance(value, list):
        return any(reorders(v) for v in value)
    return False


def ordered(value: Any) -> Any:
    """A literal as written into a definition: a mapping whose keys sorting would reorder is
    marked :class:`~.split.KeepOrder` (SPEC §22: keys keep their stored order)."""
    from .split import KeepOrder

    if not reorders(value):
        return value
    if isinstance(value, dict):
        return KeepOrder(value)
    return [ordered(v) for v in value]


def literal_entry(key: str, value: Any) -> tuple[str, Any]:
    """A literal value as a payload-template entry (keys in stored order, :func:`ordered`).

    A literal holding a key that ends in ``.$`` would be read as a path; such values go
    through ``States.StringToJson`` instead.
    """
    if _has_path_keys(value):
        import json

        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return key + ".$", f"States.StringToJson({intrinsic_str(text)})"
    return key, ordered(value)


def structured_entry(value: Any, resolved: Value, type_of: TypeOf, pipeline_name: str) -> dict[str, Any]:
    """A list or mapping literal holding references (SPEC §19), built by the step runtime:
    ``{BUILD_KEY: <the literal as JSON text>, "values": {ref path: value}, "artifacts":
    [ref paths of artifacts]}``. JSON text keeps the keys in their stored order and is never
    read as a payload template; the runtime renders it like the simulator
    (:func:`pipecast.ir.refs.render`) and downloads the artifacts it names."""
    import json

    from pipecast.ir.values import is_artifact
    from pipecast.runtime.conventions.base import BUILD_KEY

    refs: dict[str, Ref] = {node.path: node.ref for node in refs_of(resolved)}
    values: dict[str, Any] = {}
    artifacts: list[str] = []
    for path, ref in sorted(refs.items()):
        if ref.kind == "pipeline" and ref.name == "name":
            values[path] = pipeline_name
            continue
        values[path + ".$"] = ref_path(ref)
        if is_artifact(type_of(ref)):
            artifacts.append(path)
    entry: dict[str, Any] = {BUILD_KEY: json.dumps(value, separators=(",", ":"), ensure_ascii=False)}
    entry["values"] = values
    if artifacts:
        entry["artifacts"] = artifacts
    return entry


def value_entry(
    key: str, value: Any, resolved: Value, type_of: TypeOf, pipeline_name: str, *, runtime: bool = True
) -> tuple[str, Any]:
    """A payload-template entry (``key`` or ``key.$``) for an IR value (SPEC §4): ``value``
    as written (a list or mapping the runtime builds travels as text), ``resolved`` its
    resolved form (:mod:`pipecast.passes.resolve`).

    ``runtime``: the value goes to the step runtime, which renders mixed strings holding
    non-string values (SPEC §22). Elsewhere (group and pipeline outputs, no code runs) ASL
    renders them: ``States.JsonToString`` (compact JSON, keys in stored order) for a value
    known not to be a string, the value itself in ``States.Format`` when its type is unknown
    (a string bare, a number as digits)."""
    if is_built(value):
        return key, structured_entry(value, resolved, type_of, pipeline_name)
    if not isinstance(value, str) or "{{" not in value:
        return literal_entry(key, value)
    if isinstance(resolved, Lit):  # only literal braces (SPEC §19: '\\{{'), decoded
        return literal_entry(key, resolved.value)
    if isinstance(resolved, RefNode):  # a lone reference, blanks around it aside
        ref = resolved.ref
        if ref.kind == "pipeline" and ref.name == "name":
            return key, pipeline_name
        return key + ".$", ref_path(ref)
    assert isinstance(resolved, Text), resolved
    segments = text_segments(resolved)
    if not runtime:
        from pipecast.passes.analysis import ANY

        def known(ref: Ref) -> str:
            kind = type_of(ref)
            return "str" if kind in (ANY, "") else kind

        return key + ".$", format_call(segments, known, pipeline_name)
    if any(isinstance(s, Ref) and type_of(s) != "str" and s.kind != "pipeline" for s in segments):
        # A value that may not be a string: the step runtime renders it (compact JSON, keys
        # in stored order, strings bare: SPEC §22), which ASL's States.JsonToString cannot.
        from pipecast.runtime.conventions.base import RENDER_KEY

        refs = {s.path: s for s in segments if isinstance(s, Ref)}
        values = {}
        for path, ref in sorted(refs.items()):
            if ref.kind == "pipeline" and ref.name == "name":
                values[path] = pipeline_name
            else:
                values[path + ".$"] = ref_path(ref)
        return key, {RENDER_KEY: value, "values": values}
    return key + ".$", format_call(segments, type_of, pipeline_name)


def template(
    values: dict[str, Any],
    resolved: dict[str, Value],
    type_of: TypeOf,
    pipeline_name: str,
    *,
    runtime: bool = True,
) -> dict[str, Any]:
    """A payload template for a name → IR value mapping and its resolved form (``runtime``:
    see :func:`value_entry`)."""
    return dict(
        value_entry(k, v, resolved[k], type_of, pipeline_name, runtime=runtime) for k, v in values.items()
    )
