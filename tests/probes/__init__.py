"""Probe pipelines of the cloud-rules tests (issue 20): shapes the examples and the
conformance cases do not reach (the longest names, seven parallel branches, a 60-item loop,
a 10-day timeout, a quarterly cron, an empty loop, hour-long steps). Compile-only."""

from __future__ import annotations

from pathlib import Path

PROBES_DIR = Path(__file__).parent
REPO = PROBES_DIR.parents[1]


def probe_paths() -> list[Path]:
    return sorted(PROBES_DIR.glob("*.yaml"))


def all_pipelines() -> list[Path]:
    """Every example, every conformance case and every probe: what the cloud rules check."""
    return [
        *sorted((REPO / "examples").glob("*/pipeline.yaml")),
        *sorted((REPO / "tests/conformance/cases").glob("*.yaml")),
        *probe_paths(),
    ]


def ids(path: Path) -> str:
    return str(path.relative_to(REPO))
