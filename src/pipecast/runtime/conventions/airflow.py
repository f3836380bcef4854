"""The Airflow convention: what a generated DAG file's tasks call on the worker.

A generated DAG file (pipecast_airflow) stores one JSON document per task and hands it to
the functions here, inside the task callable, with Airflow's task context:

* :func:`run_step` (``PythonOperator``): resolve the step's inputs (params, XCom of upstream
  tasks, loop items, ``pipeline.*``), run the step through the runtime core (the user function
  in a child process, retries and the timeout by the runtime), return its outputs as
  the task's XCom.
* :func:`branch` (``BranchPythonOperator``): evaluate a ``when`` condition and return the
  task ids to follow.
* :func:`items` : resolve a ``for_each`` list (the XCom a mapped task group expands over).
* :func:`outputs`: the pipeline's outputs.
* :func:`spec_arg` / :func:`inputs_arg`: Jinja macros for container operators, which then run
  ``python -m pipecast.runtime run --convention airflow`` in the image
  (:class:`AirflowConvention`: inputs as JSON, outputs to the XCom sidecar file or stdout).

Binding documents (built by ``pipecast_airflow.lowering``): ``{"value": v}`` or
``{"template": "...", "refs": {path: source}}``; a source is one of ``{"param": p}``,
``{"pipeline": f}``, ``{"loop": items_task, "level": l, "key": k}``, ``{"xcom": task,
"output": o, "mapped": bool, "via"/"depth"/"of": the map index of an outer loop's task,
"row": bool (a row of a nested loop's ``-done``), "json": bool}`` or ``{"switch":
condition, "then": binding, "else": binding}``. A binding is read for one map index of the
reader's loop (``-1`` outside loops).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipecast.runtime.conventions.base import Convention, ConventionError, is_artifact_input
from pipecast.runtime.executor import AttemptResult
from pipecast.runtime.spec import StepSpec

#: Task states that make ``pipeline.status`` ``failed`` in the finally step.
FAILED_STATES = frozenset({"failed", "upstream_failed"})
MAX_MAP_LENGTH = 1024


class AirflowConvention(Convention):
    """Inputs already resolved (by the worker or a Jinja macro); outputs as one JSON object."""

    name = "airflow"

    def __init__(
        self,
        inputs: Mapping[str, Any],
        artifact_dir: Path,
        *,
        xcom_file: Path | None = None,
        xcom_stdout: bool = False,
    ) -> None:
        self.inputs = dict(inputs)
        self.artifact_dir = artifact_dir
        self.xcom_file = xcom_file
        self.xcom_stdout = xcom_stdout

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--inputs", default="{}", help="resolved inputs as JSON (or @file)")
        parser.add_argument("--artifact-root", default="", help="where artifacts are stored")
        parser.add_argument("--xcom-file", default=None, help="write outputs here (KubernetesPodOperator)")
        parser.add_argument("--xcom-stdout", action="store_true", help="print outputs last (DockerOperator)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> AirflowConvention:
        from pipecast.runtime.conventions.base import parse_json_arg

        inputs = parse_json_arg(args.inputs, "--inputs")
        if not isinstance(inputs, dict):
            raise ConventionError("--inputs must be a JSON object")
        root = Path(args.artifact_root or os.path.join(tempfile.gettempdir(), "pipecast-artifacts"))
        run = inputs.pop("-run", {}) if isinstance(inputs.get("-run"), dict) else {}
        folder = root.joinpath(*[_safe(str(run.get(k, ""))) for k in ("dag", "run", "task")])
        return cls(
            inputs,
            folder,
            xcom_file=Path(args.xcom_file) if args.xcom_file else None,
            xcom_stdout=args.xcom_stdout,
        )

    def stage_inputs(self, spec: StepSpec, workdir: Path) -> dict[str, Any]:
        from pipecast.passes.imports import is_local

        values = {**self.literal_inputs(spec), **self.inputs}
        missing = sorted(set(spec.inputs) - set(values))
        if missing:
            raise ConventionError(f"missing inputs: {', '.join(missing)}")
        for name in spec.inputs:
            if is_artifact_input(spec, name):
                for path in values[name] if isinstance(values[name], list) else [values[name]]:
                    if path is not None and is_local(str(path)) and not Path(str(path)).exists():
                        raise ConventionError(
                            f"artifact input {name!r} is not at {path} (is artifact_root shared by every worker?)"
                        )
        return values

    def output_paths(self, spec: StepSpec, workdir: Path) -> dict[str, Path] | None:
        from pipecast.runtime._values import is_artifact

        return {name: self.artifact_dir / name for name, t in spec.outputs.items() if is_artifact(t)}

    def write_outputs(self, spec: StepSpec, result: AttemptResult, workdir: Path) -> Any:
        outputs = {name: result.outputs.get(name) for name in sorted(spec.outputs)}
        # Output names in order; a dict value keeps its stored key order (SPEC §22).
        text = json.dumps(outputs)
        if self.xcom_file is not None:
            self.xcom_file.parent.mkdir(parents=True, exist_ok=True)
            self.xcom_file.write_text(text, encoding="utf-8")
        if self.xcom_stdout:
            print(text, flush=True)
        return outputs


def _safe(text: str) -> str:
    """A path segment from a run id or task id (``:``/``+`` and separators replaced)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "_"


