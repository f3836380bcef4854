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
    """Compile a pipeline for Airflow; returns (file name, text)."""
    loaded = load_checked(path)
    merged = {"python_path": [str(path.parent.resolve())], **(settings or {})}
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
        cwd=dags,
    )
    results = [
        json.loads(line.split(" ", 1)[1])
        for line in proc.stdout.splitlines()
        if line.startswith("PIPECAST-RESULT ")
    ]
    assert len(results) == len(jobs), proc.stderr[-4000:]
    return results


def place(dags: Path, name: str, text: str) -> Path:
    target = dags / name
    target.write_text(text, encoding="utf-8")
    return target


__all__ = ["CASES", "REPO", "compile_file", "place", "run_dags", "shutil"]
