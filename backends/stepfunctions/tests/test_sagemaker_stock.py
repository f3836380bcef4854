"""Container steps run stock images on SageMaker processing jobs (SPEC §21).

The test performs the processing job contract from the compiled ``CreateProcessingJob``
request against moto S3: it evaluates the request's paths and intrinsics on the state the
machine holds at that point, downloads each ``ProcessingInput`` to its local path, runs the
``ContainerEntrypoint`` with the ``Environment`` in a clean environment whose ``python``
cannot import pipecast, uploads each ``ProcessingOutput``, then evaluates the following
states (``getObject`` per parameter output, the ``(outputs)`` Pass) and checks what the next
steps read. The container's ``/opt/ml/processing`` is a temporary folder (its path replaced
in the entrypoint, as a bind mount would).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from sfn_helpers import compile_file

from pipecast.runtime.conventions.base import locate_in_folder, store_in_folder
from tests.fixtures.bare_python import shim_dir

REPO = Path(__file__).resolve().parents[3]
CASE = REPO / "tests/conformance/cases/stock_image.yaml"
ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com/steps:1"
BUCKET = "stock-bucket"
SM_ROOT = "/opt/ml/processing"
ROLE_ARN = "arn:aws:iam::123456789012:role/pipecast-test"


# ------------------------------------------------------------------ a small ASL evaluator


def _path(state: dict[str, Any], path: str) -> Any:
    value: Any = state
    for part in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path[1:]):
        value = value[part[0]] if part[0] else value[int(part[1])]
    return value


def _split_args(text: str) -> list[str]:
    args, depth, quote, cur = [], 0, False, ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote and ch == "\\":
            cur += text[i : i + 2]
            i += 2
            continue
        if ch == "'":
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
        if ch == "," and not quote and depth == 0:
            args.append(cur.strip())
            cur = ""
        else:
            cur += ch
        i += 1
    if cur.strip():
        args.append(cur.strip())
    return args


def _eval(expr: str, state: dict[str, Any]) -> Any:
    if expr.startswith("$"):
        return _path(state, expr)
    if expr.startswith("'"):
        return re.sub(r"\\(.)", r"\1", expr[1:-1])
    name, _, rest = expr.partition("(")
    args = [_eval(a, state) for a in _split_args(rest[:-1])]
    if name == "States.UUID":
        return str(uuid.uuid4())
    if name == "States.JsonToString":
        return json.dumps(args[0], separators=(",", ":"))
    if name == "States.StringToJson":
        return json.loads(args[0])
    assert name == "States.Format", name
    pieces = re.split(r"(?<!\\)\{\}", expr.split("'")[1])
    out = pieces[0]
    for arg, piece in zip(args[1:], pieces[1:], strict=True):
        out += (arg if isinstance(arg, str) else json.dumps(arg)) + piece
    return re.sub(r"\\(.)", r"\1", out)


def _render(template: Any, state: dict[str, Any]) -> Any:
    if isinstance(template, dict):
        out = {}
        for k, v in template.items():
            if k.endswith(".$"):
                out[k[:-2]] = _eval(v, state)
            else:
                out[k] = _render(v, state)
        return out
    if isinstance(template, list):
        return [_render(v, state) for v in template]
    return template


def _split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


# ------------------------------------------------------------------ the processing job contract


def _processing_job(s3: Any, request: dict[str, Any], root: Path) -> subprocess.CompletedProcess:
    """What SageMaker does with a CreateProcessingJob request, with /opt/ml/processing at ``root``."""
    local = lambda p: Path(p.replace(SM_ROOT, str(root), 1))  # noqa: E731
    for item in request.get("ProcessingInputs", []):
        bucket, prefix = _split_uri(item["S3Input"]["S3Uri"])
        dest = local(item["S3Input"]["LocalPath"])
        dest.mkdir(parents=True, exist_ok=True)
        for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
            target = dest / obj["Key"][len(prefix) :].lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(target))
    outputs = request.get("ProcessingOutputConfig", {}).get("Outputs", [])
    for out in outputs:
        local(out["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)  # SageMaker creates them
    app = request["AppSpecification"]
    # The arguments are one script cut in pieces (joined by the entrypoint): map the root in the whole.
    script = "".join(app.get("ContainerArguments", [])).replace(SM_ROOT, str(root))
    entry = [*app["ContainerEntrypoint"], script]
    env = {"PATH": os.pathsep.join([str(shim_dir()), "/usr/bin:/bin"]), **request.get("Environment", {})}
    done = subprocess.run(entry, env=env, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode == 0:
        for out in outputs:
            folder = local(out["S3Output"]["LocalPath"])
            bucket, prefix = _split_uri(out["S3Output"]["S3Uri"])
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                s3.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")
    return done


@mock_aws
def test_stock_step_runs_the_processing_contract_without_pipecast(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    _loaded, result, _settings = compile_file(
        CASE, compute="sagemaker", default_image=ECR, artifact_root=f"s3://{BUCKET}/root", role_arn=ROLE_ARN
    )
    assert result.summary["runtime_images"] == {ECR: ["count", "double", "make"]}
    states = json.loads(result.files["stock-image.asl.json"])["States"]
    scale = states["scale"]
    app = scale["Parameters"]["AppSpecification"]
    assert app["ContainerEntrypoint"][:2] == ["sh", "-c"]
    assert "pipecast.runtime" not in "".join(app["ContainerArguments"])
    assert all(len(a) <= 256 and "\n" not in a for a in app["ContainerArguments"])
    assert len(app["ContainerArguments"]) > 1  # the script spans several arguments

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    # make (a python step) stored its file artifact as pipecast does: a file beside the marker.
    made = tmp_path / "made"
    (tmp_path / "rows.txt").write_text("a\nbb\nccc\n")
    store_in_folder(tmp_path / "rows.txt", made)
    # a sibling whose prefix starts like make's: the trailing '/' keeps it out of the download
    s3.put_object(Bucket=BUCKET, Key="root/stock-image/run-1/make/out2/x", Body=b"not mine")
    for path in made.iterdir():
        s3.upload_file(str(path), BUCKET, f"root/stock-image/run-1/make/out/{path.name}")
    state: dict[str, Any] = {
        "pipeline": {"run_id": "run-1"},
        "params": {"factor": 3},
        "steps": {"make": {"outputs": {"out": f"s3://{BUCKET}/root/stock-image/run-1/make/out"}}},
    }
    request = _render(scale["Parameters"], state)
    done = _processing_job(s3, request, tmp_path / "container")
    assert done.returncode == 0, done.stderr

    # the job's description holds the outputs as requested: ResultSelector, then the reads.
    described = {"ProcessingOutputConfig": request["ProcessingOutputConfig"]}
    state["steps"]["scale"] = _render(scale["ResultSelector"], described)
    name = scale["Next"]
    while states[name]["Type"] == "Task":
        get = states[name]
        params = _render(get["Parameters"], state)
        body = s3.get_object(Bucket=params["Bucket"], Key=params["Key"])["Body"].read().decode()
        state.setdefault("fetched", {})[get["ResultPath"].rsplit(".", 1)[1]] = _render(
            get["ResultSelector"], {"Body": body}
        )
        name = get["Next"]
    state["steps"]["scale"] = _render(states[name]["Parameters"], state)
    outputs = state["steps"]["scale"]["outputs"]
    assert outputs["n"] == 9 and outputs["label"] == "stock:a,bb,ccc"

    # count (a python step) reads parts as the runtime does: the prefix, then the marker.
    parts_prefix = _split_uri(outputs["parts"])[1]
    fetched = tmp_path / "fetched"
    for obj in s3.list_objects_v2(Bucket=BUCKET, Prefix=parts_prefix + "/")["Contents"]:
        target = fetched / obj["Key"][len(parts_prefix) + 1 :]
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(BUCKET, obj["Key"], str(target))
    folder = locate_in_folder(fetched)
    assert sorted(p.read_text() for p in folder.iterdir()) == ["aaa", "bbbbbb", "ccccccccc"]


def test_batch_container_steps_stay_on_the_runtime():
    _l, result, _s = compile_file(CASE, compute="batch", default_image=ECR)
    assert result.summary["runtime_images"]["python:3.11-slim"] == ["scale"]


@pytest.mark.parametrize("compute", ["sagemaker"])
def test_churn_pick_runs_stock(compute):
    _l, result, _s = compile_file(REPO / "examples/churn/pipeline.yaml", compute=compute, default_image=ECR)
    assert all("pick" not in steps for steps in result.summary["runtime_images"].values())
