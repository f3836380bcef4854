"""Run a compiled PipelineSpec through ``kfp.local`` with the pipecast runtime as the
executor, and turn what happened into a run record (SPEC §12) to compare with expectations.

The container-component check of kfp's subprocess runner is patched (test-only, as kfp's
own tests do); every step then runs ``python -m pipecast.runtime run --convention kfp`` on
this host. Each attempt appends a line to ``PIPECAST_KFP_TRACE``; a step's run-record key is
its name plus the ``-iteration-<i>`` folders kfp.local creates for each enclosing loop.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from pipecast.conformance import Conformance, Job, Record, secret_env

_ITER = re.compile(r"-iteration-(\d+)")


def run_local(
    spec_path: Path,
    params: dict[str, Any],
    work: Path,
    monkeypatch: pytest.MonkeyPatch,
    python_path: list[Path],
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Execute the spec; return ``{"status", "steps", "outputs"}``."""
    import kfp.local
    from kfp import components
    from kfp.local import subprocess_task_handler

    monkeypatch.setattr(
        subprocess_task_handler.SubprocessTaskHandler,
        "validate_not_container_component",
        lambda self, full_command: None,
    )
    trace = work / "trace.jsonl"
    bin_dir = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", bin_dir + os.pathsep + os.environ.get("PATH", ""))
    monkeypatch.setenv("PIPECAST_KFP_TRACE", str(trace))
    monkeypatch.setenv("PIPECAST_PYTHON_PATH", os.pathsep.join(str(p) for p in python_path))
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(work)
    kfp.local.init(
        runner=kfp.local.SubprocessRunner(use_venv=False),
        pipeline_root=str(work / "local_outputs"),
        raise_on_error=True,
    )
    component = components.load_component_from_file(str(spec_path))
    status, outputs = "succeeded", {}
    logging.getLogger().setLevel(logging.WARNING)
    try:
        task = component(**params)
        outputs = {k: _plain(v) for k, v in task.outputs.items()} if task.outputs else {}
    except RuntimeError as exc:
        if "finished with status" not in str(exc):
            raise
        status = "failed"
    return {"status": status, "steps": _steps(trace), "outputs": outputs}


def _plain(value: Any) -> Any:
    uri = getattr(value, "uri", None)
    return uri if uri is not None else value


def _steps(trace: Path) -> dict[str, dict[str, Any]]:
    steps: dict[str, dict[str, Any]] = {}
    if not trace.exists():
        return steps
    for line in trace.read_text().splitlines():
        entry = json.loads(line)
        key = entry["step"] + "".join(f"[{i}]" for i in _ITER.findall(entry["task_dir"] or ""))
        record = steps.setdefault(key, {"attempts": 0})
        record["attempts"] += 1
        record["status"] = entry["status"]
        if entry["outputs"] is not None:
            record["outputs"] = entry["outputs"]
    return steps


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
            with pytest.MonkeyPatch.context() as mp:
                records.append(
                    run_local(
                        spec, dict(params), work, mp, list(job.python_path), env=secret_env(job.secrets)
                    )
                )
        return records
