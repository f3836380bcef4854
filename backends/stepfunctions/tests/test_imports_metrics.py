"""Artifacts from outside (SPEC §14) and metrics (SPEC §15) on Step Functions, executed in
moto with the real worker: artifact parameters and import steps read s3:// URIs (the
conformance case ``import_for_each`` reads local paths, which a cloud target refuses)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from sfn_helpers import compile_file, run_in_moto

ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com/steps:1"

STEPS = """
import os
from pathlib import Path


def count_folder(path):
    return len(os.listdir(path))


def read_file(path):
    return Path(path).read_text()


def score(scores):
    Path(scores).write_text('{"auc": 0.9}')
"""

PIPELINE = """
pipecast: 1
name: imports-s3
params:
  parts: {type: Artifact, default: "s3://pipecast-imports/parts/"}
  bucket: {type: str, default: pipecast-imports}
  names: {type: list, default: [a.txt, c.txt]}
steps:
  folder:
    import: {uri: "{{ params.parts }}", metadata: {origin: test, z: 1, a: 2.0}}
  count:
    run: {python: "isteps:count_folder"}
    inputs: {path: "{{ steps.folder.outputs.artifact }}"}
    outputs: {output: int}
  direct:
    run: {python: "isteps:count_folder"}
    inputs: {path: "{{ params.parts }}"}
    outputs: {output: int}
  each:
    for_each: "{{ params.names }}"
    as: name
    steps:
      part:
        import: {uri: "s3://{{ params.bucket }}/parts/{{ name }}", type: Dataset}
      read:
        run: {python: "isteps:read_file"}
        inputs: {path: "{{ steps.part.outputs.artifact }}"}
        outputs: {output: str}
    outputs: {texts: "{{ steps.read.outputs.output }}"}
outputs:
  texts: "{{ steps.each.outputs.texts }}"
"""


def write(tmp_path: Path, text: str, name: str = "pipeline.yaml") -> Path:
    (tmp_path / "isteps.py").write_text(textwrap.dedent(STEPS))
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_an_import_is_a_pass_state_with_the_uri(tmp_path: Path) -> None:
    _, result, _ = compile_file(write(tmp_path, PIPELINE), compute="callback")
    states = json.dumps(json.loads(result.files["imports-s3.asl.json"]))
    assert (
        '"folder": {"Next": "count", "Parameters": {"metadata": {"artifact": {"origin": "test", "z": 1, "a": 2.0}}'
        in states
    )
    assert '"artifact.$": "$.params.parts"' in states
    assert "States.Format('s3://{}/parts/{}', $.params.bucket, $.loop.name)" in states
    assert "IsString" in states  # an artifact parameter must be a URI string
    assert not any(k.startswith("specs/folder") or k.startswith("specs/part") for k in result.files)


@pytest.mark.slow
def test_imports_and_artifact_params_execute(aws_env: str, tmp_path: Path) -> None:
    import boto3

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="pipecast-imports")
    for name, text in [("a.txt", "alpha"), ("b.txt", "beta"), ("c.txt", "gamma")]:
        s3.put_object(Bucket="pipecast-imports", Key=f"parts/{name}", Body=text.encode())
    record = run_in_moto(write(tmp_path, PIPELINE), timeout=120)
    steps = record["steps"]
    assert record["status"] == "succeeded", record.get("_worker_log", "")[-2000:]
    assert steps["folder"]["outputs"] == {"artifact": "s3://pipecast-imports/parts/"}
    assert json.dumps(steps["folder"]["metadata"]) == '{"artifact": {"origin": "test", "z": 1, "a": 2.0}}'
    assert steps["count"]["outputs"] == {"output": 3}
    assert steps["direct"]["outputs"] == {"output": 3}
    assert steps["part[1]"]["outputs"] == {"artifact": "s3://pipecast-imports/parts/c.txt"}
    assert record["outputs"] == {"texts": ["alpha", "gamma"]}


METRICS = """
pipecast: 1
name: metrics-refs
steps:
  eval:
    run: {python: "isteps:score"}
    outputs: {scores: Metrics}
  gate:
    when: "steps.eval.outputs.scores.f1 > 0.5"
    run: {python: "isteps:count_folder"}
    inputs: {path: "."}
    outputs: {output: int}
"""


def test_a_missing_metric_fails_the_step_with_a_named_error(tmp_path: Path) -> None:
    _, result, _ = compile_file(write(tmp_path, METRICS), compute="callback")
    states = json.loads(result.files["metrics-refs.asl.json"])["States"]
    choice = next(v for k, v in states.items() if k == "gate (when)")
    guard, rule = choice["Choices"]
    assert guard["Not"] == {"Variable": "$.steps.eval.metrics.scores.f1", "IsPresent": True}
    assert states[guard["Next"]]["Error"] == "pipecast.MissingMetric"
    assert rule["Variable"] == "$.steps.eval.metrics.scores.f1"
    assert states["eval"]["ResultSelector"]["metrics.$"] == "$.metrics"


@pytest.mark.parametrize("compute", ["sagemaker", "batch"])
def test_jobs_read_their_metrics_back_into_the_state(tmp_path: Path, compute: str) -> None:
    """SageMaker and Batch jobs: the runtime writes pipecast-outputs/metrics.json, a getObject
    and a Pass put it at $.steps.<step>.metrics, where the Choice rule reads it."""
    _, result, _ = compile_file(write(tmp_path, METRICS), compute=compute, default_image=ECR)
    text = result.files["metrics-refs.asl.json"]
    states = json.loads(text)["States"]
    get, put = states["eval (metrics)"], states["eval (metrics into state)"]
    assert get["Next"] == "eval (metrics into state)"
    assert get["Parameters"]["Key.$"].endswith("/eval/pipecast-outputs/metrics.json', $.pipeline.run_id)")
    assert put == {
        "Type": "Pass",
        "InputPath": "$.fetched_metrics.numbers",
        "ResultPath": "$.steps.eval.metrics",
        "Next": put["Next"],
    }
    assert '"Variable": "$.steps.eval.metrics.scores.f1"' in text


@pytest.mark.slow
def test_metrics_reach_the_run_record_and_a_missing_one_fails_the_step(aws_env: str, tmp_path: Path) -> None:
    record = run_in_moto(write(tmp_path, METRICS), timeout=120)
    steps = record["steps"]
    assert record["status"] == "failed"
    assert steps["eval"]["status"] == "succeeded"
    assert steps["eval"]["metrics"] == {"scores": {"auc": 0.9}}
    assert steps["gate"]["status"] == "failed"
