"""Deploy with ``kfp.Client`` (the KFP v2beta1 REST API): upload, schedule, run and follow.

* **Upload.** A pipeline of that name that does not exist yet is uploaded
  (``POST /apis/v2beta1/pipelines/upload``); one that exists gets a new version
  (``POST /apis/v2beta1/pipelines/upload_version``) named ``<pipeline>-<sha256 of the spec>``,
  so deploying unchanged output twice reuses the version instead of failing on its name.
* **Schedule.** ``schedule:`` becomes a recurring run (``POST /apis/v2beta1/recurringruns``) in
  the settings' experiment on that version, with KFP's six-field cron
  (:mod:`pipecast_kubeflow.schedule`); a recurring run of the same name from an earlier
  deploy is deleted first, so there is always exactly one.
* **Run.** ``run=True`` starts a run (``POST /apis/v2beta1/runs``) with the parameters,
  follows it (``GET /apis/v2beta1/runs/{id}``) until it ends and returns a SPEC §12 run
  record built from the run's task details.

API reference: https://www.kubeflow.org/docs/components/pipelines/reference/api/kubeflow-pipeline-api-spec/
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipecast_vertex.wire import wire_values

from pipecast.backend import refuse_placeholders, require_settings
from pipecast.diagnostics import Diagnostic, UserError
from pipecast.ir.models import Pipeline
from pipecast.passes.analysis import PipelineIndex
from pipecast_kubeflow.schedule import kfp_cron
from pipecast_kubeflow.settings import KubeflowSettings

#: KFP run and task states → SPEC §12 statuses (v2beta1 ``RuntimeState``).
STATES = {
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "SKIPPED": "skipped",
    "CACHED": "cached",
    "CANCELED": "failed",
    "CANCELING": "failed",
}
_ITERATION = re.compile(r"-iteration-(\d+)$")


def client_for(settings: KubeflowSettings) -> Any:
    """A ``kfp.Client`` for the settings' host and namespace."""
    import kfp

    require_settings("kubeflow", settings, ("host",))
    # kfp.Client warns on every construction that it needs KFP >= 2.0.0-beta.2 and prints links.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        if settings.namespace:
            return kfp.Client(host=settings.host, namespace=settings.namespace)
        return kfp.Client(host=settings.host)


def _filter(key: str, value: str) -> str:
    """A v2beta1 list filter ``key == value`` (the form kfp.Client.get_pipeline_id sends)."""
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "stringValue": value}]})


def upload(
    client: Any, pipeline: Pipeline, name: str, text: str, settings: KubeflowSettings
) -> tuple[str, str]:
    """Upload the spec as a pipeline, or as a new version of the existing one; (pipeline, version) ids."""
    version_name = f"{pipeline.name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        path = Path(tmp) / name
        path.write_text(text, encoding="utf-8")
        pipeline_id = client.get_pipeline_id(pipeline.name)
        if pipeline_id is None:
            created = client.upload_pipeline(
                str(path),
                pipeline_name=pipeline.name,
                description=pipeline.description or None,
                namespace=settings.namespace,
            )
            pipeline_id = created.pipeline_id
            versions = client.list_pipeline_versions(pipeline_id, page_size=1, sort_by="created_at desc")
            return pipeline_id, versions.pipeline_versions[0].pipeline_version_id
        same = client.list_pipeline_versions(pipeline_id, filter=_filter("display_name", version_name))
        if same.pipeline_versions:
            return pipeline_id, same.pipeline_versions[0].pipeline_version_id
        version = client.upload_pipeline_version(
            str(path), pipeline_version_name=version_name, pipeline_id=pipeline_id
        )
        return pipeline_id, version.pipeline_version_id


