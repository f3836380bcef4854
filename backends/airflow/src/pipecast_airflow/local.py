"""The Airflow local engine of ``pipecast verify`` (and of the test suite).

A temporary ``AIRFLOW_HOME`` with SQLite (migrated once per session, about 3 s) and
``dag.test()`` (https://airflow.apache.org/docs/apache-airflow/stable/core-concepts/debug.html):
the generated DAG file is imported by a ``DagBag`` and run task by task in one child process
(:mod:`pipecast_airflow.harness`), without a scheduler. Several DAG files can run in one
child process (:func:`run_dags`), so Airflow's start-up is paid once per batch.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipecast.runtime.faults import fail_env
from pipecast.verify.engine import (
    Engine,
    EngineJob,
    EngineResult,
    EngineSession,
    compile_job,
    environ,
    timed_out,
)

#: Airflow task-instance states -> run-record statuses (SPEC §12).
STATES = {
    "success": "succeeded",
    "failed": "failed",
    "skipped": "skipped",
    "upstream_failed": "not_run",
    "None": "not_run",
}


def airflow_environ(home: Path) -> dict[str, str]:
    """Environment variables that point Airflow at ``home`` (also for child processes)."""
    dags = home / "dags"
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__CORE__DAG_DISCOVERY_SAFE_MODE": "True",
    }


def prepare_home(home: Path, migrate: bool = True) -> dict[str, str]:
    """Create an Airflow home (SQLite, no examples) and, with ``migrate``, its database
    (else the first :func:`run_dags` with ``init_db`` creates it); its environment variables."""
    env = airflow_environ(home)
    (home / "dags").mkdir(parents=True, exist_ok=True)
    (home / "airflow.cfg").write_text("[core]\nload_examples = False\n", encoding="utf-8")
    if not migrate:
        return env
    proc = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed: {proc.stderr[-2000:]}")
    return env


def run_dags(
    dags: Path,
    jobs: Sequence[Mapping[str, Any]],
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 600,
    init_db: bool = False,
) -> list[dict[str, Any]]:
    """Run the harness (DagBag + ``dag.test()``) over several DAG files in one child process
    (``init_db``: create the database of a fresh home first).

    Raises:
        subprocess.TimeoutExpired: the batch did not finish within ``timeout``.
        RuntimeError: the harness reported fewer results than jobs (its stderr attached).
    """
    env = {**os.environ, **(extra_env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "pipecast_airflow.harness", json.dumps(list(jobs))]
        + (["--init-db"] if init_db else []),
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        # Not the dags folder: a step's child process has its working directory on sys.path
        # (SPEC §3.1), where DAG files named like stdlib modules (secrets.py) would shadow them.
        cwd=dags.parent,
    )
    # A task's output may leave a line unterminated before the harness's own.
    results = [
        json.loads(line.partition("PIPECAST-RESULT ")[2])
        for line in proc.stdout.splitlines()
        if "PIPECAST-RESULT " in line
    ]
    if len(results) != len(jobs):
        raise RuntimeError(f"the Airflow harness stopped early:\n{proc.stderr[-4000:]}")
    return results


def step_view(tasks: Mapping[str, Any]) -> dict[str, Any]:
    """Airflow task instances keyed like the run record: ``step`` / ``step[i]`` / ``step[i][j]``.

    A loop's tasks are in task groups ``<loop>`` and ``<loop>-s<k>`` mapped over the XCom of
    ``<loop>-items``; a nested loop's items are paths ``{"ix": [i, j], "items": [...]}``, so map
    index ``m`` is the step's ``[i][j]``.
    """
    out: dict[str, Any] = {}
    failed: dict[str, Any] = {}
    for key, ti in tasks.items():
        base, _, index = key.partition("[")
        group, _, name = base.rpartition(".")
        condition = name.endswith("-condition") and ti.get("state") == "failed"
        name = name.removesuffix("-condition") if condition else name
        if name.endswith("-finally"):  # a group's own finally (SPEC §18): key <group>.finally
            if ti.get("state") == "skipped":
                continue  # its when group was skipped, or it never started: it did not run
            name = name[: -len("-finally")] + ".finally"
        elif "-" in name:
            continue  # pipecast's helper tasks (conditions, joins, items, status)
        if group and not index:
            continue  # the unexpanded mapped task of a loop over no items: no item ran
        suffix = f"[{index}" if index else ""
        items = (tasks.get(group.partition("-")[0] + "-items") or {}).get("xcom") if group and index else None
        if isinstance(items, list) and items and _is_path(items[0]):
            suffix = "".join(f"[{i}]" for i in items[int(index.rstrip("]"))]["ix"])
        if condition:
            # A condition that could not be evaluated (a missing metric, SPEC §15) fails its
            # step before any attempt.
            failed[name + suffix] = {**ti, "xcom": None, "meta": {"attempts": 0}}
        else:
            out[name + suffix] = ti
    return {**out, **failed}


def _held_conditions(
    tasks: Mapping[str, Any], steps: Mapping[str, Any], structure: Mapping[str, Any] | None = None
) -> list[str]:
    """Top-level ``when`` groups that ran a branch: their ``<group>-condition`` branch
    followed a task of the group (not only its ``-join``). Such a group ran even when every
    step inside was skipped (pipecast.verify.records.complete reads ``_held``).

    The followed tasks are the branch task's XCom when Airflow pushed it; Airflow 3 pushes none
    when the branch skips tasks, so they are also read from the DAG's structure: a task
    downstream of the condition, other than the join, that was not skipped."""
    held = []
    for key, ti in tasks.items():
        group = key.removesuffix("-condition")
        if group == key or "." in key or "[" in key or group in steps or ti.get("state") != "success":
            continue
        followed = ti.get("xcom")
        followed = [followed] if isinstance(followed, str) else followed
        if not isinstance(followed, list):
            followed = [
                t
                for t, info in (structure or {}).items()
                if key in info.get("upstream", ())
                and (tasks.get(t) or {}).get("state") not in (None, "skipped")
            ]
        if any(not str(t).endswith("-join") for t in followed):
            held.append(group)
    return sorted(held)


def _is_path(item: Any) -> bool:
    return isinstance(item, dict) and set(item) == {"ix", "items"} and isinstance(item["ix"], list)


def _skipped_loops(tasks: Mapping[str, Any], steps: dict[str, dict[str, Any]]) -> None:
    """A top-level loop whose items task was skipped: its list came from a skipped step (SPEC §22)."""
    for key, ti in tasks.items():
        name = key.removesuffix("-items")
        if name != key and "." not in key and "[" not in key and ti["state"] == "skipped":
            steps.setdefault(name, {"status": "skipped"})


def _stopped(tasks: Mapping[str, Any], structure: Mapping[str, Any]) -> dict[str, Any]:
    """The task instances with the ones that never started because of SPEC §10 marked
    ``meta.status: not_run``: a task the runtime stopped at start (the run had failed) marks
    itself; a task Airflow skipped because an upstream task instance (of the same map index,
    or unmapped) never started is marked too, so a stopped item's later steps and nested
    groups are ``not_run`` as in the simulator. A skip after a branch that ran (a false
    ``when``) stays ``skipped``."""
    out = {key: dict(ti) for key, ti in tasks.items()}

    def stopped(ti: Mapping[str, Any]) -> bool:
        meta = ti.get("meta")
        return ti.get("state") == "skipped" and isinstance(meta, dict) and meta.get("status") == "not_run"

    changed = True
    while changed:
        changed = False
        for key, ti in out.items():
            if ti.get("state") != "skipped" or stopped(ti) or isinstance(ti.get("meta"), dict):
                continue
            task, _, index = key.partition("[")
            ups = [
                out.get(f"{up}[{index}" if index else up) or out.get(up) for up in _upstream(structure, task)
            ]
            if any(up is not None and stopped(up) for up in ups):
                ti["meta"] = {"status": "not_run", "attempts": 0}
                changed = True
    return out


def _upstream(structure: Mapping[str, Any], task: str) -> list[str]:
    found = structure.get(task)
    return list(found.get("upstream") or []) if isinstance(found, dict) else []


def run_record(result: Mapping[str, Any]) -> dict[str, Any]:
    """A run record from one harness result (plus ``_import_errors`` and ``_dags``)."""
    steps: dict[str, dict[str, Any]] = {}
    tasks = result.get("tasks") or {}
    if result.get("state") == "failed":
        tasks = _stopped(tasks, result.get("structure") or {})
    for key, ti in step_view(tasks).items():
        meta = ti.get("meta") if isinstance(ti.get("meta"), dict) else {}
        # The runtime retries and caches inside the task: it reports attempts and a cache hit.
        entry: dict[str, Any] = {
            "status": STATES.get(ti["state"], ti["state"]),
            "attempts": meta.get("attempts", ti["tries"]),
        }
        if meta.get("status") == "cached" and entry["status"] == "succeeded":
            entry["status"] = "cached"
        if meta.get("status") == "not_run" and entry["status"] == "skipped":
            entry["status"] = "not_run"  # stopped at start: the run had failed (SPEC §10)
        if isinstance(ti.get("xcom"), dict):
            entry["outputs"] = ti["xcom"]
        for field in ("metrics", "metadata"):  # SPEC §15, published by the runtime
            if isinstance(meta.get(field), dict):
                entry[field] = meta[field]
        for field in ("started", "ended"):
            if ti.get(field):
                entry[field] = ti[field]
        steps[key] = entry
    # A loop group's entry is its `<group>-done` task, which returns the group's outputs (a
    # group that did not complete is derived from its tasks, see pipecast.verify.records).
    # A nested loop's `-done` returns one row per item of the loop around it: `inner[i]`.
    for key, ti in (result.get("tasks") or {}).items():
        if not (key.endswith("-done") and "." not in key and ti["state"] == "success"):
            continue
        name, xcom = key.removesuffix("-done"), ti.get("xcom")
        if isinstance(xcom, dict) and isinstance(xcom.get("-rows"), list):
            for row in xcom["-rows"]:
                steps[name + "".join(f"[{i}]" for i in row["ix"])] = {
                    "status": "succeeded",
                    "outputs": row["outputs"],
                }
            continue
        steps[name] = {"status": "succeeded", **({"outputs": xcom} if isinstance(xcom, dict) else {})}
    _skipped_loops(result.get("tasks") or {}, steps)
    state = str(result.get("state"))
    record: dict[str, Any] = {
        "_held": _held_conditions(result.get("tasks") or {}, steps, result.get("structure")),
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


def dag_id(text: str) -> str:
    """The ``dag_id`` of a generated DAG file."""
    match = re.search(r"dag_id=(['\"])(.+?)\1", text)
    if match is None:
        raise ValueError("no dag_id in the generated DAG file")
    return match.group(2)


def secret_variables(secrets: Mapping[str, str]) -> dict[str, str]:
    """Secrets as Airflow Variables from the environment (``AIRFLOW_VAR_<NAME>``)."""
    return {f"AIRFLOW_VAR_{name.upper()}": value for name, value in secrets.items()}


class _Session(EngineSession):
    def __init__(self, home: Path) -> None:
        self.home = home
        self.dags = home / "dags"
        self.fresh = True

    def run(self, job: EngineJob) -> EngineResult:
        files, _settings = compile_job(job, "airflow", {})
        ((rel, text),) = files.items()
        path = self.dags / Path(rel).name
        path.write_text(text, encoding="utf-8")
        env = {
            "PIPECAST_PYTHON_PATH": os.pathsep.join(str(p) for p in job.python_path),
            **secret_variables(job.secrets),
        }
        if job.fail:
            env.update(fail_env(job.fail, job.workdir / "faults"))
        spec = {"file": str(path), "dag_id": dag_id(text), "conf": dict(job.params)}
        try:
            (result,) = run_dags(self.dags, [spec], env, timeout=job.timeout, init_db=self.fresh)
            self.fresh = False
        except subprocess.TimeoutExpired:
            raise timed_out("airflow", job.timeout, "dag.test()") from None
        record = run_record(result)
        notes = ["dag.test() ran the tasks in one process; the Airflow scheduler was not run"]
        if record.get("_import_errors"):
            notes.append(f"import errors: {record['_import_errors']}")
        return EngineResult(record=record, notes=notes, files=files)


class AirflowEngine(Engine):
    """Airflow's ``dag.test()`` in a temporary ``AIRFLOW_HOME`` with SQLite."""

    target = "airflow"
    title = "Airflow dag.test() in a temporary AIRFLOW_HOME (SQLite)"
    extra = "verify-airflow"
    modules = ("airflow",)

    @contextmanager
    def session(self, workdir: Path) -> Iterator[EngineSession]:
        home = workdir / "airflow_home"
        env = prepare_home(home, migrate=False)
        with environ(env):
            yield _Session(home)
