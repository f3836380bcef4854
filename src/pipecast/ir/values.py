"""Scalar value grammars of the pipeline format (docs/spec.md): durations (§7), memory sizes (§8), names (§2, §3).

These are plain functions so the loader, the passes and every backend parse values
the same way.
"""

from __future__ import annotations

import re

PIPELINE_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
STEP_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
PARAM_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PYTHON_TARGET_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

RESERVED_STEP_NAMES = frozenset({"finally"})

PARAM_TYPES = ("str", "int", "float", "bool", "list", "dict")
ARTIFACT_TYPES = ("Dataset", "Model", "Metrics", "Artifact")
ALL_TYPES = PARAM_TYPES + ARTIFACT_TYPES

ACCELERATORS = (
    "nvidia-t4",
    "nvidia-l4",
    "nvidia-a10g",
    "nvidia-v100",
    "nvidia-a100",
    "nvidia-a100-80gb",
    "nvidia-h100",
)

#: JSON Schema pattern of a duration string (the same grammar as :func:`parse_duration`).
DURATION_PATTERN = r"^\s*(\d+|(\d+(ms|s|m|h|d))+)\s*$"
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


#: The longest duration accepted (a timeout, a retry delay): 366 days. No target runs a step
#: longer (a Step Functions standard execution lasts at most one year:
#: https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html), and larger values
#: overflow the targets' own types (Airflow's timedelta, protobuf Durations).
MAX_DURATION_S = 366 * 86_400


def _bounded(seconds: float, value: object) -> float:
    if seconds > MAX_DURATION_S:
        raise ValueError(f"duration {value!r} is longer than 366 days, the longest a target runs a step")
    return seconds


def parse_duration(value: object) -> float:
    """Parse a SPEC §7 duration into seconds.

    Args:
        value: a non-negative number of seconds, or a string of ``<int><unit>`` parts
            (units ``ms s m h d``), e.g. ``"1h30m"``. A string of digits alone is seconds.

    Raises:
        ValueError: with a message that shows the accepted forms.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; use seconds (90) or a string like '1h30m'")
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"duration {value!r} is not a number of seconds; use e.g. 90 or '1h30m'")
        if value < 0:
            raise ValueError(f"duration {value!r} is negative")
        return _bounded(float(value), value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return _bounded(float(text), value)
        pos, total = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            total += int(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
        if pos == len(text) and text:
            return _bounded(total, value)
    raise ValueError(
        f"{value!r} is not a duration; use seconds (90) or <int><unit> parts with units "
        "ms, s, m, h, d (e.g. '45s', '1h30m')"
    )


_MEMORY_RE = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti)?$")
_MEMORY_UNITS = {None: 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}


def parse_memory(value: object) -> int:
    """Parse a SPEC §8 memory size (``"2Gi"``, ``"512Mi"`` or bytes) into bytes."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a memory size; use e.g. '512Mi', '2Gi' or bytes")
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str):
        match = _MEMORY_RE.match(value.strip())
        if match:
            size = float(match.group(1)) * _MEMORY_UNITS[match.group(2)]
            if size > 0:
                return int(size)
    raise ValueError(f"{value!r} is not a memory size; use e.g. '512Mi', '2Gi' or a number of bytes")


def type_accepts(declared: str, actual: str) -> bool:
    """Whether a value of type ``actual`` may flow where ``declared`` is expected (SPEC §2).

    Only ``int`` → ``float`` converts implicitly; the generic ``Artifact`` type accepts
    every artifact type.
    """
    if declared == actual:
        return True
    if declared == "float" and actual == "int":
        return True
    return declared == "Artifact" and actual in ARTIFACT_TYPES


def is_artifact(type_name: str) -> bool:
    return type_name in ARTIFACT_TYPES


def json_type_of(value: object) -> str | None:
    """The SPEC parameter type of a JSON value (``None`` for ``null``)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return None