# ---------------------------------------------------------------------------- resolving


class _Resolver:
    """Resolves binding documents against one task instance's context."""

    def __init__(self, ti: Any, params: Mapping[str, Any], run_id: str, dag_id: str) -> None:
        self.ti = ti
        self.params = params
        self.run_id = run_id
        self.dag_id = dag_id
        self.index = getattr(ti, "map_index", -1)
        if self.index is None:
            self.index = -1
        self._items: dict[str, list[Any]] = {}
        self._positions: dict[str, dict[tuple[int, ...], int]] = {}
        #: Folders a relative local artifact path is looked up in (:func:`local_artifact`).
        self.search: list[str] = []
        #: A group's finally (SPEC §18): ``{"tasks": [...], "same_index": bool}`` of its group.
        self.group: Mapping[str, Any] | None = None

    def pull(self, task_id: str, map_index: int | None) -> Any:
        if map_index is None or map_index < 0:
            return self.ti.xcom_pull(task_ids=task_id, map_indexes=-1)
        return self.ti.xcom_pull(task_ids=task_id, map_indexes=map_index)

    def items_of(self, task_id: str) -> list[Any]:
        if task_id not in self._items:
            value = self.pull(task_id, None)
            self._items[task_id] = list(value or [])
        return self._items[task_id]

    def binding(self, doc: Mapping[str, Any], index: Any) -> Any:
        from pipecast.runtime.spec_text import render_template

        if "value" in doc:
            return doc["value"]
        refs = doc["refs"]
        return render_template(doc["template"], lambda ref: self.source(refs[ref.path], index))

    def bound(self, doc: Mapping[str, Any], index: Any) -> bool:
        """Whether every value a binding reads exists (its producing task ran and pushed it)."""
        return "value" in doc or all(self.present(src, index) for src in doc["refs"].values())

    def present(self, src: Mapping[str, Any], index: Any) -> bool:
        """Whether a source's value exists: a step's output its task pushed, or a group output
        whose branch's producers did (SPEC §22 skipped producers)."""
        if "xcom" in src:
            value = self.xcom(src, index)
            if src.get("json") and isinstance(value, str):
                value = json.loads(value)
            value = decode_stock(value)
            return isinstance(value, dict) and src["output"] in value
        if "bind" in src:
            return self.bound(src["bind"], index)
        if "switch" in src:
            branch = src["then"] if self.holds(src["switch"], index) else src.get("else")
            return branch is not None and self.bound(branch, index)
        return True

    def source(self, src: Mapping[str, Any], index: Any) -> Any:
        if "param" in src:
            value = self.params[src["param"]]
            return local_artifact(value, self.search) if src.get("artifact") else value
        if "pipeline" in src:
            field = src["pipeline"]
            if field == "name":
                return self.dag_id
            if field == "run_id":
                return self.run_id
            return self.status()
        if "group" in src:
            return (
                "failed" if any(state == "failed" for state in self.group_states().values()) else "succeeded"
            )
        if "loop" in src:
            item = self.items_of(src["loop"])[index]
            if "level" in src:  # a nested loop's items are paths (see :func:`items`)
                item = item["items"][src["level"]]
            return item if src.get("key") is None else item[src["key"]]
        if "xcom" in src:
            value = self.xcom(src, index)
            if src.get("json") and isinstance(value, str):
                value = json.loads(value)
            value = decode_stock(value)
            if value is None or "metric" not in src:
                return None if value is None else value.get(src["output"])
            return self.metric(src, index, value.get(src["output"]))
        if "bind" in src:  # a plain group's output built from several values (SPEC §17)
            return self.binding(src["bind"], index)
        if "switch" in src:
            branch = src["then"] if self.holds(src["switch"], index) else src.get("else")
            return None if branch is None else self.binding(branch, index)
        raise ConventionError(f"unknown binding source {sorted(src)}")

    def metric(self, src: Mapping[str, Any], index: int, path: Any) -> float:
        """One number of a Metrics output (SPEC §15): from what the producing task published
        to XCom (:func:`run_step`), else from the file (a container step's, under
        artifact_root). A missing name fails the reader, naming what there is."""
        from pipecast.metrics import MetricsError, metric_value

        mapped = "mapped" in src or "via" in src
        where = self.position(src, index) if mapped and not src.get("row") else -1
        meta = self.ti.xcom_pull(task_ids=src["xcom"], key=META_KEY, map_indexes=where)
        found = (meta or {}).get("metrics", {}).get(src["output"]) if isinstance(meta, dict) else None
        name = src["metric"]
        if isinstance(found, dict):
            if name not in found:
                have = ", ".join(sorted(found)) or "none"
                raise ConventionError(
                    f"output {src['output']!r} of {src['xcom']!r} has no metric {name!r} (it has: {have})"
                )
            return float(found[name])
        try:
            return metric_value(str(path), name)
        except MetricsError as exc:
            raise ConventionError(f"output {src['output']!r} of {src['xcom']!r}: {exc}") from None

    def position(self, src: Mapping[str, Any], index: int) -> int:
        """The map index a source names for the reader at ``index``: its own (``mapped``) or,
        for a task of a loop around the reader's (``via``), the position of the first
        ``depth`` levels of the reader's item path among that loop's items (``of``)."""
        if "via" not in src:
            return index
        path = tuple(self.items_of(src["via"])[index]["ix"][: src["depth"]])
        if src["depth"] == 1:
            return path[0]
        if src["of"] not in self._positions:
            self._positions[src["of"]] = {
                tuple(item["ix"]): m for m, item in enumerate(self.items_of(src["of"]))
            }
        return self._positions[src["of"]][path]

    def xcom(self, src: Mapping[str, Any], index: int) -> Any:
        """The outputs dict a source reads: a task's XCom, or one row of a loop's ``-done``."""
        mapped = "mapped" in src or "via" in src
        if not src.get("row"):
            return self.pull(src["xcom"], self.position(src, index) if mapped else None)
        done = self.pull(src["xcom"], None)
        if not isinstance(done, dict):
            return None
        return done["-rows"][self.position(src, index)]["outputs"]

    def ran(self, doc: Mapping[str, Any], index: int) -> bool:
        """Whether every task of this loop a binding reads pushed its XCom for item ``index``."""
        return all(
            self.pull(src["xcom"], index) is not None
            for src in doc.get("refs", {}).values()
            if "xcom" in src and src.get("mapped") and not src.get("row")
        )

    def holds(self, doc: Mapping[str, Any], index: int) -> bool:
        """Evaluate a ``when`` condition document (SPEC §5)."""
        from pipecast.runtime.spec_text import evaluate_text_condition

        refs = doc["refs"]
        return bool(evaluate_text_condition(doc["when"], lambda ref: self.source(refs[ref.path], index)))

    def items_done(self, group: str, tasks: list[str], upto: int) -> dict[int, bool]:
        """Per map index below ``upto`` of mapped task group ``group`` in this run: whether
        every task of ``tasks`` (the task ids the slot waits for: the body's steps and nested
        ``when`` groups' conditions and steps, see ``pipecast_airflow.lowering``) reached a
        state of :data:`DONE_STATES` for that item.

        A task not expanded yet has one instance (map index -1) for every item: an item whose
        instance of some task does not exist yet is not done, unless that unexpanded instance
        already ended for all items (e.g. ``upstream_failed`` as a whole)."""
        states = {key: str(getattr(s, "value", s)) for key, s in self.task_states(group).items()}
        done: dict[int, bool] = {}
        for m in range(upto):
            done[m] = all(states.get(f"{task}_{m}", states.get(task, "")) in DONE_STATES for task in tasks)
        return done

    def task_states(self, group: str | None = None) -> dict[str, Any]:
        """The states of this run's task instances, keyed ``task_id`` or ``task_id_<map index>``."""
        getter = getattr(type(self.ti), "get_task_states", None)
        if getter is not None:  # Airflow 3: through the execution API
            found = getter(dag_id=self.dag_id, run_ids=[self.run_id], task_group_id=group)
            return dict(found.get(self.run_id, {}))
        states: dict[str, Any] = {}  # Airflow 2: the task instance can read its run from the database
        for ti in self.ti.get_dagrun().get_task_instances():
            states[ti.task_id if ti.map_index < 0 else f"{ti.task_id}_{ti.map_index}"] = ti.state
        return states

    def group_instances(self) -> dict[str, tuple[str, int, str]]:
        """Each task instance of this finally's group (of this map index when the group is
        inside a loop): ``key -> (task id, map index, state)``."""
        group = self.group or {}
        tasks = set(group.get("tasks", []))
        out: dict[str, tuple[str, int, str]] = {}
        for key, state in self.task_states().items():
            task, index = key, -1
            if key not in tasks:
                task, _, suffix = key.rpartition("_")
                if task not in tasks or not suffix.isdigit():
                    continue
                index = int(suffix)
                if group.get("same_index") and index != self.index:
                    continue
            elif group.get("same_index"):
                # Not expanded yet: Airflow evaluates an unexpanded task's trigger rule over every
                # map index of its upstream (a join is upstream_failed as a whole when another item
                # failed), so its state says nothing about this item; this item's own tasks do.
                continue
            out[key] = (task, index, str(getattr(state, "value", state)))
        return out

    def group_states(self) -> dict[str, str]:
        """SPEC §18: each task instance of this finally's group (of this map index when the
        group is inside a loop) as ``ran`` / ``failed`` (it failed, its upstream failed, or it
        was stopped at start because the run had failed: SPEC §10) / ``skipped``."""
        out: dict[str, str] = {}
        for key, (task, index, value) in self.group_instances().items():
            if value in FAILED_STATES:
                out[key] = "failed"
            elif value == "skipped":
                out[key] = "failed" if self.stopped(task, index) else "skipped"
            else:
                out[key] = "ran"
        return out

    def stopped(self, task: str, index: int) -> bool:
        """Whether a skipped task instance was stopped at start because the run had failed."""
        meta = self.ti.xcom_pull(task_ids=task, key=META_KEY, map_indexes=index)
        return isinstance(meta, dict) and meta.get("status") == "not_run"

    def status(self) -> str:
        """``succeeded`` unless a task of this run failed (read from the run's task states)."""
        own = getattr(self.ti, "task_id", None)
        for key, state in self.task_states().items():
            if key == own:
                continue
            if str(getattr(state, "value", state)) in FAILED_STATES:
                return "failed"
        return "succeeded"


