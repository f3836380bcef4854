"""Metrics and artifact metadata (SPEC §15), for python steps and for pipecast itself.

A ``Metrics`` artifact is a JSON object of names to numbers. A step writes it with
:func:`log` (or writes the JSON itself); any artifact output may carry metadata, a JSON
object in ``<path>.metadata.json``, written with :func:`annotate`::

    from pipecast import metrics

    def evaluate(model: str, metrics_out: str) -> None:
        metrics.log(metrics_out, auc=0.91, loss=0.2)
        metrics.annotate(model, framework="sklearn")

Both merge with what the file already holds, so a step may call them several times.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

METADATA_SUFFIX = ".metadata.json"


class MetricsError(ValueError):
    """A Metrics file that is missing, not a JSON object of numbers, or lacks a name."""


def _read_object(path: Path) -> dict[str, Any]:
    if not path.exists() or path.stat().st_size == 0:
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise MetricsError(f"{path} holds {type(data).__name__}, not a JSON object")
    return data


def _write_object(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def log(path: str | os.PathLike[str], **values: float) -> dict[str, float]:
    """Add metrics (name=number) to the Metrics artifact at ``path``; returns all of them.

    Raises:
        MetricsError: a value is not a finite number (no target can show NaN or infinity).
    """
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise MetricsError(f"metric {name!r} = {value!r} is not a finite number")
    target = Path(path)
    data = _read_object(target)
    data.update({k: float(v) if isinstance(v, float) else v for k, v in values.items()})
    _write_object(target, data)
    return data


def annotate(path: str | os.PathLike[str], **values: Any) -> dict[str, Any]:
    """Add metadata (name=JSON value) to the artifact at ``path``, in ``<path>.metadata.json``."""
    target = Path(str(path).rstrip("/\\") + METADATA_SUFFIX)
    data = _read_object(target)
    data.update(values)
    _write_object(target, data)
    return data


def read(path: str | os.PathLike[str]) -> dict[str, float]:
    """The metrics of a Metrics artifact: only the entries whose values are numbers."""
    try:
        data = _read_object(Path(path))
    except (OSError, ValueError) as exc:
        raise MetricsError(f"cannot read metrics from {path}: {exc}") from None
    return {k: v for k, v in data.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata an artifact carries (``{}`` when it has none)."""
    try:
        return _read_object(Path(str(path).rstrip("/\\") + METADATA_SUFFIX))
    except (OSError, ValueError):
        return {}


def metric_value(path: str, name: str) -> float:
    """One metric as a ``float``.

    Raises:
        MetricsError: the file cannot be read, or has no number named ``name``.
    """
    found = read(path)
    if name not in found:
        have = ", ".join(sorted(found)) or "none"
        raise MetricsError(f"the Metrics output has no metric {name!r} (it has: {have})")
    return float(found[name])


def numbers_of(declared: Mapping[str, str], outputs: Mapping[str, Any]) -> dict[str, dict[str, float]] | None:
    """Each ``Metrics`` output's numbers as floats (SPEC §15 reads a metric as a ``float``),
    from the step's local output paths; ``None`` when no output is declared ``Metrics``. An
    unreadable file has no numbers (a condition reading one fails with the missing name)."""
    names = [n for n, t in declared.items() if t == "Metrics"]
    if not names:
        return None
    found: dict[str, dict[str, float]] = {}
    for name in names:
        try:
            found[name] = {k: float(v) for k, v in read(outputs[name]).items()}
        except (KeyError, TypeError, MetricsError):
            found[name] = {}
    return found