def schedule(
    client: Any,
    pipeline: Pipeline,
    settings: KubeflowSettings,
    experiment_id: str,
    pipeline_id: str,
    version_id: str,
) -> str:
    """Create the recurring run (replacing the one an earlier deploy made); its id."""
    assert pipeline.schedule is not None
    name = f"{pipeline.name}-schedule"
    with contextlib.redirect_stdout(io.StringIO()):
        old = client.list_recurring_runs(experiment_id=experiment_id, filter=_filter("display_name", name))
        for existing in old.recurring_runs or []:
            client.delete_recurring_run(existing.recurring_run_id)
        created = client.create_recurring_run(
            experiment_id,
            name,
            description=f"cron {pipeline.schedule.cron!r} in {pipeline.schedule.timezone} (pipecast)",
            cron_expression=kfp_cron(pipeline.schedule.cron),
            max_concurrency=1,
            no_catchup=True,
            params=wire_values(pipeline, {k: p.default for k, p in pipeline.params.items() if p.has_default}),
            pipeline_id=pipeline_id,
            version_id=version_id,
            enabled=True,
            enable_caching=settings.enable_caching,
            service_account=settings.service_account,
        )
    return str(created.recurring_run_id)


def deploy(
    pipeline: Pipeline,
    files: Mapping[str, str],
    settings: KubeflowSettings,
    *,
    run: bool = False,
    params: Mapping[str, Any] | None = None,
    client: Any = None,
    timeout: float = 24 * 3600,
    **_: Any,
) -> dict[str, Any]:
    """Upload, schedule and (with ``run``) run; what was created, and the run record."""
    name = f"{pipeline.name}.yaml"
    text = files[name]
    refuse_placeholders({name: text})
    with _api_errors(settings):
        return _deploy(pipeline, name, text, settings, run, params, client, timeout)


@contextlib.contextmanager
def _api_errors(settings: KubeflowSettings) -> Iterator[None]:
    """An unreachable API or a refused request is the user's to fix (host, auth, namespace)."""
    from kfp_server_api.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        yield
    except ApiException as exc:
        body = str(exc.body or "").strip().splitlines()
        raise UserError(
            Diagnostic(
                f"the KFP API at {settings.host} refused a request: {exc.status} {exc.reason}"
                + (f": {body[0][:300]}" if body else ""),
                hint="check host, namespace and your access to the Kubeflow profile",
                code="deploy-api",
            )
        ) from None
    except HTTPError as exc:
        raise UserError(
            Diagnostic(
                f"cannot reach the KFP API at {settings.host}: {type(exc).__name__}",
                hint="check the host setting (for a port-forward: kubectl port-forward -n kubeflow "
                "svc/ml-pipeline-ui 8080:80, then host: http://localhost:8080)",
                code="deploy-api",
            )
        ) from None


def _deploy(
    pipeline: Pipeline,
    name: str,
    text: str,
    settings: KubeflowSettings,
    run: bool,
    params: Mapping[str, Any] | None,
    client: Any,
    timeout: float,
) -> dict[str, Any]:
    client = client or client_for(settings)
    pipeline_id, version_id = upload(client, pipeline, name, text, settings)
    with contextlib.redirect_stdout(io.StringIO()):
        experiment = client.create_experiment(settings.experiment, namespace=settings.namespace)
    result: dict[str, Any] = {
        "pipeline_id": pipeline_id,
        "version_id": version_id,
        "experiment_id": experiment.experiment_id,
    }
    if pipeline.schedule is not None:
        result["recurring_run_id"] = schedule(
            client, pipeline, settings, experiment.experiment_id, pipeline_id, version_id
        )
    if run:
        result["run"] = run_and_follow(
            client, pipeline, settings, experiment.experiment_id, pipeline_id, version_id, params, timeout
        )
    return result


def run_and_follow(
    client: Any,
    pipeline: Pipeline,
    settings: KubeflowSettings,
    experiment_id: str,
    pipeline_id: str,
    version_id: str,
    params: Mapping[str, Any] | None,
    timeout: float,
) -> dict[str, Any]:
    values = {k: p.default for k, p in pipeline.params.items() if p.has_default}
    values.update(params or {})
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    with contextlib.redirect_stdout(io.StringIO()):
        started = client.run_pipeline(
            experiment_id,
            f"{pipeline.name}-{stamp}",
            params=wire_values(pipeline, values),
            pipeline_id=pipeline_id,
            version_id=version_id,
            pipeline_root=settings.pipeline_root,
            enable_caching=settings.enable_caching,
            service_account=settings.service_account,
        )
    try:
        finished = client.wait_for_run_completion(
            started.run_id, timeout, sleep_duration=settings.poll_interval
        )
    except TimeoutError:
        raise UserError(
            Diagnostic(
                f"kubeflow run {started.run_id} did not end within {timeout:g} s",
                hint="follow it in the KFP UI; the run keeps going",
                code="deploy-timeout",
            )
        ) from None
    return run_record(pipeline, values, finished.to_dict())