def _skip(reason: str) -> Exception:
    """Airflow's exception that ends a task as ``skipped`` (Airflow 3's task SDK, or Airflow 2)."""
    try:
        from airflow.sdk.exceptions import AirflowSkipException
    except ImportError:  # Airflow 2
        from airflow.exceptions import AirflowSkipException  # type: ignore[no-redef]
    return AirflowSkipException(reason)


def _resolver(context: Mapping[str, Any], doc: Mapping[str, Any] | None = None) -> _Resolver:
    """The resolver of a task instance; skips the task when its branch guard does not hold."""
    ti = context["ti"]
    res = _Resolver(ti, context.get("params") or {}, context["run_id"], ti.dag_id)
    guard = (doc or {}).get("guard")
    if guard is not None and res.holds(guard, res.index) != guard["expect"]:
        raise _skip("the branch of this step was not chosen")
    return res


def local_artifact(uri: Any, search: list[str]) -> Any:
    """An artifact URI as a step reads it (SPEC §14; docs/semantics.md): Airflow is self-hosted,
    so a local path is read on the worker: an absolute path or ``file://`` URI as it is, a
    relative path from the first folder of ``search`` (the project folder, then
    ``$PIPECAST_PYTHON_PATH``: where the pipeline's own code is) that holds it. Another URI
    (``s3://``...) is handed over unchanged."""
    from pipecast.passes.imports import is_local, local_path

    if not isinstance(uri, str) or not is_local(uri):
        return uri
    path = local_path(uri, Path.cwd())
    if Path(uri).is_absolute() or uri.startswith("file://"):
        if not path.exists():
            raise ConventionError(f"artifact {uri!r}: {path} does not exist on this worker")
        return str(path)
    for folder in search:
        candidate = Path(folder) / uri
        if candidate.exists():
            return str(candidate)
    raise ConventionError(
        f"artifact {uri!r}: no such path in the project folder on this worker (looked in: "
        f"{', '.join(search) or 'nothing'}); deploy it with the pipeline's code, or use an absolute "
        "path or a URI"
    )


