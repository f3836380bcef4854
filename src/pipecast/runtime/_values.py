"""How parameter values cross a process or file boundary (SPEC §3.1). Standard library only:
the warm worker processes import this module and must start fast.

* A ``str`` parameter in a file is its raw text; every other type is JSON.
* Values returned by a step are checked against the declared type; an ``int`` may stand
  for a ``float`` (it is converted), nothing else converts.
"""

from __future__ import annotations

import json
from typing import Any

PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "list": (list, tuple),
    "dict": (dict,),
}
ARTIFACT_TYPES = frozenset({"Dataset", "Model", "Metrics", "Artifact"})


class OutputError(Exception):
    """A step produced an output that does not match its declaration (a step failure)."""


def is_artifact(type_name: str) -> bool:
    return type_name in ARTIFACT_TYPES


def _type_label(value: Any) -> str:
    kind = type(value)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def check_value(name: str, type_name: str, value: Any) -> Any:
    """Return ``value`` as the declared parameter type, or raise :class:`OutputError`.

    ``bool`` is not accepted for ``int``/``float`` even though Python makes it an ``int``.
    """
    accepted = PARAM_TYPES.get(type_name)
    if accepted is None:
        raise OutputError(f"output {name!r} has unknown type {type_name!r}")
    ok = isinstance(value, accepted) and not (type_name != "bool" and isinstance(value, bool))
    if not ok:
        hint = ""
        if type(value).__module__ == "numpy":
            hint = f"; convert it with {type_name}(...) or .tolist()"
        raise OutputError(
            f"output {name!r} is declared {type_name} but the step returned "
            f"{_type_label(value)} {_short(value)}{hint}"
        )
    if type_name == "float":
        return float(value)
    if type_name == "list":
        value = list(value)
    try:
        # Parameter values travel as JSON everywhere; fail here, with the output's name,
        # rather than later inside a target's serialiser.
        return json.loads(json.dumps(value, allow_nan=True))
    except (TypeError, ValueError) as exc:
        raise OutputError(f"output {name!r} is not JSON-serialisable: {exc}") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def to_text(value: Any) -> str:
    """A value as file/command-line text: a string raw, anything else compact JSON with keys
    in their stored order (SPEC §22, as :func:`pipecast.ir.refs.render_value`)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def from_text(name: str, type_name: str, text: str) -> Any:
    """Parse a parameter output file's text by its declared type (raw text for ``str``)."""
    if type_name == "str":
        return text
    try:
        value = json.loads(text)
    except ValueError:
        raise OutputError(f"output {name!r} ({type_name}) must hold JSON, got {_short(text)}") from None
    return check_value(name, type_name, value)
