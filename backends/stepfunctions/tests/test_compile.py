"""Compile every example for every compute and check the output with the real tools
(statelint + asl-validator), botocore's request models, determinism and limits. The
conformance cases are compiled and validated by ``tests/conformance``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sfn_helpers import BACKEND, REPO, compile_file, shared_once

from pipecast.diagnostics import UserError

pytestmark = pytest.mark.stepfunctions

EXAMPLES = sorted((REPO / "examples").glob("*/pipeline.yaml"))


COMPUTES = ("callback", "sagemaker", "batch")


def _key(path: Path, compute: str) -> str:
    return f"{path.relative_to(REPO)}|{compute}"


def _check_all(tmp: Path) -> dict[str, dict]:
    """Every example compiled for every compute; statelint per definition and one
    asl-validator run over all of them (Node starts once, not once per file)."""
    from pipecast_stepfunctions.validate import asl_validator_problems, statelint_problems

    out: dict[str, dict] = {}
    paths: list[Path] = []
    owners: dict[str, tuple[str, str]] = {}
    for path in EXAMPLES:
        for compute in COMPUTES:
            key = _key(path, compute)
            try:
                _l, result, _s = compile_file(path, compute=compute, default_image="python:3.11-slim")
            except UserError as exc:
                codes = sorted({d.code or "" for d in exc.diagnostics})
                out[key] = {"error": exc.diagnostics[0].message, "codes": codes}
                continue
            entry: dict = {"definitions": [], "problems": []}
            for rel, text in sorted(result.files.items()):
                if not rel.endswith(".asl.json"):
                    continue
                entry["definitions"].append(rel)
                lint = statelint_problems(text)
                assert lint is not None, "statelint must be installed"
                entry["problems"] += [f"{rel}: statelint: {p}" for p in lint]
                p = tmp / f"{len(paths)}.asl.json"
                p.write_text(text, encoding="utf-8")
                paths.append(p)
                owners[p.name] = (key, rel)
            out[key] = entry
    found = asl_validator_problems(paths)
    assert found is not None, "asl-validator must be installed (scripts/install-tools.sh)"
    for name, problems in found.items():
        key, rel = owners[name]
        out[key]["problems"] += [f"{rel}: asl-validator: {p}" for p in problems]
    return out


@pytest.fixture(scope="module")
def asl_checked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    tmp = tmp_path_factory.mktemp("asl")
    return shared_once(tmp_path_factory, "sfn-asl", lambda: _check_all(tmp))


@pytest.mark.parametrize("compute", COMPUTES)
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(REPO)))
def test_valid_asl(path: Path, compute: str, asl_checked: dict) -> None:
    entry = asl_checked[_key(path, compute)]
    if "error" in entry:
        # Only a documented "cannot express" error may stop compilation (never a crash).
        assert set(entry["codes"]) & {"unsupported-feature", "resources"}, entry
        pytest.skip(f"not compilable for this target: {entry['error']}")
    assert entry["definitions"]
    assert not entry["problems"], "\n".join(entry["problems"])


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_deterministic(path: Path) -> None:
    a = compile_file(path, compute="sagemaker")[1].files
    b = compile_file(path, compute="sagemaker")[1].files
    assert a == b


def _task_states(states: dict):
    for name, st in states.items():
        yield name, st
        for br in st.get("Branches", []):
            yield from _task_states(br["States"])
        if "ItemProcessor" in st:
            yield from _task_states(st["ItemProcessor"]["States"])


def _strip_paths(value):
    """Request parameters with JSONPath keys (``X.$``) dropped, as botocore sees them."""
    if isinstance(value, dict):
        return {k: _strip_paths(v) for k, v in value.items() if not k.endswith(".$")}
    if isinstance(value, list):
        return [_strip_paths(v) for v in value]
    return value


@pytest.mark.parametrize(
    "compute,operation,service",
    [("sagemaker", "CreateProcessingJob", "sagemaker"), ("batch", "SubmitJob", "batch")],
)
def test_request_shapes_pass_botocore(compute: str, operation: str, service: str) -> None:
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(operation).input_shape
    _loaded, result, _s = compile_file(REPO / "examples/churn/pipeline.yaml", compute=compute)
    definition = json.loads(result.files["churn-training.asl.json"])
    checked = 0
    for _name, st in _task_states(definition["States"]):
        if st.get("Resource", "").endswith(".sync") and service in st["Resource"]:
            params = _strip_paths(st["Parameters"])
            # Fill the keys given as paths with a valid stand-in so required members exist.
            if service == "sagemaker":
                params["ProcessingJobName"] = "x"
                for out in params.get("ProcessingOutputConfig", {}).get("Outputs", []):
                    out["S3Output"]["S3Uri"] = "s3://b/k"
                for inp in params.get("ProcessingInputs", []):  # a stock step may have none
                    inp["S3Input"].setdefault("S3Uri", "s3://b/k")
            else:
                # Step Functions takes Batch parameters in PascalCase; the API is camelCase.
                params = _camel(params)
                params["parameters"] = {
                    "inputs": "{}",
                    "prefix": "s3://b/p",
                    "result": "s3://b/r",
                    **params.get("parameters", {}),
                }
            report = ParamValidator().validate(params, shape)
            assert not report.has_errors(), report.generate_report()
            checked += 1
    assert checked >= 5
    if compute == "batch":
        jd_shape = model.operation_model("RegisterJobDefinition").input_shape
        for rel, text in result.files.items():
            if rel.startswith("batch/"):
                report = ParamValidator().validate(json.loads(text), jd_shape)
                assert not report.has_errors(), report.generate_report()


def test_instance_table_is_in_botocore() -> None:
    import botocore.session
    from pipecast_stepfunctions.instances import TABLE

    enum = set(
        botocore.session.get_session().get_service_model("sagemaker").shape_for("ProcessingInstanceType").enum
    )
    assert {row.name for row in TABLE} <= enum


def _camel(value, keep=False):
    if isinstance(value, dict):
        return {
            (k if keep else k[0].lower() + k[1:]): _camel(v, keep or k == "Parameters")
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_camel(v, keep) for v in value]
    return value


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "pipeline.yaml"
    p.write_text(text)
    return p


def test_long_names_are_shortened_deterministically(tmp_path: Path) -> None:
    long = "s" + "x" * 62
    p = _write(
        tmp_path,
        f"""pipecast: 1
