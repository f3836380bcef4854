"""Airflow-specific execution: the examples under ``dag.test()`` against the simulator, the
deployment layout of the step code (``project_dir``), injection, and the DAG structure.

Every DAG of this module runs in one child process (``harness.py``), so Airflow's start-up is
paid once; the simulator runs meanwhile in this process. The conformance cases run on
Airflow in the shared suite (``tests/conformance``, ``-m airflow``).
"""

from __future__ import annotations

import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from af_helpers import REPO, STATES, compile_file, place, run_dags, step_view

from pipecast.api import load_checked
from pipecast.ir.models import TaskStep

pytestmark = pytest.mark.airflow

HERE = Path(__file__).parent
#: Examples run under dag.test() (sweep's nested for_each: its inner loop's flattened items).
EXAMPLES = ["churn", "containers", "dataeng", "sweep"]
ARTIFACT_TYPES = {"Dataset", "Model", "Metrics", "Artifact"}
#: Run-time parameters of an example: churn reads its base dataset, whose default is a
#: remote URI; both sides read the shipped copy, a path relative to the pipeline file (on the
#: worker: to project_dir).
PARAMS: dict[str, dict[str, Any]] = {"churn": {"data_uri": "data/customers.csv"}}


SHARED = {"artifact_root": "/mnt/artifacts", "artifact_volume_claim": "artifacts"}
CONTAINER_DAGS = {
    "kubernetes": (HERE / "pipelines" / "operators.yaml", {"operator": "kubernetes", **SHARED}),
    "docker": (REPO / "examples" / "dataeng" / "pipeline.yaml", {"operator": "docker", **SHARED}),
}
OPERATOR_FIELDS = [
    "image",
    "cmds",
    "arguments",
    "command",
    "namespace",
    "container_resources",
    "node_selector",
    "tolerations",
    "secrets",
    "volumes",
    "volume_mounts",
    "do_xcom_push",
    "cpus",
    "mem_limit",
    "device_requests",
    "mounts",
    "docker_url",
    "environment",
    "env_vars",
]


def _simulate(name: str, tmp: Path) -> dict[str, Any]:
    from pipecast.simulator import run_pipeline

    loaded = load_checked(REPO / "examples" / name / "pipeline.yaml")
    # Each example runs once on each side: no result may come from an earlier run's cache.
    return run_pipeline(
        loaded,
        params=PARAMS.get(name),
        run_dir=tmp / name,
        containers="host",
        max_parallel=2,
        seed=1,
        no_cache=True,
    )


@pytest.fixture(scope="module")
def results(airflow_env, tmp_path_factory) -> dict[str, Any]:
    dags = airflow_env.dags
    jobs: list[dict[str, Any]] = []
    for name in EXAMPLES:
        folder = REPO / "examples" / name
        # The project deployed next to the dags folder: a relative project_dir, resolved on the
        # worker against the DAG file's folder (what a team's deployment would write).
        rel = os.path.relpath(folder, dags)
        file_name, text = compile_file(folder / "pipeline.yaml", {"project_dir": rel})
        path = place(dags, file_name, text)
        dag_id = load_checked(folder / "pipeline.yaml").pipeline.name
        jobs.append({"file": str(path), "dag_id": dag_id, "conf": PARAMS.get(name)})
    # The default layout: the step module copied beside the DAG file (project_dir ".").
    hostile = HERE / "pipelines" / "hostile.yaml"
    shutil.copy(HERE / "pipelines" / "hostile_steps.py", dags / "hostile_steps.py")
    file_name, text = compile_file(hostile, {"project_dir": "."})
    jobs.append({"file": str(place(dags, file_name, text)), "dag_id": "hostile-values"})
    # Container operators: loaded in a DagBag only (no cluster or Docker daemon here).
    names = [*EXAMPLES, "hostile"]
    for key, (path, settings) in CONTAINER_DAGS.items():
        out = tmp_path_factory.mktemp(key)
        file_name, text = compile_file(path, settings)
        jobs.append(
            {
                "file": str(place(out, file_name, text)),
                "dag_id": load_checked(path).pipeline.name,
                "execute": False,
                "fields": OPERATOR_FIELDS,
            }
        )
        names.append(key)
    sims = tmp_path_factory.mktemp("simulator")
    with ThreadPoolExecutor(1) as pool:
        airflow = pool.submit(run_dags, dags, jobs)
        simulated = {name: _simulate(name, sims) for name in EXAMPLES}
        ran = airflow.result()
    return {
        "airflow": dict(zip(names, ran, strict=True)),
        "simulator": simulated,
    }


