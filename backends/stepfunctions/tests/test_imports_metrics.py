"""Artifacts from outside (SPEC §14) and metrics (SPEC §15) on Step Functions, executed in
moto with the real worker: artifact parameters and import steps read s3:// URIs (the
conformance case ``import_for_each`` reads local paths, which a cloud target refuses)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from sfn_helpers import compile_file, run_in_moto

STEPS = """
import os
from pathlib import Path


def count_folder(path):
    return len(os.listdir(path))


def read_file(path):
    return Path(path).read_text()
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
