"""Compile for kubeflow and check the output with the real tools: kfp's loader, the
PipelineSpec protobuf, kfp-kubernetes' protobuf classes, and what the ``kfp.kubernetes``
helpers write for the same settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pipecast_kubeflow.validate import check_platform, split_documents

from pipecast import registry
from pipecast.api import compile_pipeline, load_checked
from pipecast.diagnostics import UserError

pytestmark = pytest.mark.kubeflow

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted(ROOT.glob("examples/*/pipeline.yaml"))
COMPILE_CHURN = [
    sys.executable,
    "-m",
    "pipecast",
    "compile",
    "examples/churn/pipeline.yaml",
    "--target",
    "kubeflow",
]

GPU_PIPELINE = """\
pipecast: 1
name: gpu
steps:
  train:
    run: {python: "steps:train"}
    image: "python:3.11-slim"
    secrets: {API_TOKEN: api-token, DB_PASSWORD: db-creds/password}
    resources: {cpu: 2, memory: 4Gi, gpu: 2, accelerator: ACCEL}
"""


def _pipeline(tmp_path: Path, accelerator: str = "nvidia-t4") -> Any:
    path = tmp_path / "gpu.yaml"
    path.write_text(GPU_PIPELINE.replace("ACCEL", accelerator))
    return load_checked(path)


def test_churn_compiles_loads_and_parses(tmp_path: Path) -> None:
    """The acceptance command: the spec loads in kfp, the platform config in kfp-kubernetes."""
    from google.protobuf import json_format
    from kfp import components
    from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s
    from kfp.pipeline_spec import pipeline_spec_pb2 as pb

    out = tmp_path / "out"
    proc = subprocess.run(
        [*COMPILE_CHURN, "-o", str(out), "--set", "cluster=eks", "--set", "image_pull_secrets=[regcred]"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    spec_file = out / "churn-training.yaml"
    component = components.load_component_from_file(str(spec_file))
    assert component.name == "churn-training"
    spec, platform = split_documents(spec_file.read_text())
    json_format.ParseDict(spec, pb.PipelineSpec())
    assert platform is not None
    json_format.ParseDict(platform, pb.PlatformSpec())
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == set(spec["deploymentSpec"]["executors"])  # pull secrets everywhere
    for config in executors.values():
        json_format.ParseDict(config, k8s.KubernetesExecutorConfig())
    train = executors["exec-train"]
    assert train["nodeSelector"] == {"labels": {"eks.amazonaws.com/instance-gpu-name": "t4"}}
    assert train["tolerations"] == [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}]
    resources = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert resources["accelerator"] == {
        "type": "nvidia.com/gpu",
        "count": "1",
        "resourceType": "nvidia.com/gpu",
        "resourceCount": "1",
    }
    assert resources["resourceCpuRequest"] == resources["resourceCpuLimit"] == "4"
    assert resources["resourceMemoryRequest"] == resources["resourceMemoryLimit"] == "16Gi"
    schedule = json.loads((out / "churn-training.schedule.json").read_text())
    assert schedule["trigger"] == {"cron_schedule": {"cron": "0 0 2 * * *"}}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_validate_output_accepts_examples(path: Path) -> None:
    result = compile_pipeline(load_checked(path), "kubeflow", {"image": "python:3.11-slim"}, lenient=True)
    assert registry.get("kubeflow").validate_output(result.files) == []


def _kfp_helpers_config(cluster_labels: dict[str, str], tolerations: list[dict[str, str]]) -> dict[str, Any]:
    """The executor config the kfp.kubernetes helpers write for the same settings."""
    from kfp import compiler, dsl, kubernetes

    @dsl.container_component
    def train():  # kfp reads annotations: none here
        return dsl.ContainerSpec(image="python:3.11-slim", command=["python", "-c", "print(1)"])

    @dsl.pipeline(name="gpu")
    def pipe():  # kfp reads annotations: none here
        t = train()
        kubernetes.use_secret_as_env(
            t, secret_name="api-token", secret_key_to_env={"value": "PIPECAST_SECRET_API_TOKEN"}
        )
        kubernetes.use_secret_as_env(
            t,
            secret_name="db-creds",
            secret_key_to_env={"password": "PIPECAST_SECRET_DB_CREDS_PASSWORD"},
        )
        for key, value in cluster_labels.items():
            kubernetes.add_node_selector(t, key, value)
        for tol in tolerations:
            kubernetes.add_toleration(t, **tol)
        kubernetes.set_image_pull_secrets(t, ["regcred", "other"])
        kubernetes.add_pod_label(t, "team", "ml")
        kubernetes.add_pod_annotation(t, "example.com/owner", "ml-team")
        kubernetes.mount_pvc(t, pvc_name="artifacts", mount_path="/mnt/artifacts")

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "ref.yaml"
        compiler.Compiler().compile(pipe, str(target))
        docs = list(yaml.safe_load_all(target.read_text()))
    return docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]


CLUSTERS = {
    "gke": (
        {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"},
        [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    ),
    "eks": (
        {"eks.amazonaws.com/instance-gpu-name": "t4"},
        [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    ),
    "aks": (
        {"kubernetes.azure.com/accelerator": "nvidia", "agentpool": "gput4"},
        [{"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
    ),
    "plain": (
        {"agentpool": "gput4"},
        [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    ),
}


@pytest.mark.parametrize("cluster", sorted(CLUSTERS))
def test_platform_equals_what_kfp_kubernetes_writes(cluster: str, tmp_path: Path) -> None:
    labels, tolerations = CLUSTERS[cluster]
    settings = {
        "image": "python:3.11-slim",
        "cluster": cluster,
        "image_pull_secrets": ["regcred", "other"],
        "pod_labels": {"team": "ml"},
        "pod_annotations": {"example.com/owner": "ml-team"},
        "pvc": {"name": "artifacts", "mount_path": "/mnt/artifacts"},
    }
    if cluster in ("aks", "plain"):
        settings["gpu_node_selector"] = {"agentpool": "gput4"}
    result = compile_pipeline(_pipeline(tmp_path), "kubeflow", settings)
    assert not [d for d in result.diagnostics if d.code == "accelerator-unpinned"]
    spec, platform = split_documents(result.files["gpu.yaml"])
    assert platform is not None
    assert check_platform(platform, spec) == []
    ours = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    assert ours == _kfp_helpers_config(labels, tolerations)


def test_unpinned_model_warns_on_aks(tmp_path: Path) -> None:
    result = compile_pipeline(_pipeline(tmp_path), "kubeflow", {"image": "i", "cluster": "aks"})
    (warning,) = [d for d in result.diagnostics if d.code == "accelerator-unpinned"]
    assert "gpu_node_selector" in (warning.hint or "")
    assert warning.line == 8  # the step's resources


def test_accelerator_the_cluster_does_not_offer_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        compile_pipeline(_pipeline(tmp_path, "nvidia-a10g"), "kubeflow", {"image": "i", "cluster": "gke"})
    (diag,) = err.value.diagnostics
    assert diag.code == "unsupported-accelerator"
    assert "'nvidia-a10g' is not offered on GKE" in diag.message
    assert diag.path == ("steps", "train", "resources")
    assert diag.line == 8  # reported by check(), with the user's settings: file:line:col
    # The same pipeline is fine on EKS, where g5 instances carry A10G GPUs.
    compile_pipeline(_pipeline(tmp_path, "nvidia-a10g"), "kubeflow", {"image": "i", "cluster": "eks"})


def test_secret_names_must_be_kubernetes_names(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(GPU_PIPELINE.replace("api-token", "API_Token").replace("ACCEL", "nvidia-t4"))
    with pytest.raises(UserError) as err:
        compile_pipeline(load_checked(path), "kubeflow", {"image": "i"})
    (diag,) = [d for d in err.value.diagnostics if d.code == "invalid-secret-name"]
    assert "'API_Token' is not a Kubernetes Secret name" in diag.message
    assert diag.line == 7


def test_settings_are_checked() -> None:
    proc = subprocess.run(
        [*COMPILE_CHURN, "--set", "pipeline_root=/tmp/x", "-o", "/nonexistent"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "pipeline_root must start with one of s3://, gs://, minio://" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_image_is_a_marked_placeholder(tmp_path: Path) -> None:
    result = compile_pipeline(load_checked(ROOT / "tests/conformance/cases/secrets.yaml"), "kubeflow", {})
    assert "<set image>" in result.files["secrets.yaml"]
    assert any(
        d.code == "placeholder" and d.message.startswith("target 'kubeflow':") for d in result.diagnostics
    )


def test_identical_containers_on_different_gpus_get_their_own_executors(tmp_path: Path) -> None:
    """Stock containers share an executor when their containers are equal; the GPU model is
    only in the PlatformSpec, so it must keep them apart."""
    path = tmp_path / "two.yaml"
    path.write_text(
        """\
