"""Checks for ``schedule``: 5-field cron expressions and IANA time zones (SPEC §2)."""

from __future__ import annotations

import re

CRON_HINT = (
    "five fields: minute hour day-of-month month day-of-week, e.g. '0 2 * * *' "
    "(each field: *, a number, a range a-b, a list a,b, a step */n or a-b/n; names JAN-DEC, SUN-SAT)"
)

_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

# (name, low, high, names mapped to numbers)
_FIELDS: list[tuple[str, int, int, dict[str, int]]] = [
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(_MONTHS)}),
    # 7 is Sunday too in every cron dialect the targets use.
    ("day of week", 0, 7, {d: i for i, d in enumerate(_DAYS)}),
]
_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_RANGE_RE = re.compile(r"^([A-Za-z0-9]+)(?:-([A-Za-z0-9]+))?$")


def check_cron(expr: str) -> list[str]:
    """Problems in a 5-field cron expression (empty when it is fine)."""
    text = expr.strip()
    if text in _MACROS:
        return [f"cron macro {text!r} is not portable; write the five fields (e.g. '0 0 * * *')"]
    fields = text.split()
    if len(fields) != 5:
        return [f"cron {expr!r} has {len(fields)} fields; it needs exactly 5"]
    problems = []
    for value, (name, low, high, names) in zip(fields, _FIELDS, strict=True):
        problem = _check_field(value, name, low, high, names)
        if problem:
            problems.append(f"cron {expr!r}: {problem}")
    return problems


def _number(token: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    if token.upper() in names:
        return names[token.upper()]
    if not token.isdigit():
        valid = f" or a name ({', '.join(names)})" if names else ""
        raise ValueError(f"{name} {token!r} is not a number{valid}")
    number = int(token)
    if not low <= number <= high:
        raise ValueError(f"{name} {number} is out of range {low}-{high}")
    return number


def _check_field(value: str, name: str, low: int, high: int, names: dict[str, int]) -> str | None:
    try:
        for part in value.split(","):
            if not part:
                raise ValueError(f"empty item in {name} list {value!r}")
            base, slash, step = part.partition("/")
            if slash and (not step.isdigit() or int(step) == 0):
                raise ValueError(f"{name} step {step!r} must be a positive number")
            if base == "*":
                continue
            match = _RANGE_RE.match(base)
            if not match:
                raise ValueError(f"{name} {base!r} is not a number, a range a-b or '*'")
            first = _number(match.group(1), name, low, high, names)
            if match.group(2) is not None:
                last = _number(match.group(2), name, low, high, names)
                if last < first:
                    raise ValueError(f"{name} range {base!r} runs backwards")
    except ValueError as exc:
        return str(exc)
    return None


def check_timezone(name: str) -> tuple[str, str] | None:
    """``(problem, hint)`` when ``name`` is not an IANA time zone; ``None`` when it is."""
    import zoneinfo

    if len(name) > 255:
        return f"unknown time zone {name[:40]!r}... ({len(name)} characters)", (
            "use an IANA name such as 'UTC' or 'Europe/Berlin'"
        )
    try:
        zoneinfo.ZoneInfo(name)
        return None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a folder of the zone database ('Europe'), a name too long for a file.
        pass
    from pipecast.passes.analysis import nearest

    zones = sorted(zoneinfo.available_timezones())
    best = nearest(name, zones) or nearest(name.replace(" ", "_"), zones)
    hint = f"did you mean {best!r}?" if best else "use an IANA name such as 'UTC' or 'Europe/Berlin'"
    return f"unknown time zone {name!r}", hint