name: p
steps:
  {long}:
    for_each: [1, 2]
    steps:
      inner: {{run: {{image: alpine, command: [echo]}}}}
""",
    )
    _l, result, _s = compile_file(p, compute="callback")
    states = json.loads(result.files["p.asl.json"])["States"]
    names = [n for n, _ in _task_states(states)]
    assert all(len(n) <= 80 for n in names)
    assert any("~" in n for n in names)
    assert result.summary["shortened_names"] >= 1
    assert compile_file(p, compute="callback")[1].files == result.files


def test_history_estimate_and_limit(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        """pipecast: 1
name: wide
params:
  items: {type: list, default: [ITEMS]}
steps:
  fan:
    for_each: "{{ params.items }}"
    steps:
      work: {run: {image: alpine, command: [echo]}}
""".replace("ITEMS", ", ".join(str(i) for i in range(2000))),
    )
    _l, result, _s = compile_file(p, compute="callback", map_mode="inline")
    assert result.summary["history_events_estimate"] > 2000 * 6
    with pytest.raises(UserError, match="history events"):
        compile_file(p, compute="callback", map_mode="inline", max_history_events=10_000)
    # auto: the fan-out moves to a DISTRIBUTED map and the estimate drops.
    _l, auto, _s = compile_file(
        p, compute="callback", max_history_events=10_000, distributed_map_threshold=5000
    )
    assert auto.summary["history_events_estimate"] < 100
    assert "DISTRIBUTED" in auto.files["wide.asl.json"]


def test_split_over_size_limit(tmp_path: Path) -> None:
    steps = "\n".join(
        f"  s{i}:\n    run: {{image: alpine, command: [echo, '{'x' * 200}']}}\n"
        + (f"    after: [s{i - 1}]" if i else "")
        for i in range(400)
    )
    p = _write(tmp_path, f"pipecast: 1\nname: big\nsteps:\n{steps}\n")
    _l, result, _s = compile_file(p, compute="callback", definition_split_bytes=200_000)
    parts = [f for f in result.files if ".part-" in f]
    assert parts, sorted(result.files)
    assert result.summary["child_state_machines"] == len(parts)
    assert all(len(result.files[f].encode()) <= 200_000 for f in [*parts, "big.asl.json"])
    main = result.files["big.asl.json"]
    assert "states:startExecution.sync:2" in main
    from pipecast_stepfunctions.backend import StepFunctionsBackend

    problems = [d for d in StepFunctionsBackend().validate_output(result.files) if d.severity == "error"]
    assert not problems, problems


def test_wide_fan_out_and_chain_split_into_small_machines(tmp_path: Path) -> None:
    """A 600-wide Parallel, a 300-step chain and a big loop body: every definition stays under
    the budget, the tree of child machines passes both validators, and each step still has
    exactly one task state across all machines."""
    wide = "\n".join(
        f"  w{i}: {{run: {{image: alpine, command: [echo, '{'x' * 300}']}}}}" for i in range(600)
    )
    chain = "\n".join(
        f"  c{i}: {{run: {{image: alpine, command: [echo]}}, after: [{f'c{i - 1}' if i else 'w0'}]}}"
        for i in range(300)
    )
    inner = "\n".join(
        f"      i{i}: {{run: {{image: alpine, command: [echo, '{'y' * 300}']}}}}" for i in range(200)
    )
    p = _write(
        tmp_path,
        f"pipecast: 1\nname: big\nsteps:\n{wide}\n{chain}\n  loop:\n    for_each: [1, 2]\n    steps:\n{inner}\n",
    )
    limit = 100_000
    _l, result, _s = compile_file(p, compute="callback", definition_split_bytes=limit)
    defs = {k: json.loads(v) for k, v in result.files.items() if k.endswith(".asl.json")}
    assert len(defs) > 5
    assert all(len(result.files[k].encode()) <= limit for k in defs), {k: len(result.files[k]) for k in defs}
    tasks = [
        st["Parameters"]["MessageBody"]["spec_uri"]
        for d in defs.values()
        for _n, st in _task_states(d["States"])
        if st.get("Resource", "").endswith("waitForTaskToken")
    ]
    assert len(tasks) == 600 + 300 + 200
    assert all("/_pipecast/specs/" in t for t in tasks)
    # Every child machine is started by exactly one stub somewhere.
    started = [
        st["Parameters"]["StateMachineArn"]
        for d in defs.values()
        for _n, st in _task_states(d["States"])
        if st.get("Resource", "").startswith("arn:aws:states:::states:startExecution")
    ]
    assert sorted(c["arn"] for c in json.loads(result.files["deploy.json"])["children"]) == sorted(started)
    from pipecast_stepfunctions.backend import StepFunctionsBackend

    problems = [d for d in StepFunctionsBackend().validate_output(result.files) if d.severity == "error"]
    assert not problems, problems


def test_single_state_over_the_limit_is_explained(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        f"pipecast: 1\nname: huge\nsteps:\n  s: {{run: {{image: alpine, command: [echo, '{'z' * 1_100_000}']}}}}\n",
    )
    # The command lives in the step spec (S3), not in the definition: it compiles.
    _l, result, _s = compile_file(p, compute="callback")
    assert len(result.files["huge.asl.json"]) < 10_000
    p = _write(
        tmp_path,
        f"pipecast: 1\nname: huge\nsteps:\n  s: {{run: {{image: alpine, command: [echo]}}, inputs: {{x: '{'z' * 1_100_000}'}}}}\n",
    )
    with pytest.raises(UserError, match="a single state cannot be split"):
        compile_file(p, compute="callback")


@pytest.mark.parametrize("compute", ["sagemaker", "batch"])
def test_no_image_is_a_placeholder_that_deploy_refuses(tmp_path, compute):
    # As on Vertex and Azure ML: a python step without an image compiles with a marked
    # placeholder and a warning located in the file; deploy refuses the output.
    from pipecast.api import compile_pipeline, load_checked

    src = tmp_path / "p.yaml"
    src.write_text("pipecast: 1\nname: p\nsteps:\n  a:\n    run: {python: 'm:f'}\n")
    result = compile_pipeline(load_checked(src), "stepfunctions", {"compute": compute})
    (warning,) = [d for d in result.diagnostics if d.code == "placeholder" and "image" in d.message]
    assert warning.severity == "warning" and warning.file == str(src) and warning.line == 4
    assert any("<set image>" in text for text in result.files.values())
    with pytest.raises(UserError) as err:
        BACKEND.deploy(load_checked(src).pipeline, result.files, {"compute": compute})
    assert "<set image>" in err.value.diagnostics[0].message
