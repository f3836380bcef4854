"""Every example compiled for kubeflow executes in kfp.local with the simulator's results
(the conformance cases run in ``tests/conformance -m kubeflow``). The PlatformSpec document
rides along: kfp.local loads it and ignores it, as kfp's own compiled pipelines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from kfp_local import run_local

from pipecast.api import compile_pipeline, load_checked
from tests.conformance.records import complete

pytestmark = [
    pytest.mark.kubeflow,
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning"),
]

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted(ROOT.glob("examples/*/pipeline.yaml"))
SETTINGS = {
    "image": "python:3.11-slim",
    "pipeline_root": "minio://mlpipeline/v2/artifacts",
    "cluster": "gke",
    "image_pull_secrets": ["regcred"],
    "pod_labels": {"team": "ml"},
}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_example_matches_simulator(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipecast.simulator import run_pipeline

    loaded = load_checked(path)
    monkeypatch.chdir(tmp_path)
    expected = run_pipeline(
        loaded, params={}, run_dir=tmp_path / "sim", containers="host", max_parallel=2, seed=1
    )
    # Examples with a non-UTC schedule compile with the declared time-zone approximation.
    result = compile_pipeline(loaded, "kubeflow", SETTINGS, lenient=True)
    spec = tmp_path / f"{loaded.pipeline.name}.yaml"
    spec.write_text(result.files[spec.name])
    assert "\n---\nplatforms:\n" in spec.read_text()  # pull secrets and labels: every executor
    work = tmp_path / "kfp"
    work.mkdir()
    record = run_local(spec, {}, work, monkeypatch, [path.parent], index=loaded.index)
    tasks = {n.name for n in loaded.index.tasks()}
    task_keys = [k for k in expected["steps"] if re.sub(r"\[\d+\]", "", k) in tasks]
    complete(record, list(expected["steps"]), loaded.index)
    assert record["status"] == expected["status"]
    assert task_keys
    for key in task_keys:
        want, got = expected["steps"][key], record["steps"][key]
        assert got["status"] == want["status"], key
        node = loaded.index.node(re.sub(r"\[\d+\]", "", key))
        for out, type_ in node.task.outputs.items():
            if type_ in ("Dataset", "Model", "Metrics", "Artifact") or want["status"] != "succeeded":
                continue
            assert got["outputs"][out] == want["outputs"][out], (key, out)
