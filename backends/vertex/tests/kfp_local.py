"""Run a compiled PipelineSpec through ``kfp.local`` with the pipecast runtime as the
executor: the product's engine (:mod:`pipecast.verify.kfp_local`, what ``pipecast verify
--target vertex`` runs), and the Vertex conformance hooks on top of it.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from pipecast.conformance import Conformance, Job, Record, secret_env
from pipecast.passes.analysis import PipelineIndex
from pipecast.verify.kfp_child import KfpHang, run_bounded
from pipecast.verify.kfp_local import bare_python, shim_dir

# A kfp.local run of a conformance case takes seconds; this bound is far above the slowest
# under CI load. kfp.local once piled up print wrappers across the runs of one process
# (pipecast.verify.kfp_local._unindented) until runs crawled; each run now has a process of its
# own, and a run past the bound is killed, reported with its stacks as a warning, and run once
# more in a fresh child. A second hang fails the test.
RUN_TIMEOUT = 300.0


def run_local(
    spec_path: Path,
    params: dict[str, Any],
    work: Path,
    monkeypatch: pytest.MonkeyPatch | None,
    python_path: list[Path],
    env: dict[str, str] | None = None,
    index: PipelineIndex | None = None,
) -> dict[str, Any]:
    """Execute the spec; return ``{"status", "steps", "outputs"}`` (the product's runner, in a
    child process bounded by :data:`RUN_TIMEOUT`; ``monkeypatch`` is accepted for old callers)."""
    try:
        return run_bounded(spec_path, params, work, python_path, env, index, timeout=RUN_TIMEOUT)
    except KfpHang as hang:
        warnings.warn(f"{hang} ({spec_path.name}); ran it again. Its stacks:\n{hang.stacks}", stacklevel=2)
    retry = work.with_name(work.name + "-retry")
    shutil.rmtree(retry, ignore_errors=True)
    retry.mkdir(parents=True)
    return run_bounded(spec_path, params, retry, python_path, env, index, timeout=RUN_TIMEOUT)


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
