"""SPEC §16 on Vertex/KFP: one ComponentSpec (and executor) per component file, shared by every
task that ``uses:`` it with the same effective settings; a use whose overrides change the
container gets its own executor. Runs the shared executors in ``kfp.local`` too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp_local import run_local
from pipecast_vertex import naming as n

from pipecast.api import compile_pipeline, load_checked
from tests.conformance.catalogue import CASES_DIR

pytestmark = [
    pytest.mark.vertex,
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning"),
]

ROOT = Path(__file__).resolve().parents[3]
COMPONENTS = ROOT / "examples" / "components"
SETTINGS = {"image": "python:3.11-slim", "pipeline_root": "gs://demo/runs"}


def _compile(path: Path) -> tuple[Any, dict[str, Any]]:
    loaded = load_checked(path)
    result = compile_pipeline(loaded, "vertex", SETTINGS)
    return loaded, yaml.safe_load(result.files[f"{loaded.pipeline.name}.yaml"])


def _tasks(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every task of every DAG (root and sub-DAGs), by task name (unique in pipecast specs)."""
    dags = [spec["root"]["dag"], *(c["dag"] for c in spec["components"].values() if "dag" in c)]
    return {name: task for dag in dags for name, task in dag["tasks"].items()}


def _uses(loaded: Any, spec: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    """Each component use: step → (component file, its ComponentSpec, its executor label)."""
    tasks = _tasks(spec)
    out = {}
    for node in loaded.index.tasks():
        if node.task.component is None:
            continue
        comp = tasks[n.task_name(_compiled(node.name))]["componentRef"]["name"]
        out[node.name] = (node.task.component.path, comp, spec["components"][comp]["executorLabel"])
    return out


def _compiled(step: str) -> str:
    """A step's name after compile inlined its sub-pipeline (``prep.clean`` → ``prep__clean``)."""
    return step.replace(".", "__")


def _container_key(loaded: Any, step: str) -> str:
    """What a use's overrides put in the container: image, resources, env (retry, cache and
    the literal inputs live on the task)."""
    eff = loaded.index.effective(loaded.index.node(step))
    return json.dumps([eff.image, eff.resources.to_data(), eff.env, eff.timeout], sort_keys=True)


@pytest.mark.parametrize("name", ["pipeline", "training"])
def test_one_executor_per_component_file_and_container(name: str) -> None:
    loaded, spec = _compile(COMPONENTS / f"{name}.yaml")
    uses = _uses(loaded, spec)
    assert uses, "the example uses component files"
    distinct = {(path, _container_key(loaded, step)) for step, (path, _, _) in uses.items()}
    # One ComponentSpec and one executor per component file and container settings.
    assert len({comp for _, comp, _ in uses.values()}) == len(distinct)
    assert len({label for _, _, label in uses.values()}) == len(distinct)
    for step, (_path, comp, label) in uses.items():
        base = n.task_name(loaded.index.node(step).task.component.name)
        assert comp.startswith(f"comp-{base}--component") and label.startswith(f"exec-{base}--component")
        # The executor names no step: the step name is a task constant.
        args = spec["deploymentSpec"]["executors"][label]["container"]["args"]
        step_arg = json.loads(args[args.index("--spec") + 1])["step"]
        assert step_arg == loaded.index.node(step).task.component.name
        task = _tasks(spec)[n.task_name(_compiled(step))]
        assert task["inputs"]["parameters"][n.STEP_INPUT]["runtimeValue"]["constant"] == _compiled(step)


def test_training_shares_train_between_the_sweep_and_final_only_when_the_container_agrees() -> None:
    loaded, spec = _compile(COMPONENTS / "training.yaml")
    uses = _uses(loaded, spec)
    # `final` asks for 4 CPUs: another container, so another executor; its retry and its
    # literal inputs (lr 0.5, epochs 20) are on the task.
    assert uses["trial"][0] == uses["final"][0] == "components/train.yaml"
    assert uses["trial"][2] != uses["final"][2]
    final = _tasks(spec)["final"]
    assert final["retryPolicy"]["maxRetryCount"] == 2
    assert final["inputs"]["parameters"]["epochs"]["runtimeValue"]["constant"] == "20"  # int: JSON text
    assert final["inputs"]["parameters"]["lr"]["runtimeValue"]["constant"] == 0.5


def test_component_twice_shares_one_spec_between_uses_with_other_inputs_and_retry() -> None:
    loaded, spec = _compile(CASES_DIR / "component_twice.yaml")
    uses = _uses(loaded, spec)
    # first/second: other literal inputs and another retry, the same ComponentSpec.
    assert uses["first"][1] == uses["second"][1] == "comp-flaky--component"
    # both/shifted: the same executor; shifted's output is also a pipeline output, so its
    # component declares one more output (another ComponentSpec, the same executor).
    assert uses["both"][2] == uses["shifted"][2] == "exec-plus--component"
    assert len(spec["deploymentSpec"]["executors"]) == 2


def test_training_runs_in_kfp_local_like_the_simulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipecast.simulator import run_pipeline

    loaded = load_checked(COMPONENTS / "training.yaml")
    monkeypatch.chdir(tmp_path)
    expected = run_pipeline(
        loaded, params=None, run_dir=tmp_path / "sim", containers="host", max_parallel=2, seed=1
    )
    result = compile_pipeline(loaded, "vertex", SETTINGS)
    spec = tmp_path / f"{loaded.pipeline.name}.yaml"
    spec.write_text(result.files[spec.name])
    work = tmp_path / "kfp"
    work.mkdir()
    record = run_local(spec, {}, work, monkeypatch, [COMPONENTS], index=loaded.index)
    assert record["status"] == expected["status"] == "succeeded"
    # Every use ran under its own step name (the shared executor read pipecast--step).
    # (the record keeps the compiled names of inlined steps: prep__clean)
    for step in ("trial[0]", "trial[1]", "final", "score", "prep__clean"):
        assert record["steps"][step]["status"] == "succeeded", (step, sorted(record["steps"]))
    assert record["outputs"] == expected["outputs"]
