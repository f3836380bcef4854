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
