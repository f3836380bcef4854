"""Run a compiled PipelineSpec through ``kfp.local`` with the pipecast runtime as the
executor: the product's engine (:mod:`pipecast.verify.kfp_local`, what ``pipecast verify
--target vertex`` runs), and the Vertex conformance hooks on top of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from pipecast.conformance import Conformance, Job, Record, secret_env
from pipecast.passes.analysis import PipelineIndex
from pipecast.verify.kfp_local import bare_python, shim_dir


def run_local(
    spec_path: Path,
    params: dict[str, Any],
    work: Path,
    monkeypatch: pytest.MonkeyPatch | None,
    python_path: list[Path],
    env: dict[str, str] | None = None,
    index: PipelineIndex | None = None,
) -> dict[str, Any]:
    """Execute the spec; return ``{"status", "steps", "outputs"}`` (the product's runner, which
    restores what it changes itself; ``monkeypatch`` is accepted for old callers)."""
    from pipecast.verify.kfp_local import run_local as run

    return run(spec_path, params, work, python_path, env, index)


__all__ = ["VertexConformance", "bare_python", "run_local", "shim_dir"]


class VertexConformance(Conformance):
    """Conformance hooks: each run executes in ``kfp.local`` (subprocess runner) on this host."""

    settings: ClassVar[Mapping[str, Any]] = {
        "image": "python:3.11-slim",
        "pipeline_root": "gs://pipecast-conformance/runs",
    }
    reports_tasks_only: ClassVar[bool] = True

    def settings_for(self, secrets: Mapping[str, str]) -> dict[str, Any]:
        # kfp.local has no Google Secret Manager: the runtime reads PIPECAST_SECRET_<NAME>.
        return {**self.settings, "secret_store": "env"} if secrets else dict(self.settings)

    def execute(self, job: Job) -> list[Record]:
        (rel,) = [r for r in job.files if r.endswith((".yaml", ".json")) and ".schedule" not in r]
        spec = job.work / Path(rel).name
        spec.write_text(job.files[rel], encoding="utf-8")
        records = []
        for i, params in enumerate(job.runs):
            work = job.work / f"run{i}"
            work.mkdir()
            records.append(
                run_local(
                    spec,
                    dict(params),
                    work,
                    None,
                    list(job.python_path),
                    env=secret_env(job.secrets),
                    index=job.loaded.index,
                )
            )
        return records
