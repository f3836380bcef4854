"""Shared helpers of the Airflow backend tests; the engine itself (``run_dags``, the harness,
the run record) is the product's (``pipecast_airflow.local``, what ``pipecast verify`` runs)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pipecast_airflow.local import STATES, dag_id, run_dags, run_record, secret_variables, step_view

from pipecast.api import compile_pipeline, load_checked
from pipecast.conformance import Conformance, Job, Record

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
            env.update(secret_variables(job.secrets))
            for params in job.runs:
                runs.append({"file": str(path), "dag_id": dag_id(text), "conf": dict(params)})
                owners.append(i)
        out: list[list[Record] | None] = [[] for _ in jobs]
        for i, result in zip(owners, run_dags(dags, runs, env), strict=True):
            out[i].append(run_record(result))  # type: ignore[union-attr]
        return out
