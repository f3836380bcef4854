"""Whole-pipeline validation (SPEC §2–§10). Work in progress: see the foundation issue."""

from __future__ import annotations

from typing import Any

from pipecast.diagnostics import Diagnostic
from pipecast.ir.models import Pipeline


def validate(loaded: Any) -> list[Diagnostic]:
    """Every problem the models alone cannot see (placeholder until the full pass lands)."""
    return []


def check_params(pipeline: Pipeline, given: dict[str, str]) -> dict[str, Any]:
    """Parse run-time ``--param`` values by declared type (placeholder)."""
    out = {name: p.default for name, p in pipeline.params.items() if p.has_default}
    out.update(given)
    return out