def run_record(pipeline: Pipeline, params: Mapping[str, Any], run: Mapping[str, Any]) -> dict[str, Any]:
    """A SPEC §12 run record from a ``V2beta1Run`` (``to_dict()`` form) and its task details.

    A task detail's ``display_name`` is the KFP task name (a step name with ``-`` for ``_``);
    a loop iteration is a task named ``<loop>-iteration-<i>`` (the index of each enclosing
    iteration becomes ``[i]`` in the key). ``attempts`` counts the task's RUNNING states.
    Parameter outputs live in ML Metadata, not in task details, so entries carry no
    ``outputs``; tasks the server does not list (never started) are ``skipped`` in a run that
    succeeded and ``not_run`` in one that failed, and a group's status follows its steps
    (``not_run`` when none of them started).
    """
    from pipecast_vertex.naming import FINALLY_TASK, task_name

    index = PipelineIndex(pipeline)
    steps_by_task = {task_name(node.name): node for node in index.walk()}
    if index.finally_node is not None:
        steps_by_task[FINALLY_TASK] = index.finally_node
    details = (run.get("run_details") or {}).get("task_details") or []
    by_id = {t.get("task_id"): t for t in details}
    status = STATES.get(str(run.get("state") or "").upper(), "failed")
    steps: dict[str, dict[str, Any]] = {}
    for task in sorted(details, key=lambda t: str(t.get("create_time") or "")):
        node = steps_by_task.get(str(task.get("display_name") or ""))
        if node is None or (not node.is_task and node is not index.finally_node):
            continue
        indices: list[str] = []
        parent = by_id.get(task.get("parent_task_id"))
        while parent is not None:
            match = _ITERATION.search(str(parent.get("display_name") or ""))
            if match:
                indices.insert(0, match.group(1))
            parent = by_id.get(parent.get("parent_task_id"))
        key = node.name + "".join(f"[{i}]" for i in indices)
        history = task.get("state_history") or []
        entry: dict[str, Any] = {
            "status": STATES.get(str(task.get("state") or "").upper(), "failed"),
            "attempts": max(1, sum(1 for h in history if str(h.get("state")).upper() == "RUNNING")),
        }
        for field, out in (("start_time", "started"), ("end_time", "ended")):
            if task.get(field):
                entry[out] = _iso(task[field])
        steps[key] = entry
    for node in index.walk():
        if node.is_task and not any(k == node.name or k.startswith(node.name + "[") for k in steps):
            steps[node.name] = {"status": "skipped" if status == "succeeded" else "not_run"}
    for node in index.walk():
        if node.is_group:
            inner = {m.name for m in index.walk(node.body)} | (
                {m.name for m in index.walk(node.else_body)} if node.else_body is not None else set()
            )
            states = [v["status"] for k, v in steps.items() if k.split("[")[0] in inner]
            steps[node.name] = {"status": _group_status(states)}
    record: dict[str, Any] = {
        "pipeline": pipeline.name,
        "run_id": run.get("run_id"),
        "status": status,
        "params": dict(params),
        "outputs": {},
        "steps": dict(sorted(steps.items())),
    }
    for field, out in (("created_at", "started"), ("finished_at", "ended")):
        if run.get(field):
            record[out] = _iso(run[field])
    return record


def _group_status(states: list[str]) -> str:
    """A group's status from its steps' (as the simulator sets it)."""
    if "failed" in states:
        return "failed"
    if any(s in ("succeeded", "cached") for s in states):
        return "succeeded"
    return "not_run" if states and all(s == "not_run" for s in states) else "skipped"


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