def _content(value: str) -> Any:
    """An artifact by content: a file's bytes, or a folder's relative paths and bytes."""
    path = Path(value.removeprefix("file://"))
    assert path.exists(), value
    if path.is_dir():
        return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    return path.read_bytes()


def _same(value: Any, want: Any, artifact: bool) -> bool:
    if artifact:
        values, wants = (value, want) if isinstance(want, list) else ([value], [want])
        return [_content(v) for v in values] == [_content(w) for w in wants]
    return value == want


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_like_the_simulator(results, name):
    result, record = results["airflow"][name], results["simulator"][name]
    assert result["import_errors"] == {}
    assert record["status"] == "succeeded"  # the examples are meant to succeed
    assert result["state"] == {"succeeded": "success", "failed": "failed"}[record["status"]], result["tasks"]
    index = load_checked(REPO / "examples" / name / "pipeline.yaml").index
    tasks = {node.name: node for node in index.tasks()}
    got_steps = step_view(result["tasks"])
    compared = 0
    for key, want in record["steps"].items():
        node = tasks.get(re.sub(r"\[\d+\]", "", key))
        if node is None:
            continue  # a group: Airflow has tasks only (its outputs are checked through consumers)
        got = got_steps[key]
        assert STATES[got["state"]] == want["status"], (key, got, want)
        if want["status"] != "succeeded":
            continue
        assert (got["meta"] or {}).get("attempts") == want["attempts"], (key, got)  # runtime retries
        for out, type_ in node.task.outputs.items():
            assert _same(got["xcom"][out], want["outputs"][out], type_ in ARTIFACT_TYPES), (key, out)
        compared += 1
    assert compared >= 3
    if record["outputs"]:
        outputs = result["tasks"]["pipeline-outputs"]["xcom"]
        assert set(outputs) == set(record["outputs"])
        for out, want in record["outputs"].items():
            is_artifact = isinstance(want, str) and want.startswith("file://")
            assert _same(outputs[out], want, is_artifact), out


def test_churn_structure(results):
    tasks = results["airflow"]["churn"]["structure"]
    # for_each: items task -> mapped task group -> done (an empty list still completes).
    assert tasks["per_region-items"]["upstream"] == ["ingest"]
    assert tasks["per_region.train"]["upstream"] == ["per_region-items"]
    assert tasks["per_region-done"]["upstream"] == ["per_region-items", "per_region.train"]
    assert tasks["per_region-done"]["trigger_rule"] == "none_failed_min_one_success"
    assert tasks["evaluate"]["upstream"] == ["per_region-done"]
    # retry: attempts 3 (defaults), done by the runtime inside the task: Airflow never retries.
    assert {t["retries"] for n, t in tasks.items() if "-" not in n} == {0}
    # when/else: a branch task, both branches, a join that runs whichever branch ran.
    assert tasks["publish-condition"]["operator"] == "BranchPythonOperator"
    assert tasks["publish-condition"]["upstream"] == ["evaluate", "per_region-done"]
    assert tasks["register"]["upstream"] == ["publish-condition"]
    assert tasks["alert"]["upstream"] == ["publish-condition"]
    assert tasks["publish-join"] == {
        "upstream": ["alert", "publish-condition", "register"],
        "retries": 0,
        "trigger_rule": "none_failed_min_one_success",
        "operator": "EmptyOperator",
    }
    # finally: all_done after every root exit, then the status leaf.
    assert tasks["finally"]["trigger_rule"] == "all_done"
    assert tasks["finally"]["upstream"] == ["evaluate", "ingest", "per_region-done", "publish-join"]
    assert tasks["pipeline-status"]["upstream"] == ["finally"]
    assert tasks["pipeline-status"]["trigger_rule"] == "all_done"


def test_when_on_a_task_step_structure(results):
    tasks = results["airflow"]["containers"]["structure"]
    assert tasks["announce-condition"]["upstream"] == ["count_parts", "generate", "report"]
    assert tasks["announce"]["upstream"] == ["announce-condition"]
    assert tasks["announce-join"]["upstream"] == ["announce", "announce-condition"]


