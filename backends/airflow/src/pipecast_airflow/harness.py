"""Run generated DAG files under ``dag.test()`` in one process and print what happened as JSON.

The Airflow local engine of ``pipecast verify`` and of the test suite (``pipecast_airflow.local``
starts it). Usage: ``python -m pipecast_airflow.harness JOBS_JSON`` where the JSON is a list of ``{"file", "dag_id", "conf"}``
(optional: ``"execute": false`` to load only, ``"fields": [...]`` operator attributes to report);
``--init-db`` after it first creates the tables of a fresh home.
Airflow must already be configured through the environment (:func:`pipecast_airflow.local.airflow_environ`).
Output: one JSON line per job: import errors, the run state, and per task instance
``{state, tries, xcom, meta}`` keyed ``task_id`` or ``task_id[i]`` for mapped instances
(``meta``: what the pipecast runtime pushed under XCom key ``pipecast``: attempts, a cache hit).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import Any


def run(job: dict) -> dict:
    from airflow.dag_processing.dagbag import DagBag

    started = time.monotonic()
    bag = DagBag(dag_folder=job["file"], safe_mode=True)
    errors = {str(k): str(v)[-2000:] for k, v in bag.import_errors.items()}
    out: dict = {"file": job["file"], "import_errors": errors, "dags": sorted(bag.dag_ids)}
    if errors:
        return out
    dag = bag.get_dag(job["dag_id"])
    out["structure"] = {
        t.task_id: {
            "upstream": sorted(t.upstream_task_ids),
            "retries": t.retries,
            "trigger_rule": str(getattr(t.trigger_rule, "value", t.trigger_rule)),
            "operator": type(t).__name__,
            **{f: _plain(getattr(t, f)) for f in job.get("fields", []) if hasattr(t, f)},
        }
        for t in dag.tasks
    }
    if not job.get("execute", True):
        return out
    dr = dag.test(run_conf=job.get("conf") or None)
    tasks = {}
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows: Any = session.scalars(
            XComModel.get_many(run_id=dr.run_id, dag_ids=dag.dag_id, key="return_value")
        ).all()
        xcoms = {(r.task_id, r.map_index): r.value for r in rows}
        # What the pipecast runtime reports besides outputs (attempts, a cache hit).
        meta_rows: Any = session.scalars(
            XComModel.get_many(run_id=dr.run_id, dag_ids=dag.dag_id, key="pipecast")
        ).all()
        metas = {(r.task_id, r.map_index): r.value for r in meta_rows}
        for ti in dr.get_task_instances(session=session):
            key = ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else "")
            value = xcoms.get((ti.task_id, ti.map_index))
            if isinstance(value, str):
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            meta = metas.get((ti.task_id, ti.map_index))
            if isinstance(meta, str):
                with contextlib.suppress(ValueError):
                    meta = json.loads(meta)
            tasks[key] = {
                "state": str(ti.state),
                "tries": ti.try_number,
                "xcom": value,
                "meta": meta,
                "started": ti.start_date.isoformat() if ti.start_date else None,
                "ended": ti.end_date.isoformat() if ti.end_date else None,
            }
    out.update(state=str(dr.state), tasks=tasks, seconds=round(time.monotonic() - started, 2))
    return out


def _plain(value: object) -> object:
    """An operator field as JSON: Kubernetes models through ``to_dict``, others through vars."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return _plain(to_dict())
    if hasattr(value, "__dict__"):
        return {"type": type(value).__name__, **{k: _plain(v) for k, v in sorted(vars(value).items())}}
    return str(value)


def main() -> None:
    import logging

    logging.disable(logging.WARNING)
    if "--init-db" in sys.argv[2:]:
        # A fresh home: create the tables here rather than in a separate `airflow db migrate`
        # process, which would import Airflow a second time (seconds on a small machine).
        from airflow.utils import db

        db.initdb()
    for job in json.loads(sys.argv[1]):
        print("PIPECAST-RESULT " + json.dumps(run(job), default=str), flush=True)


if __name__ == "__main__":
    main()
