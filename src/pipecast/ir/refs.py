"""References (SPEC §4): ``{{ params.P }}``, ``{{ steps.S.outputs.O }}``, loop variables,
``{{ pipeline.status|name|run_id }}`` and, inside container commands, ``{{ inputs.X }}`` /
``{{ outputs.Y }}``.

A string value is a *template*: literal text and references. A value that is exactly one
reference keeps the referenced value's type; anything else is a ``str`` in which values
are rendered as JSON and strings bare.

This module holds the reference *data* only. Parsing a template or a path is done once per
compile by :mod:`pipecast.passes.parse` and :mod:`pipecast.passes.resolve`; everything after
the validator reads the resolved form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

RefKind = Literal["param", "step", "loop", "pipeline", "group", "inputs", "outputs"]

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
        if self.kind in ("pipeline", "group"):
            return f"{self.kind}.{self.name}"
        if self.kind in ("inputs", "outputs"):
            return f"{self.kind}.{self.name}"
        return self.name if self.key is None else f"{self.name}.{self.key}"

    def __str__(self) -> str:
        return "{{ " + self.path + " }}"


Segment = str | Ref


#: Appended to a reference syntax error that a literal ``{{`` would explain (SPEC §19).
ESCAPE_HINT = "; to pass a literal '{{' write '\\{{'"


def render_value(value: Any) -> str:
    """How a value appears inside a mixed string: strings bare, everything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=False)  # compact (SPEC §22)
