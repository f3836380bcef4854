"""Shared helpers of the Airflow backend tests."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pipecast.api import compile_pipeline, load_checked
from pipecast.conformance import Conformance, Job, Record

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
    """Airflow task instances keyed like the run record: ``step`` / ``step[i]`` / ``step[i][j]``.

    A flattened chain of nested loops maps one task group over ``{"ix": [i, j], ...}`` items
    (the XCom of ``<group>-items``): map index ``m`` is the step's ``[i][j]``.
    """
    out = {}
    for key, ti in tasks.items():
        base, _, index = key.partition("[")
        group, _, name = base.rpartition(".")
        if "-" in name:
            continue  # pipecast's helper tasks (conditions, joins, items, status)
        suffix = f"[{index}" if index else ""
        items = (tasks.get(f"{group}-items") or {}).get("xcom") if group and index else None
        if isinstance(items, list) and items and isinstance(items[0], dict) and "ix" in items[0]:
            suffix = "".join(f"[{i}]" for i in items[int(index.rstrip("]"))]["ix"])
        out[name + suffix] = ti
    return out


def place(dags: Path, name: str, text: str) -> Path:
    target = dags / name
    target.write_text(text, encoding="utf-8")
    return target


__all__ = ["CASES", "REPO", "STATES", "compile_file", "place", "run_dags", "shutil", "step_view"]


class AirflowConformance(Conformance):
    """Conformance hooks: DAGs run with ``dag.test()``, several cases per child process.

    Airflow's checker is its DagBag: the batch imports every file in a fresh process, and
    :meth:`validate` reads the import errors it reported.
    """

    fixtures: ClassVar[tuple[str, ...]] = ("airflow_env",)
    reports_tasks_only: ClassVar[bool] = True
    batches: ClassVar[int] = 3

    def validate(self, job: Job, records: Sequence[Record] | None = None) -> list[str]:
        problems = []
        for record in records or [self.execute(job)]:
            if record["_import_errors"]:
                problems.append(f"import errors: {record['_import_errors']}")
            if len(record["_dags"]) != 1:
                problems.append(f"expected one DAG, got {record['_dags']}")
        return problems

    def execute(self, job: Job) -> list[Record]:
        return self.execute_many([job])[0]

    def execute_many(self, jobs: Sequence[Job]) -> list[list[Record] | None]:
        dags: Path = jobs[0].fixtures["airflow_env"].dags
        runs: list[dict[str, Any]] = []
        owners: list[int] = []
        env: dict[str, str] = {}
        for i, job in enumerate(jobs):
            env["PIPECAST_PYTHON_PATH"] = os.pathsep.join(str(p) for p in job.python_path)
            ((rel, text),) = job.files.items()
            path = place(dags, Path(rel).name, text)
            for name, value in job.secrets.items():
                env[f"AIRFLOW_VAR_{name.upper()}"] = value
            for params in job.runs:
                runs.append({"file": str(path), "dag_id": _dag_id(text), "conf": dict(params)})
                owners.append(i)
        out: list[list[Record] | None] = [[] for _ in jobs]
        for i, result in zip(owners, run_dags(dags, runs, env), strict=True):
            out[i].append(run_record(result))  # type: ignore[union-attr]
        return out


def run_record(result: dict[str, Any]) -> Record:
    """A run record from one ``harness.py`` result (plus ``_import_errors`` and ``_dags``)."""
    steps: dict[str, dict[str, Any]] = {}
    for key, ti in step_view(result.get("tasks") or {}).items():
        meta = ti.get("meta") if isinstance(ti.get("meta"), dict) else {}
        # The runtime retries and caches inside the task: it reports attempts and a cache hit.
        entry: dict[str, Any] = {
            "status": STATES.get(ti["state"], ti["state"]),
            "attempts": meta.get("attempts", ti["tries"]),
        }
        if meta.get("status") == "cached" and entry["status"] == "succeeded":
            entry["status"] = "cached"
        if isinstance(ti.get("xcom"), dict):
            entry["outputs"] = ti["xcom"]
        steps[key] = entry
    state = str(result.get("state"))
    record: Record = {
        "status": {"success": "succeeded", "failed": "failed"}.get(state, state),
        "steps": steps,
        "_import_errors": result.get("import_errors"),
        "_dags": result.get("dags"),
    }
    # Pipeline outputs are the XCom of the backend's "pipeline-outputs" task.
    outputs = ((result.get("tasks") or {}).get("pipeline-outputs") or {}).get("xcom")
    if isinstance(outputs, dict):
        record["outputs"] = outputs
    return record


def _dag_id(text: str) -> str:
    match = re.search(r"dag_id=(['\"])(.+?)\1", text)
    assert match, "no dag_id in the generated DAG file"
    return match.group(2)
