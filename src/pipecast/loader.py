"""Load a pipeline file (YAML, JSON or a Python DSL file) into the IR, keeping source
locations so errors can say ``file:line:col`` and the YAML path.

STUB: the foundation work replaces the internals; the public API below is stable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml

from pipecast.diagnostics import SourceMap
from pipecast.ir.models import Pipeline
from pipecast.passes.analysis import PipelineIndex


@dataclass
class Loaded:
    """A loaded pipeline with where it came from."""

    pipeline: Pipeline
    path: Path
    source: SourceMap = field(default_factory=SourceMap)

    @cached_property
    def index(self) -> PipelineIndex:
        return PipelineIndex(self.pipeline)


def load(path: str | Path) -> Loaded:
    """Load a pipeline file. Raises :class:`pipecast.diagnostics.UserError` on bad input."""
    p = Path(path)
    data = yaml.safe_load(p.read_text())
    return Loaded(Pipeline.model_validate(data), p, SourceMap(str(p)))
