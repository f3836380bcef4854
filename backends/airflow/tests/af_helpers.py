"""Shared helpers of the Airflow backend tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipecast.api import compile_pipeline, load_checked

HARNESS = Path(__file__).parent / "harness.py"
REPO = Path(__file__).resolve().parents[3]
CASES = REPO / "tests" / "conformance" / "cases"


def compile_file(path: Path, settings: dict[str, Any] | None = None, lenient: bool = True) -> tuple[str, str]:
    """Compile a pipeline for Airflow; returns (file name, text).

    ``project_dir`` defaults to the pipeline's folder as an absolute path (the code is where
    the test reads it); tests of the deployment layouts pass their own.
    """
    loaded = load_checked(path)
    merged = {"project_dir": str(path.parent.resolve()), **(settings or {})}
    result = compile_pipeline(loaded, "airflow", merged, lenient=lenient)
    ((name, text),) = result.files.items()
    return name, text


def run_dags(dags: Path, jobs: list[dict[str, Any]], extra_env: dict[str, str] | None = None) -> list[dict]:
    """Run the harness (DagBag + dag.test()) over several DAG files in one child process."""
    env = {**os.environ, **(extra_env or {})}
    proc = subprocess.run(
        [sys.executable, str(HARNESS), json.dumps(jobs)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        # Not the dags folder: a step's child process has its working directory on sys.path
        # (SPEC §3.1), where DAG files named like stdlib modules (secrets.py) would shadow them.
        cwd=dags.parent,
    )
    results = [
        json.loads(line.split(" ", 1)[1])
        for line in proc.stdout.splitlines()
        if line.startswith("PIPECAST-RESULT ")
    ]
    assert len(results) == len(jobs), proc.stderr[-4000:]
    return results


#: Airflow task-instance states -> run-record statuses (SPEC §12).
STATES = {
    "success": "succeeded",
    "failed": "failed",
    "skipped": "skipped",
    "upstream_failed": "not_run",
    "None": "not_run",
}


def step_view(tasks: dict[str, dict]) -> dict[str, dict]:
    """Airflow task instances keyed like the run record: ``step`` / ``step[i]``."""
    out = {}
    for key, ti in tasks.items():
        base, _, index = key.partition("[")
        name = base.rsplit(".", 1)[-1]
        if "-" in name:
            continue  # pipecast's helper tasks (conditions, joins, items, status)
        out[name + (f"[{index}" if index else "")] = ti
    return out


def place(dags: Path, name: str, text: str) -> Path:
    target = dags / name
    target.write_text(text, encoding="utf-8")
    return target


__all__ = ["CASES", "REPO", "STATES", "compile_file", "place", "run_dags", "shutil", "step_view"]