pipecast: 1
name: two
steps:
  a:
    run: {image: "python:3.11-slim", command: [python, -c, "print(1)"]}
    resources: {gpu: 1, accelerator: nvidia-t4}
  b:
    run: {image: "python:3.11-slim", command: [python, -c, "print(1)"]}
    resources: {gpu: 1, accelerator: nvidia-a100}
  c:
    run: {image: "python:3.11-slim", command: [python, -c, "print(1)"]}
    resources: {gpu: 1, accelerator: nvidia-t4}
"""
    )
    result = compile_pipeline(load_checked(path), "kubeflow", {"cluster": "gke"})
    spec, platform = split_documents(result.files["two.yaml"])
    assert platform is not None and check_platform(platform, spec) == []
    labels = {c: spec["components"][f"comp-{c}"]["executorLabel"] for c in "abc"}
    assert labels["a"] == labels["c"] != labels["b"]
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    gke = "cloud.google.com/gke-accelerator"
    assert executors[labels["a"]]["nodeSelector"]["labels"][gke] == "nvidia-tesla-t4"
    assert executors[labels["b"]]["nodeSelector"]["labels"][gke] == "nvidia-tesla-a100"


def test_init_writes_a_kubeflow_settings_file_that_compiles(tmp_path: Path) -> None:
    from pipecast.api import load_settings
    from pipecast.cli import main

    assert main(["init", "demo", "--dir", str(tmp_path / "p")]) == 0
    backend = registry.get("kubeflow")
    settings = load_settings(backend, tmp_path / "p" / "settings" / "kubeflow.yaml")
    assert settings.experiment == "demo" and settings.pod_labels == {"pipeline": "demo"}
    result = compile_pipeline(
        load_checked(tmp_path / "p" / "pipeline.yaml"), "kubeflow", settings, lenient=True
    )
    (spec,) = [text for rel, text in result.files.items() if rel.endswith(".yaml")]
    assert 'pipeline: "demo"' in spec.split("\n---\n")[1]  # pod labels on every executor


def test_stock_container_with_secrets_gets_them_from_kubernetes(tmp_path: Path) -> None:
    """Kubernetes puts a Secret into the step's own variable, so a container step with secrets
    still runs its image unchanged (no pipecast runtime), as kfp.kubernetes would write it."""
    from kfp import compiler, dsl, kubernetes

    path = tmp_path / "stock.yaml"
    path.write_text(
        """\
