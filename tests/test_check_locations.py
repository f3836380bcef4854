"""Every user error of every target carries file:line:col, the YAML path, the target, a code
and a hint (issue 16, part 3): a step asking for more than any machine has, on each target."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipecast import registry
from pipecast.api import compile_pipeline, load_checked
from pipecast.diagnostics import Diagnostic, UserError

IMPOSSIBLE = """\
pipecast: 1
name: impossible
defaults:
  image: example.com/steps:1
steps:
  prep:
    run: {image: "busybox:1", command: [echo, hi]}
  train:
    run: {image: "busybox:1", command: [echo, hi]}
    after: [prep]
    resources: {cpu: 1000, memory: 100Ti, gpu: 64, accelerator: nvidia-h100}
"""
#: Targets with machines of a fixed size reject the request; on a Kubernetes cluster
#: (Airflow's pods, Kubeflow) it is the cluster's to refuse, so those compile.
REJECTS = {"stepfunctions", "vertex", "azureml"}


@pytest.mark.parametrize("target", [t for t in registry.available() if t != "local"])
def test_impossible_resources_are_located(target: str, tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(IMPOSSIBLE, encoding="utf-8")
    loaded = load_checked(path)
    try:
        diagnostics = compile_pipeline(loaded, target, lenient=True).diagnostics
        rejected = False
    except UserError as exc:
        diagnostics, rejected = exc.diagnostics, True
    assert rejected == (target in REJECTS), [d.render() for d in diagnostics]
    for d in diagnostics:
        _assert_complete(d, str(path), target)
    if rejected:
        (error,) = [d for d in diagnostics if d.severity == "error"]
        assert error.path == ("steps", "train", "resources")
        assert (error.line, error.column) == (11, 5), error.render()
        assert error.render().startswith(f"{path}:11:5: error: ")


def _assert_complete(d: Diagnostic, file: str, target: str) -> None:
    assert d.file == file and d.line is not None and d.column is not None, d.render()
    assert d.path, d.render()
    assert d.target == target, d.render()
    assert d.code and d.code != "invalid", d.render()
    assert d.hint, d.render()


#: On a Kubernetes cluster the pod is the cluster's to place, but a GPU model the cluster's
#: kind offers no node label for is refused (Airflow's kubernetes operator, Kubeflow).
CLUSTER_SETTINGS = {
    "airflow": {
        "operator": "kubernetes",
        "gpu_cluster": "gke",
        "artifact_root": "/mnt/artifacts",
        "artifact_volume_claim": "artifacts",
    },
    "kubeflow": {"cluster": "gke"},
}


@pytest.mark.parametrize("target", sorted(CLUSTER_SETTINGS))
def test_an_accelerator_the_cluster_lacks_is_located(target: str, tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(IMPOSSIBLE.replace("nvidia-h100", "nvidia-a10g"), encoding="utf-8")
    with pytest.raises(UserError) as caught:
        compile_pipeline(load_checked(path), target, CLUSTER_SETTINGS[target])
    (error,) = caught.value.diagnostics
    _assert_complete(error, str(path), target)
    assert error.path == ("steps", "train", "resources") and (error.line, error.column) == (11, 5)
    assert error.message.startswith(f"target {target!r}"), error.message
    assert "nvidia-a10g" in error.message


SLOW_STEP = """\
pipecast: 1
name: slow
steps:
  train:
    run: {image: "123456789012.dkr.ecr.us-east-1.amazonaws.com/steps:1", command: [echo, hi]}
    timeout: 10d
"""


def test_a_limit_of_the_generated_definition_is_found_by_check(tmp_path: Path) -> None:
    """Step Functions limits known only once the definition is built (here SageMaker's 9-day
    processing job) are reported by check(), with the user's settings and a location; emit
    then returns that build."""
    path = tmp_path / "pipeline.yaml"
    path.write_text(SLOW_STEP, encoding="utf-8")
    loaded = load_checked(path).lowered()
    backend = registry.get("stepfunctions")
    (error,) = backend.check(loaded.index, settings={"compute": "sagemaker"})
    assert error.path == ("steps", "train", "timeout") and error.code == "limit"
    assert error.message.startswith("target 'stepfunctions' (sagemaker): step 'train' has a timeout")
    assert not backend.check(loaded.index, settings={"compute": "batch"})
    with pytest.raises(UserError) as caught:
        compile_pipeline(load_checked(path), "stepfunctions")
    (located,) = caught.value.diagnostics
    _assert_complete(located, str(path), "stepfunctions")
    assert (located.line, located.column) == (6, 5), located.render()