def import_artifact(doc: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """An import step (SPEC §14): no code runs; the artifact is the resolved URI (a local path
    must exist on this worker). Its metadata goes to the run record through XCom."""
    res = _resolver(context, doc)
    _stop_after_failure(res, context)
    res.search = python_path(doc, context)
    uri = res.binding(doc["uri"], res.index)
    value = local_artifact(uri, res.search)
    # No code ran: no attempt (as the simulator records an import).
    meta: dict[str, Any] = {"attempts": 0}
    if doc.get("metadata"):
        meta["metadata"] = {"artifact": doc["metadata"]}
    _push_meta(res.ti, meta)
    return {"artifact": value}


def _inputs(doc: Mapping[str, Any], res: _Resolver) -> dict[str, Any]:
    return {name: res.binding(b, res.index) for name, b in doc.get("inputs", {}).items()}


def _artifact_root(doc: Mapping[str, Any]) -> Path:
    root = doc.get("artifact_root") or os.path.join(
        os.environ.get("AIRFLOW_HOME", tempfile.gettempdir()), "pipecast-artifacts"
    )
    return Path(root)


def python_path(doc: Mapping[str, Any], context: Mapping[str, Any]) -> list[str]:
    """Folders first on ``sys.path`` of a python step: the project folder, then the others.

    Relative entries (the ``project_dir`` setting defaults to ``.``) are resolved against the
    folder of the DAG file (``dag.fileloc``), where the team deployed it; then come the
    folders of ``$PIPECAST_PYTHON_PATH`` (a deployment-wide override, as for the runtime CLI).
    """
    dag = context.get("dag")
    fileloc = getattr(dag, "fileloc", None)
    base = Path(fileloc).resolve().parent if fileloc else Path.cwd()
    out = [str(base / entry) if not os.path.isabs(entry) else entry for entry in doc.get("python_path", [])]
    out += [p for p in os.environ.get("PIPECAST_PYTHON_PATH", "").split(os.pathsep) if p]
    return [os.path.normpath(p) for p in dict.fromkeys(out)]


def run_step(doc: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """Run one task step on this worker and return its outputs (the task's XCom)."""
    from pipecast.runtime.core import StepFailed
    from pipecast.runtime.core import run_step as core_run

    res = _resolver(context, doc)
    _stop_after_failure(res, context)
    _group_started(res, doc)
    _wait_for_slot(res, doc)
    res.search = python_path(doc, context)
    spec = StepSpec.model_validate(doc["spec"])
    if spec.cache is not None and not spec.cache.store:
        store = _artifact_root(doc).joinpath(".pipecast-cache", _safe(res.dag_id))
        spec = spec.model_copy(update={"cache": spec.cache.model_copy(update={"store": str(store)})})
    task = res.ti.task_id + (f"_{res.index}" if res.index >= 0 else "")
    folder = _artifact_root(doc).joinpath(_safe(res.dag_id), _safe(res.run_id), _safe(task))
    conv = AirflowConvention(_inputs(doc, res), folder)
    try:
        outcome = core_run(
            spec,
            conv,
            python_path=python_path(doc, context),
            containers=doc.get("containers", "host"),
        )
    except StepFailed as exc:
        # The runtime already retried (SPEC §6 timing): the task fails once, for good.
        _push_meta(res.ti, {"attempts": exc.attempts or 1})
        raise RuntimeError(exc.summary) from None
    meta: dict[str, Any] = {"attempts": outcome.attempts, **({"status": "cached"} if outcome.cached else {})}
    meta.update(_published_metrics(spec, outcome.published))
    _push_meta(res.ti, meta)
    return dict(outcome.published)


def _published_metrics(spec: StepSpec, published: Mapping[str, Any]) -> dict[str, Any]:
    """SPEC §15: each Metrics output's numbers (``metrics``) and each artifact's metadata
    (``metadata``), for the run record and for readers of ``steps.S.outputs.O.NAME``."""
    from pipecast import metrics
    from pipecast.runtime._values import is_artifact

    found: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for name, type_name in spec.outputs.items():
        path = published.get(name)
        if not (isinstance(path, str) and is_artifact(type_name)):
            continue
        if type_name == "Metrics":
            try:
                found[name] = metrics.read(path)
            except metrics.MetricsError:
                found[name] = {}
        data = metrics.metadata(path)
        if data:
            meta[name] = data
    return {**({"metrics": found} if found else {}), **({"metadata": meta} if meta else {})}


#: Task states of an instance that started (its callable ran, or runs).
STARTED_STATES = frozenset({"success", "failed", "running", "up_for_retry", "restarting"})


def _group_started(res: _Resolver, doc: Mapping[str, Any]) -> None:
    """A group's finally (SPEC §18) runs once its group started. After a failure (SPEC §10) a
    group none of whose task instances (of this item, in a loop) started never ran: its
    steps were stopped, skipped after a stopped upstream, or never expanded; it skips its
    finally (the simulator has no entry for it). A condition or helper task that ran counts:
    the group had started when its condition was evaluated (docs/semantics.md)."""
    if doc.get("group") is None:
        return
    res.group = doc["group"]
    if res.status() != "failed":
        return
    if any(value in STARTED_STATES for _, _, value in res.group_instances().values()):
        return
    _push_meta(res.ti, {"status": "group_not_run"})
    raise _skip("its group never started: the run had failed (SPEC §10, §18)")


def _stop_after_failure(res: _Resolver, context: Mapping[str, Any]) -> None:
    """SPEC §10: once a task of the run has failed, no step starts (``finally`` steps, whose
    trigger rule is ``all_done``, excepted). Airflow still schedules unstarted mapped items
    and tasks of other branches; this check at task start stops them before any user code
    runs: the task is skipped and reports ``status: not_run`` (docs/semantics.md). The DAG's
    ``fail_fast`` would do it natively but refuses ``all_done`` finally and the ``when`` joins.
    """
    task = context.get("task")
    if str(getattr(task, "trigger_rule", "all_success")).rsplit(".", 1)[-1].lower() == "all_done":
        return
    if res.status() != "failed":
        return
    _push_meta(res.ti, {"status": "not_run"})
    raise _skip("a task of this run failed before this step started (SPEC §10)")


#: Task states an item's task does not leave (an item whose tasks all reached one is done).
DONE_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
#: How long an item waiting for a ``parallelism`` slot stays ``up_for_reschedule``.
SLOT_POLL_SECONDS = 1.0


def slot_free(index: int, bound: int, done: Mapping[int, bool]) -> bool:
    """Whether item ``index`` of a loop with ``parallelism: bound`` may start (SPEC §22).

    In-order admission: an item starts only while fewer than ``bound`` of the items before it
    are not done (``done[m]``; an item missing from ``done`` counts as not done). No two items
    need an atomic update to agree: "done" never reverts and the rule reads only lower items,
    so of any set of items in progress at once the highest one started while all the others
    were not done, hence the set has at most ``bound`` members; the lowest item that is not
    done always may start, so the loop never deadlocks.
    """
    if index < bound:
        return True
    return sum(1 for m in range(index) if not done.get(m, False)) < bound


def _wait_for_slot(res: _Resolver, doc: Mapping[str, Any]) -> None:
    """SPEC §22 ``parallelism``: the first task of a loop item waits (``up_for_reschedule``,
    polled every :data:`SLOT_POLL_SECONDS`) until :func:`slot_free`, reading the states of the
    group's tasks in this dag run. Per-task limits (``max_active_tis_per_dagrun``) bound one
    task's instances, not an item spanning several tasks, and a pool is shared by every run
    (https://airflow.apache.org/docs/apache-airflow/stable/core-concepts/pools.html)."""
    slot = doc.get("slot")
    if slot is None or res.index < 0 or res.index < slot["bound"]:
        return
    if slot_free(res.index, slot["bound"], res.items_done(slot["group"], slot["tasks"], res.index)):
        return
    from datetime import UTC, datetime, timedelta

    try:
        from airflow.sdk.exceptions import AirflowRescheduleException
    except ImportError:  # Airflow 2
        from airflow.exceptions import AirflowRescheduleException  # type: ignore[no-redef]
    # https://airflow.apache.org/docs/apache-airflow/stable/core-concepts/sensors.html (reschedule)
    raise AirflowRescheduleException(datetime.now(UTC) + timedelta(seconds=SLOT_POLL_SECONDS))


#: XCom key of what the runtime reports besides outputs: ``{"attempts": n}`` (the runtime
#: retries, so Airflow's try number stays 1) and ``"status": "cached"`` on a cache hit.
META_KEY = "pipecast"


def _push_meta(ti: Any, meta: dict[str, Any]) -> None:
    push = getattr(ti, "xcom_push", None)
    if callable(push):
        push(key=META_KEY, value=meta)


def branch(doc: Mapping[str, Any], context: Mapping[str, Any]) -> list[str]:
    """Evaluate a ``when`` condition: the entry tasks of the branch to run, and the join."""
    res = _resolver(context, doc)
    _wait_for_slot(res, doc)
    chosen = list(doc["then"] if res.holds(doc, res.index) else doc["else"])
    return [*chosen, doc["join"]]


def items(doc: Mapping[str, Any], context: Mapping[str, Any]) -> list[Any]:
    """The list a ``for_each`` group's mapped task groups expand over.

    A loop inside a loop (``parent``) resolves its list once per item of the loop around it
    (a binding read at that item's map index) and returns the flattened item paths, in item
    order: ``{"ix": [i, j], "items": [x, y]}`` (docs/targets/airflow.md, "Nested for_each").
    """
    res = _resolver(context, doc)
    parent = doc.get("parent")
    if parent is None:
        if not res.bound(doc["for_each"], res.index):
            # SPEC §22: a for_each over the output of a skipped step is skipped with it (its
            # task groups and -done task are skipped after this task).
            raise _skip("the list of this for_each comes from a skipped step")
        value = res.binding(doc["for_each"], res.index)
        if not isinstance(value, list):
            raise ConventionError(f"for_each needs a list, got {type(value).__name__}")
    else:
        value = []
        for m, outer in enumerate(res.items_of(parent["items"])):
            ix, chosen = (outer["ix"], outer["items"]) if parent["paths"] else ([m], [outer])
            inner = res.binding(doc["for_each"], m)
            if not isinstance(inner, list):
                raise ConventionError(f"for_each needs a list, got {type(inner).__name__} (item {ix})")
            value += [{"ix": [*ix, j], "items": [*chosen, item]} for j, item in enumerate(inner)]
    if len(value) > MAX_MAP_LENGTH:
        raise ConventionError(
            f"for_each has {len(value)} items; Airflow maps at most {MAX_MAP_LENGTH} ([core] max_map_length)"
        )
    return value


def done(doc: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """The last task of a ``for_each`` group: its outputs, collected in item order from the
    items where the step ran (docs/semantics.md). The task's XCom, which readers and the run
    record take as the group's; for a loop inside a loop, ``{"-rows": [{"ix", "outputs"}]}``,
    one row per item of the loop around it (the regrouping of the nested outputs)."""
    res = _resolver(context)
    found = res.items_of(doc["items"])

    def collect(picked: list[int]) -> dict[str, Any]:
        return {
            name: [res.binding(each, m) for m in picked if res.ran(each, m)]
            for name, each in doc["outputs"].items()
        }

    parent = doc.get("parent")
    if parent is None:
        return collect(list(range(len(found))))
    rows = []
    for m, outer in enumerate(res.items_of(parent["items"])):
        ix = outer["ix"] if parent["paths"] else [m]
        rows.append(
            {"ix": ix, "outputs": collect([k for k, item in enumerate(found) if item["ix"][:-1] == ix])}
        )
    return {"-rows": rows}


def status(doc: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    """The last task of a pipeline with ``finally``: fails the run when any task failed."""
    state = _resolver(context).status()
    if state != "succeeded":
        raise RuntimeError("pipeline failed: a step failed (see the failed tasks of this run)")
    return state


def outputs(doc: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """The pipeline outputs; one that reads an output a skipped step did not produce is left
    out, not ``None`` (docs/semantics.md, "Skipped producers")."""
    res = _resolver(context)
    return {name: res.binding(b, -1) for name, b in doc["outputs"].items() if res.bound(b, -1)}


def spec_arg(doc: Mapping[str, Any]) -> str:
    """The ``--spec`` argument of a container task (a Jinja macro's result is not re-rendered)."""
    return StepSpec.model_validate(doc["spec"]).to_arg()


def decode_stock(value: Any) -> Any:
    """The outputs of a container step that ran its image unchanged (SPEC §21): its ``sh``
    wrapper hands each output over as ``[type, base64 of the file's text]`` under ``-stock``
    (pipecast_airflow.stock_images); anything else is returned as it is."""
    if not (isinstance(value, dict) and isinstance(value.get("-stock"), dict)):
        return value
    import base64

    from pipecast.runtime._values import from_text, is_artifact

    out = {}
    for name, (type_name, data) in value["-stock"].items():
        text = base64.b64decode(data).decode("utf-8")
        out[name] = text if is_artifact(type_name) else from_text(name, type_name, text)
    return out


def arg_text(doc: Mapping[str, Any], name: str, ti: Any, params: Mapping[str, Any], run_id: str) -> str:
    """One input of a stock container command as text (SPEC §3.1): a string raw, other values as
    JSON, an artifact as its path (a Jinja macro of the DAG; its result is not rendered again)."""
    from pipecast.runtime._values import to_text

    res = _Resolver(ti, params, run_id, ti.dag_id)
    return to_text(res.binding(doc["inputs"][name], res.index))


def out_path(doc: Mapping[str, Any], name: str, ti: Any, run_id: str) -> str:
    """Where a stock container command writes artifact output ``name``: the folder the runtime
    would use (:meth:`AirflowConvention.from_args`), under ``artifact_root``."""
    index = getattr(ti, "map_index", -1)
    task = ti.task_id + (f"_{index}" if index is not None and index >= 0 else "")
    parts = [_safe(str(p)) for p in (ti.dag_id, run_id, task)]
    return str(_artifact_root(doc).joinpath(*parts, name))


def inputs_arg(doc: Mapping[str, Any], ti: Any, params: Mapping[str, Any], run_id: str) -> str:
    """The ``--inputs`` argument of a container task: resolved inputs plus where to store artifacts."""
    res = _Resolver(ti, params, run_id, ti.dag_id)
    values = _inputs(doc, res)
    task = ti.task_id + (f"_{res.index}" if res.index >= 0 else "")
    values["-run"] = {"dag": res.dag_id, "run": run_id, "task": task}
    # Input names in order; a dict value keeps its stored key order (SPEC §22).
    return json.dumps(dict(sorted(values.items())))
