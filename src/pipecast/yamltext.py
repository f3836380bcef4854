"""A fast, deterministic YAML writer for JSON-like data, shared by the backends.

PyYAML's representer takes seconds for a 10,000-step spec or job (even with libyaml), so
large compiled files are written here: block style, keys sorted, two-space indent, a
trailing newline. Every string is either plain (only when YAML reads it back as the same
string) or double-quoted with JSON escapes plus YAML hex escapes for what YAML cannot hold
raw; floats always carry a ``.`` or an exponent YAML 1.1 readers accept. Tests round-trip
random data through ``yaml.safe_load``.

Two styles, chosen by the caller:

* ``plain_strings=False`` (Vertex): every string value double-quoted, keys plain when simple.
* ``plain_strings=True`` (Azure ML): strings plain when safe, and ``literal_blocks=True``
  writes multi-line strings (commands) as ``|-`` blocks, which read best.

``comment(key, value)`` may return a ``#`` comment appended to a key's line (pyyaml cannot
write comments).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

Comment = Callable[[Any, Any], str]

_RESERVED = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"})
_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# Plain scalars: no indicator first, one line (further checks in _plain_ok).
_PLAIN = re.compile(r"^[A-Za-z_$/(][^\n\r\t]*$")
# After JSON escaping, what YAML still cannot hold raw in a double-quoted scalar: C1
# controls (NEL folds), DEL, LS/PS (fold) and surrogates/non-characters.
_UNPRINTABLE = re.compile("[^\t\n\r\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ASCII_LINES = re.compile(r"[\x20-\x7e\n]*")
_json_quote = json.JSONEncoder(ensure_ascii=False).encode


def quoted(text: str) -> str:
    """A YAML double-quoted scalar that reads back as ``text``."""
    body = _json_quote(text)
    # JSON already escaped the C0 controls; of ASCII only DEL is left for YAML to refuse.
    if (body.isascii() and "\x7f" not in body) or _UNPRINTABLE.search(body) is None:
        return body
    return _UNPRINTABLE.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}",
        body,
    )


def _plain_ok(text: str) -> bool:
    return (
        text.isprintable()
        and _PLAIN.fullmatch(text) is not None
        and text.lower() not in _RESERVED
        and ": " not in text
        and " #" not in text
        and not text.endswith((" ", ":"))
    )


def _plain_or_quoted(text: str) -> str:
    return text if _plain_ok(text) else quoted(text)


@lru_cache(maxsize=1 << 16)  # keys repeat across thousands of tasks
def _plain_key(key: str) -> str:
    return _plain_or_quoted(key)


@lru_cache(maxsize=1 << 16)
def _simple_key(key: str) -> str:
    if _SIMPLE_KEY.fullmatch(key) and key.lower() not in _RESERVED:
        return key
    return quoted(key)


def scalar(value: Any, *, plain_strings: bool = False) -> str:
    """One scalar (``None``, bool, int, float or str) as YAML text."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "." not in text:  # YAML 1.1 (pyyaml) reads '1e-05' as a string, '1.0e-05' as a float
            mantissa, _, exp = text.partition("e")
            text = f"{mantissa}.0" + (f"e{exp}" if exp else "")
        return text
    text = str(value)
    return _plain_or_quoted(text) if plain_strings else quoted(text)


def _literal_ok(text: str) -> bool:
    """Whether ``text`` reads back unchanged from a ``|-`` literal block."""
    return (
        "\n" in text
        and not text.endswith("\n")
        and not text.startswith((" ", "\n"))
        and (
            _ASCII_LINES.fullmatch(text) is not None  # the fast path: commands are ASCII
            or all(ch == "\n" or (ch.isprintable() and not _UNPRINTABLE.match(ch)) for ch in text)
        )
        and not any(line.endswith(" ") or line.startswith(" ") for line in text.split("\n"))
    )


def _empty_or_scalar(value: Any, plain: bool) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return scalar(value, plain_strings=plain)


class _Writer:
    def __init__(self, plain: bool, literal_blocks: bool, comment: Comment | None) -> None:
        self.plain = plain
        self.literal = literal_blocks
        self.comment = comment
        self.out: list[str] = []
        # Chosen once: this loop runs for every value of a 10,000-step spec.
        self.string = _plain_or_quoted if plain else quoted
        self.key = _plain_key if plain else _simple_key

    def note(self, key: Any, value: Any) -> str:
        return self.comment(key, value) if self.comment else ""

    def mapping(self, value: dict[str, Any], indent: str) -> None:
        out, key_text, string, comment = self.out, self.key, self.string, self.comment
        for key in sorted(value):
            item = value[key]
            head = f"{indent}{key_text(str(key))}:"
            if type(item) is str:  # the common case first
                if self.literal and "\n" in item and _literal_ok(item):
                    out.append(f"{head} |-")
                    out.extend(f"{indent}  {line}" if line else "" for line in item.split("\n"))
                elif comment is None:
                    out.append(f"{head} {string(item)}")
                else:
                    out.append(f"{head} {string(item)}{comment(key, item)}")
            elif isinstance(item, dict) and item:
                out.append(head + self.note(key, None))
                self.mapping(item, indent + "  ")
            elif isinstance(item, list) and item:
                out.append(head + self.note(key, None))
                self.sequence(item, indent)
            else:
                out.append(f"{head} {_empty_or_scalar(item, self.plain)}{self.note(key, item)}")

    def sequence(self, value: list[Any], indent: str) -> None:
        out = self.out
        for item in value:
            if isinstance(item, dict | list) and item:
                start = len(out)
                if isinstance(item, dict):
                    self.mapping(item, indent + "  ")
                else:
                    self.sequence(item, indent + "  ")
                out[start] = f"{indent}- {out[start][len(indent) + 2 :]}"
            else:
                out.append(f"{indent}- {_empty_or_scalar(item, self.plain)}")


def dump(
    data: Any,
    *,
    plain_strings: bool = False,
    literal_blocks: bool = False,
    comment: Comment | None = None,
    header: tuple[str, ...] = (),
) -> str:
    """YAML text for JSON-like data (see the module docstring for the options).

    Args:
        header: comment lines (``# ...``) written first.
    """
    writer = _Writer(plain_strings, literal_blocks, comment)
    if isinstance(data, dict):
        writer.mapping(data, "")
    elif isinstance(data, list):
        writer.sequence(data, "")
    else:
        writer.out.append(scalar(data, plain_strings=plain_strings))
    body = writer.out or ["{}"]
    return "\n".join([*header, *body]) + "\n"
