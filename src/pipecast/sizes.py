"""Machine-size tables shared by the backends that pick a machine for a step's resources
(SPEC §8): SageMaker instance types, Azure VM sizes, ...

A table lists :class:`Size` rows, smallest (cheapest) first within each accelerator family;
a step gets the first row that covers its cpu, memory, GPU count and accelerator
(:func:`smallest`). A GPU request without an accelerator name gets the table's default
accelerator (:meth:`Request.of`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from pipecast.ir.models import Resources

GiB = 1024**3


@dataclass(frozen=True)
class Size:
    """One machine size: its name on the target and what it offers."""

    name: str
    cpu: float
    memory_gib: float
    gpus: int = 0
    accelerator: str | None = None


S = TypeVar("S", bound=Size)


@dataclass(frozen=True)
class Request:
    """A step's resources as a size search needs them (unset values are 0)."""

    cpu: float
    memory_gib: float
    gpus: int
    accelerator: str | None

    @classmethod
    def of(cls, res: Resources, default_accelerator: str) -> Request:
        """``res`` with an accelerator named when GPUs are asked for, and one GPU when only an
        accelerator is."""
        gpus = res.gpu or (1 if res.accelerator else 0)
        accelerator = res.accelerator or (default_accelerator if gpus else None)
        return cls(res.cpu or 0.0, (res.memory_bytes or 0) / GiB, gpus, accelerator)


def smallest(table: Sequence[S], request: Request) -> S | None:
    """The first row of ``table`` with the requested accelerator that covers the request."""
    for row in table:
        if row.accelerator != request.accelerator or row.gpus < request.gpus:
            continue
        if row.cpu >= request.cpu and row.memory_gib >= request.memory_gib:
            return row
    return None


def describe(res: Resources) -> str:
    """``cpu 4, memory 16Gi, gpu 1, nvidia-t4`` (what a step asks for, for messages)."""
    parts = []
    if res.cpu is not None:
        parts.append(f"cpu {res.cpu:g}")
    if res.memory is not None:
        parts.append(f"memory {res.memory}")
    if res.gpu:
        parts.append(f"gpu {res.gpu}")
    if res.accelerator:
        parts.append(res.accelerator)
    return ", ".join(parts) or "no resources"