pipecast: 1
name: stock
steps:
  call:
    run: {image: "curlimages/curl:8.8.0", command: [sh, -c, 'echo "$API_TOKEN" | wc -c']}
    secrets: {API_TOKEN: api-token}
"""
    )
    result = compile_pipeline(load_checked(path), "kubeflow", {})
    spec, platform = split_documents(result.files["stock.yaml"])
    container = spec["deploymentSpec"]["executors"]["exec-call"]["container"]
    assert container["command"] == ["sh", "-c", 'echo "$API_TOKEN" | wc -c']  # no runtime
    assert "pipecast.runtime" not in json.dumps(container)
    assert platform is not None and check_platform(platform, spec) == []
    ours = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-call"]

    @dsl.container_component
    def call():  # kfp reads annotations: none here
        return dsl.ContainerSpec(image="curlimages/curl:8.8.0", command=["sh", "-c", "true"])

    @dsl.pipeline(name="stock")
    def pipe():  # kfp reads annotations: none here
        kubernetes.use_secret_as_env(
            call(), secret_name="api-token", secret_key_to_env={"value": "API_TOKEN"}
        )

    target = tmp_path / "ref.yaml"
    compiler.Compiler().compile(pipe, str(target))
    ref = list(yaml.safe_load_all(target.read_text()))[1]
    assert ours == ref["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-call"]
