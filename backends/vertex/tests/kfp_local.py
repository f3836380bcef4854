"""Run a compiled PipelineSpec through ``kfp.local`` with the pipecast runtime as the
executor, and turn what happened into a run record (SPEC §12) to compare with expectations.

The container-component check of kfp's subprocess runner is patched (test-only, as kfp's
own tests do); every step then runs its command on this host: python steps
``python -m pipecast.runtime run --convention kfp``, container steps on stock images their own
command (SPEC §21). ``python`` on the PATH is a shim that hands ``-m pipecast.runtime`` to this
interpreter and everything else to a bare venv where pipecast is NOT importable, so a stock
step that secretly needed pipecast fails here. Each runtime attempt appends a line to
``PIPECAST_KFP_TRACE``, and so does each stock task (from kfp.local's own task result); a
step's run-record key is its name plus the ``-iteration-<i>`` folders kfp.local creates for
each enclosing loop.
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
from pipecast.passes.analysis import PipelineIndex
from pipecast.runtime.conventions.kfp import coerce
from tests.fixtures.bare_python import shim_dir

_ITER = re.compile(r"-iteration-(\d+)")


def run_local(
    spec_path: Path,
    params: dict[str, Any],
    work: Path,
    monkeypatch: pytest.MonkeyPatch,
    python_path: list[Path],
    env: dict[str, str] | None = None,
    index: PipelineIndex | None = None,
) -> dict[str, Any]:
    """Execute the spec; return ``{"status", "steps", "outputs"}``.

    ``index`` (the compiled pipeline's) lets the record decode the JSON text a stock step's
    list/dict outputs travel as, as the runtime of the step that reads them does.
    """
    import kfp.local
    from kfp import components
    from kfp.local import subprocess_task_handler

    monkeypatch.setattr(
        subprocess_task_handler.SubprocessTaskHandler,
        "validate_not_container_component",
        lambda self, full_command: None,
    )
    trace = work / "trace.jsonl"
    _trace_stock_tasks(monkeypatch, trace, index)
    bin_dir = str(Path(sys.executable).parent)
    path = os.pathsep.join([str(shim_dir()), bin_dir, os.environ.get("PATH", "")])
    monkeypatch.setenv("PATH", path)
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


def _trace_stock_tasks(monkeypatch: pytest.MonkeyPatch, trace: Path, index: PipelineIndex | None) -> None:
    """Append a trace line for each task kfp.local runs that is not the pipecast runtime."""
    from kfp.local import executor_input_utils, status, task_dispatcher

    original = task_dispatcher.run_single_task_implementation

    def traced(*args: Any, **kwargs: Any) -> Any:
        bound = dict(
            zip(
                [
                    "pipeline_resource_name",
                    "component_name",
                    "component_spec",
                    "executor_spec",
                    "arguments",
                    "pipeline_root",
                ],
                args,
                strict=False,
            )
        )
        bound.update(kwargs)
        container = bound["executor_spec"].container
        if "pipecast.runtime" in [*container.command, *container.args]:
            return original(*args, **kwargs)
        task = executor_input_utils.get_local_task_resource_name(bound["component_name"])
        task_dir = executor_input_utils.construct_local_task_root(
            pipeline_root=bound["pipeline_root"],
            pipeline_resource_name=bound["pipeline_resource_name"],
            task_resource_name=task,
        )
        # The KFP launcher creates the output folders before a container component runs
        # (prepareOutputFolders in backend/src/v2/component/launcher_v2.go); kfp.local's
        # subprocess runner, made for python components, does not.
        os.makedirs(task_dir, exist_ok=True)
        try:
            outputs, state = original(*args, **kwargs)
        except RuntimeError:
            outputs, state = {}, status.Status.FAILURE
            raise_after = True
        else:
            raise_after = False
        if state == status.Status.SUCCESS:
            outputs = {**_declared_artifacts(bound, task_dir), **(outputs or {})}
        step = task.replace("-", "_")  # step names have no '-' (SPEC §3)
        types = index.node(step).task.outputs if index is not None else {}
        line = {
            "step": step,
            "task_dir": task_dir,
            "status": "succeeded" if state == status.Status.SUCCESS else "failed",
            "outputs": {k: coerce(types.get(k, "str"), _plain(v)) for k, v in (outputs or {}).items()},
        }
        with open(trace, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, sort_keys=True) + "\n")
        if raise_after:
            raise
        return outputs, state

    monkeypatch.setattr(task_dispatcher, "run_single_task_implementation", traced)


def _declared_artifacts(bound: dict[str, Any], task_dir: str) -> dict[str, Any]:
    """Every declared output artifact of a container task, at its local path: the KFP launcher
    registers them from the executor input (uploadOutputArtifacts in launcher_v2.go), while
    kfp.local only reads the executor_output.json a python component writes."""
    from kfp.local import executor_input_utils, executor_output_utils

    executor_input = executor_input_utils.construct_executor_input(
        component_spec=bound["component_spec"],
        arguments=bound["arguments"],
        task_root=task_dir,
        block_input_artifact=False,
    )
    return {
        name: executor_output_utils.artifact_list_to_dsl_artifact(arts, is_artifact_list=False)
        for name, arts in executor_input.outputs.artifacts.items()
    }


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
                        spec,
                        dict(params),
                        work,
                        mp,
                        list(job.python_path),
                        env=secret_env(job.secrets),
                        index=job.loaded.index,
                    )
                )
        return records