def test_hostile_values_come_back_unchanged(results):
    result = results["airflow"]["hostile"]
    assert result["import_errors"] == {} and result["state"] == "success"
    pipeline = load_checked(HERE / "pipelines" / "hostile.yaml").pipeline
    got = result["tasks"]["echo_it"]["xcom"]["output"]
    step = pipeline.steps["echo_it"]
    assert isinstance(step, TaskStep)
    assert got == {
        "value": pipeline.params["text"].default,
        "blob": pipeline.params["blob"].default,
        "fixed": step.inputs["fixed"],
    }


def _spec(text: str, task_id: str) -> dict[str, Any]:
    """The step spec a container task passes with ``--spec`` (from the file's TASKS)."""
    import ast
    import json

    tree = ast.parse(text)
    (tasks,) = [
        n.value for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "TASKS"
    ]
    return json.loads(ast.literal_eval(tasks)[task_id])["spec"]


def test_kubernetes_pod_operator_fields(results):
    result = results["airflow"]["kubernetes"]
    assert result["import_errors"] == {}
    train, score = result["structure"]["train"], result["structure"]["score"]
    assert train["operator"] == "KubernetesPodOperator"
    assert train["image"] == "registry.example.com/team/steps:1.2"
    assert score["image"] == "python:3.11-slim"  # a container step runs in its own image
    assert train["cmds"] == ["python"]
    args = train["arguments"]
    assert args[:5] == ["-m", "pipecast.runtime", "run", "--convention", "airflow"]
    assert args[args.index("--xcom-file") + 1] == "/airflow/xcom/return.json"
    assert args[args.index("--artifact-root") + 1] == "/mnt/artifacts"
    assert train["do_xcom_push"] is True and train["retries"] == 0  # the runtime retries
    resources = train["container_resources"]
    assert resources["requests"] == {"cpu": "2.0", "memory": str(4 * 2**30)}
    assert resources["limits"] == {"cpu": "2.0", "memory": str(4 * 2**30), "nvidia.com/gpu": "1"}
    assert train["node_selector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    (toleration,) = train["tolerations"]
    assert (toleration["key"], toleration["operator"], toleration["effect"]) == (
        "nvidia.com/gpu",
        "Exists",
        "NoSchedule",
    )
    assert not score.get("node_selector") and not score.get("tolerations")
    # The secret reaches the pod by name only, as the variable the runtime's env store reads.
    (secret,) = train["secrets"]
    assert secret["deploy_type"] == "env"
    assert secret["deploy_target"] == "PIPECAST_SECRET_TEAM_API_TOKEN"
    assert (secret["secret"], secret["key"]) == ("team-api-token", "value")
    assert [v["persistent_volume_claim"]["claim_name"] for v in train["volumes"]] == ["artifacts"]
    assert [m["mount_path"] for m in train["volume_mounts"]] == ["/mnt/artifacts"]
    path, settings = CONTAINER_DAGS["kubernetes"]
    spec = _spec(compile_file(path, settings)[1], "train")
    assert spec["env"] == {"TZ": "UTC"} and spec["secrets"] == {"API_TOKEN": "team-api-token"}
    assert spec.get("secret_store", "env") == "env"


def test_docker_operator_fields(results):
    result = results["airflow"]["docker"]
    assert result["import_errors"] == {}
    tasks = result["structure"]
    docker = {name: t for name, t in tasks.items() if t["operator"] == "DockerOperator"}
    assert set(docker) == {
        "extract_orders",
        "extract_customers",
        "daily_revenue",
        "enrich",
        "segment_sizes",
        "audit",
        "report",
        "finally",
    }
    report = docker["report"]
    assert report["image"] == "python:3.11-slim"
    command = report["command"]
    assert command[:6] == ["python", "-m", "pipecast.runtime", "run", "--convention", "airflow"]
    assert command[-1] == "--xcom-stdout"
    assert report["cpus"] == 0.5 and report["mem_limit"] == 512 * 2**20
    assert report["do_xcom_push"] is True
    assert report["docker_url"] == "unix://var/run/docker.sock"
    assert [(m["Source"], m["Target"], m["Type"]) for m in report["mounts"]] == [
        ("/mnt/artifacts", "/mnt/artifacts", "bind")
    ]
    path, settings = CONTAINER_DAGS["docker"]
    assert _spec(compile_file(path, settings)[1], "report")["env"] == {"TZ": "UTC"}
