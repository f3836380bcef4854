"""YAML text for Azure ML, deterministic and fast, with the comments pyyaml cannot write.

pyyaml's representer takes about 8 s for a 10,000-step job, so the job's data (plain
dicts, lists, strings, numbers, booleans, ``None``) is written by the small emitter below:
block style, sorted keys, two-space indent. A string is written plain when YAML reads it
back as the same string, else as a JSON string (YAML's double-quoted style is a superset of
JSON's); the tests round-trip every compiled file through ``yaml.safe_load``.

Comments are added as lines are written: a header naming the generator (and the
private-features switch when the job has control flow), and a note on every control
binding (``after__X: ...``) saying that it carries no data.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pipecast_azureml import naming

# Plain scalars: no indicator first, no ": " / " #", no leading/trailing space, one line.
_PLAIN = re.compile(r"^[A-Za-z_$/(][^\n\r\t]*$")
_ASCII_LINES = re.compile(r"[\x20-\x7e\n]*")
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        # YAML 1.1 (pyyaml) reads a float only with a '.' and a signed exponent.
        if "e" in text and "." not in text:
            text = text.replace("e", ".0e")
        return text
    text = str(value)
    if (
        text.isprintable()
        and _PLAIN.match(text)
        and text.lower() not in _RESERVED
        and ": " not in text
        and " #" not in text
        and not text.endswith((" ", ":"))
    ):
        return text
    return _quoted(text)


def _yaml_printable(ch: str) -> bool:
    """YAML's printable set minus line breaks YAML would fold (NEL, LS, PS)."""
    o = ord(ch)
    if o in (0x85, 0x2028, 0x2029):
        return False
    return (
        o in (0x09, 0x0A, 0x0D) or 0x20 <= o <= 0x7E or 0xA0 <= o <= 0xD7FF or 0xE000 <= o <= 0xFFFD
    ) or 0x10000 <= o <= 0x10FFFF


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar: JSON escapes, plus YAML hex escapes for what YAML cannot hold raw."""
    body = json.dumps(text, ensure_ascii=False)[1:-1]
    if all(_yaml_printable(ch) for ch in body):
        return f'"{body}"'
    out = []
    for ch in body:
        o = ord(ch)
        out.append(ch if _yaml_printable(ch) else (f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"))
    return '"' + "".join(out) + '"'


def _block(text: str) -> bool:
    """Whether ``text`` reads back unchanged from a ``|-`` literal block (commands read best so)."""
    return (
        "\n" in text
        and not text.endswith("\n")
        and not text.startswith((" ", "\n"))
        and (
            _ASCII_LINES.fullmatch(text) is not None  # the fast path: commands are ASCII
            or all(ch == "\n" or (ch.isprintable() and _yaml_printable(ch)) for ch in text)
        )
        and not any(line.endswith(" ") or line.startswith(" ") for line in text.split("\n"))
    )


def _lines(value: Any, indent: int, out: list[str]) -> None:
    pad = " " * indent
    if isinstance(value, dict):
        for key in sorted(value):
            child = value[key]
            head = f"{pad}{_scalar(key)}:"
            if isinstance(child, str) and _block(child):
                out.append(f"{head} |-")
                out.extend(f"{pad}  {line}" if line else "" for line in child.split("\n"))
            elif isinstance(child, dict | list) and child:
                out.append(head + _comment(key, None))
                _lines(child, indent + (2 if isinstance(child, dict) else 0), out)
            else:
                text = "{}" if child == {} else "[]" if child == [] else _scalar(child)
                out.append(f"{head} {text}" + _comment(key, child))
    else:
        for item in value:
            if isinstance(item, dict) and item:
                sub: list[str] = []
                _lines(item, indent + 2, sub)
                out.append(f"{pad}- " + sub[0][indent + 2 :])
                out.extend(sub[1:])
            elif isinstance(item, list) and item:
                out.append(f"{pad}-")
                _lines(item, indent + 2, out)
            else:
                out.append(f"{pad}- " + ("{}" if item == {} else "[]" if item == [] else _scalar(item)))


def _comment(key: Any, value: Any) -> str:
    if not str(key).startswith(naming.AFTER_PREFIX):
        return ""
    if isinstance(value, str) and value.startswith("${{parent.jobs."):
        return "  # control binding: 'after' ordering only, no data (Azure ML orders jobs by data)"
    return "  # control input for 'after' (the command does not read it)" if value is None else ""


def dump(data: Any) -> str:
    """Deterministic YAML of plain data (no comments)."""
    out: list[str] = []
    _lines(data, 0, out)
    return "\n".join(out) + "\n" if out else "{}\n"


def render_yaml(data: Any, *, private: bool = False) -> str:
    """Deterministic YAML with pipecast's comments."""
    lines = ["# Generated by pipecast — edit the pipeline, not this file."]
    if private:
        lines.append(
            "# Uses if_else / parallel_for: set AZURE_ML_CLI_PRIVATE_FEATURES_ENABLED=true to submit it."
        )
    body: list[str] = []
    _lines(data, 0, body)
    return "\n".join([*lines, *(body or ["{}"])]) + "\n"
