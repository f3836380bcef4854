"""Each convention against real storage: local paths, S3 in moto, a SageMaker processing root."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import boto3
import pytest

from pipecast.runtime import conventions
from pipecast.runtime.conventions.base import MARKER, ConventionError
from pipecast.runtime.conventions.local import LocalConvention
from pipecast.runtime.conventions.s3 import S3Convention
from pipecast.runtime.conventions.sagemaker import SageMakerConvention
from pipecast.runtime.core import StepFailed, run_step
from tests.runtime.conftest import PROJECT, make_spec

ART_SPEC = dict(
    run="artifacts",
    outputs={"model": "Model", "report": "Artifact", "n": "int"},
    inputs={"data": {"type": "Dataset"}},
)


def art_spec():
    return make_spec(ART_SPEC["run"], ART_SPEC["outputs"], inputs=ART_SPEC["inputs"])


def test_load_by_name():
    assert conventions.load("s3") is S3Convention
    with pytest.raises(KeyError, match="unknown convention 'x'"):
        conventions.load("x")


def test_local_convention_paths(tmp_path):
    data = tmp_path / "in.txt"
    data.write_text("abc")
    conv = LocalConvention(
        {"data": str(data)}, {"model": str(tmp_path / "out" / "m.txt")}, str(tmp_path / "result.json")
    )
    out = run_step(art_spec(), conv, workdir=tmp_path / "w", python_path=[str(PROJECT)])
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["n"] == 3 and result["model"] == str(tmp_path / "out" / "m.txt")
    assert Path(result["model"]).read_text() == "ABC" and out.published == result


@pytest.fixture
def bucket(aws_env):
    name = "pipecast-rt-tests"
    s3 = boto3.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=name)
    return name


def test_s3_convention_downloads_and_uploads(tmp_path, bucket):
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key="in/data.csv", Body=b"hello")
    conv = S3Convention({"data": f"s3://{bucket}/in/data.csv"}, f"s3://{bucket}/run1/train")
    out = run_step(art_spec(), conv, workdir=tmp_path, python_path=[str(PROJECT)])
    assert out.published == {
        "model": f"s3://{bucket}/run1/train/model",
        "n": 5,
        "report": f"s3://{bucket}/run1/train/report/",
    }
    body = s3.get_object(Bucket=bucket, Key="run1/train/model")["Body"].read()
    assert body == b"HELLO"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="run1/train/report/")["Contents"]}
    assert {"run1/train/report/part-0.txt", "run1/train/report/sub/part-1.txt"} <= keys

    # The folder artifact flows into the next step as a folder; a collected list as a list.
    spec = make_spec("count_files", {"texts": "list"}, inputs={"items": {"type": "list[Model]"}})
    s3.put_object(Bucket=bucket, Key="m/0", Body=b"b")
    s3.put_object(Bucket=bucket, Key="m/1", Body=b"a")
    conv = S3Convention(
        {"items": [f"s3://{bucket}/m/0", f"s3://{bucket}/m/1"]}, None, f"s3://{bucket}/r.json"
    )
    out = run_step(spec, conv, workdir=tmp_path / "2", python_path=[str(PROJECT)])
    assert out.published == {"texts": ["a", "b"]}
    assert json.loads(s3.get_object(Bucket=bucket, Key="r.json")["Body"].read()) == {"texts": ["a", "b"]}


def test_s3_folder_artifact_round_trip_and_prefix_without_slash(tmp_path, bucket):
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key="sm/out/model/part-0.txt", Body=b"x")  # as SageMaker writes
    spec = make_spec("count_files", {"texts": "list"}, inputs={"items": {"type": "list[Artifact]"}})
    # part-0.txt read via the folder: count_files reads each path, so give the file inside.
    conv = S3Convention({"items": [f"s3://{bucket}/sm/out/model/part-0.txt"]})
    assert run_step(spec, conv, workdir=tmp_path, python_path=[str(PROJECT)]).published == {"texts": ["x"]}
    from pipecast.runtime import s3io

    folder = s3io.download(f"s3://{bucket}/sm/out/model", tmp_path / "dl")
    assert folder.is_dir() and (folder / "part-0.txt").read_text() == "x"
    with pytest.raises(ConventionError, match="does not exist"):
        s3io.download(f"s3://{bucket}/nothing/here", tmp_path / "dl2")


def test_s3_missing_prefix_is_an_error(tmp_path, bucket):
    conv = S3Convention({"data": "/etc/hostname"})
    with pytest.raises(StepFailed, match="pass --artifact-prefix"):
        run_step(art_spec(), conv, workdir=tmp_path, python_path=[str(PROJECT)])


def test_sagemaker_convention_layout(tmp_path):
    root = tmp_path / "opt-ml-processing"
    (root / "input" / "data").mkdir(parents=True)
    (root / "input" / "data" / "table.csv").write_text("rows")
    (root / "input" / "data" / MARKER).write_text(json.dumps({"file": "table.csv"}))
    conv = SageMakerConvention({}, root)
    out = run_step(art_spec(), conv, workdir=tmp_path / "w", python_path=[str(PROJECT)])
    assert out.published == {"n": 4}
    assert json.loads((root / "output" / "pipecast-outputs" / "outputs.json").read_text()) == {"n": 4}
    # A file artifact: the file plus a marker, so the next step gets the file again.
    model = root / "output" / "model"
    assert (model / "model").read_text() == "ROWS"
    assert json.loads((model / MARKER).read_text()) == {"file": "model"}
    assert (root / "output" / "report" / "sub" / "part-1.txt").read_text() == "one"

    # The next step reads the output folder as its input folder.
    nxt = tmp_path / "next"
    (nxt / "input").mkdir(parents=True)
    model.rename(nxt / "input" / "data")
    out = run_step(
        art_spec(), SageMakerConvention({}, nxt), workdir=tmp_path / "w2", python_path=[str(PROJECT)]
    )
    assert (nxt / "output" / "model" / "model").read_text() == "ROWS"


def test_sagemaker_missing_input_and_failure_file(tmp_path):
    root = tmp_path / "root"
    with pytest.raises(StepFailed, match=r"artifact input 'data' is missing: no folder .*input/data"):
        run_step(
            art_spec(), SageMakerConvention({}, root), workdir=tmp_path / "w", python_path=[str(PROJECT)]
        )
    with pytest.raises(StepFailed):
        run_step(
            make_spec("boom"),
            SageMakerConvention({}, root),
            workdir=tmp_path / "w",
            python_path=[str(PROJECT)],
        )
    assert (
        root / "output" / "pipecast-outputs" / "error.txt"
    ).read_text() == "step s failed: ValueError: bad input\n"


@pytest.mark.parametrize("where", ["folder", "s3"])
def test_result_cache_restores_artifacts_without_running(tmp_path, where, request):
    """SPEC §20 in the runtime: a second run with the same signature restores the outputs
    (files and folders) from the store without running the function; a changed input or an
    entry older than max_age runs it again."""
    from pipecast.runtime.spec import CacheSpec

    local = str(tmp_path / "cache")
    store = f"s3://{request.getfixturevalue('bucket')}/cache" if where == "s3" else local
    data = tmp_path / "in.txt"
    data.write_text("abc")

    def run(i: int, max_age: float | None = None):
        spec = art_spec().model_copy(
            update={"cache": CacheSpec(definition="d", version="1", max_age=max_age, store=store)}
        )
        conv = LocalConvention({"data": str(data)}, {"model": str(tmp_path / f"out{i}" / "m.txt")}, None)
        return run_step(spec, conv, workdir=tmp_path / f"w{i}", python_path=[str(PROJECT)])

    first = run(1)
    assert not first.cached and first.attempts == 1
    second = run(2)
    assert second.cached and second.attempts == 0
    assert (tmp_path / "out2" / "m.txt").read_text() == "ABC"
    assert second.outputs["n"] == 3
    report = Path(second.outputs["report"])
    assert (report / "part-0.txt").read_text() == "zero" and (
        report / "sub" / "part-1.txt"
    ).read_text() == "one"
    assert not run(3, max_age=0.0).cached  # older than max_age: runs again
    data.write_text("abcd")  # an artifact input changes by content
    assert not run(4).cached


def test_jobs_write_metrics_beside_their_outputs(tmp_path):
    """SPEC §15 on Step Functions jobs: each Metrics output's numbers (floats) in metrics.json
    beside the outputs file, for the state machine to read back; the outcome carries them too
    (the callback worker's answer)."""
    spec = make_spec("scores", outputs={"scores": "Metrics"})
    root = tmp_path / "opt-ml-processing"
    out = run_step(spec, SageMakerConvention({}, root), workdir=tmp_path / "w", python_path=[str(PROJECT)])
    written = (root / "output" / "pipecast-outputs" / "metrics.json").read_text()
    assert json.loads(written) == {"scores": {"rows": 3.0, "auc": 0.5}} == out.metrics
    assert '"rows": 3.0' in written  # a metric is read as a float

    result = tmp_path / "res" / "outputs.json"
    outcome = run_step(
        make_spec("noop"),
        S3Convention({}, None, str(result)),
        workdir=tmp_path / "w2",
        python_path=[str(PROJECT)],
    )
    assert result.exists() and outcome.metrics is None
    assert not result.with_name("metrics.json").exists()  # no Metrics output, no file


def test_kfp_shared_executor_runs_under_the_step_name_of_its_task(tmp_path, pp):
    """SPEC §16 on KFP: one executor spec for every use of a component file; the step's name
    and its literal inputs arrive as task inputs (pipecast--step, JSON-text constants)."""
    import os
    import subprocess
    import sys

    from pipecast.runtime.conventions.kfp import STEP_INPUT

    spec = make_spec("add", {"output": "int"}, inputs={"a": {"type": "int"}, "b": {"type": "int"}})
    spec = spec.model_copy(update={"step": "plus"})  # the component's name, as compiled
    trace = tmp_path / "trace.jsonl"
    for step, b in (("first", "1"), ("second", "2")):
        out = tmp_path / step / "executor_output.json"
        executor_input = {
            "inputs": {"parameterValues": {"a": "40", "b": b, STEP_INPUT: step}},
            "outputs": {"outputFile": str(out)},
        }
        cmd = [
            sys.executable,
            "-m",
            "pipecast.runtime",
            "run",
            "--spec",
            spec.to_arg(),
            "--convention",
            "kfp",
        ]
        cmd += ["--python-path", pp[0], "--executor-input", json.dumps(executor_input)]
        cmd += ["--json-inputs", '["a","b"]']
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env={**os.environ, "PIPECAST_KFP_TRACE": str(trace)},
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(out.read_text())["parameterValues"]["output"] == str(40 + int(b))
    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    assert [(line["step"], line["outputs"]) for line in lines] == [
        ("first", {"output": 41}),
        ("second", {"output": 42}),
    ]
