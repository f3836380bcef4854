"""Cloud rules (issue 20): what AWS enforces on the compiled output, checked on every example,
every conformance case and the probe pipelines (tests/probes), for every compute.

Each rule cites its source: the botocore service models installed with boto3 (patterns,
lengths, ranges) or the service documentation. A pipeline a compute cannot run must fail to
compile with a named error (``limit``, ``unsupported-feature``, ``resources``), never compile
into something the service rejects.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pipecast_stepfunctions import compute
from pipecast_stepfunctions.deploy import name_of_execution
from pipecast_stepfunctions.names import AWS_NAMES
from pipecast_stepfunctions.paths import MAX_INTRINSICS, intrinsic_calls
from sfn_helpers import compile_file

from pipecast.api import compile_pipeline, load_checked
from pipecast.diagnostics import UserError
from tests.probes import PROBES_DIR, all_pipelines, ids

pytestmark = pytest.mark.stepfunctions

COMPUTES = ("callback", "sagemaker", "batch")
ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com/steps:1"
# local-path: SPEC §14, a local file a cloud target cannot read (named, with the upload hint).
NAMED_ERRORS = {"limit", "unsupported-feature", "resources", "local-path"}


def _model(service: str) -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


def _member(service: str, shape: str, member: str) -> dict[str, Any]:
    return dict(_model(service).shape_for(shape).members[member].metadata)


def _states(states: dict[str, Any], path: str = "") -> Any:
    for name, st in states.items():
        yield name, st
        for br in st.get("Branches", []):
            yield from _states(br["States"])
        if "ItemProcessor" in st:
            yield from _states(st["ItemProcessor"]["States"])


def _fields(value: Any) -> Any:
    """Every ``key.$`` string of a payload template (nested)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str) and k.endswith(".$"):
                yield k, v
            else:
                yield from _fields(v)
    elif isinstance(value, list):
        for v in value:
            yield from _fields(v)


def _name_ok(kind: str, name: str) -> bool:
    pattern, limit, _url = AWS_NAMES[kind]
    return len(name) <= limit and re.fullmatch(pattern, name) is not None


def rule_problems(files: dict[str, str], pipeline_name: str, diagnostics: Any = ()) -> list[str]:
    """Every rule below, on one compiled output; a list of what breaks them."""
    out: list[str] = []
    warned = " ".join(d.message for d in diagnostics if d.code == "image")
    manifest = json.loads(files["deploy.json"])
    machines = [manifest["state_machine"], *manifest["children"]]
    for m in machines:
        if not _name_ok("state_machine", m["name"]):
            out.append(f"state machine name {m['name']!r}")
    # The longest execution name deploy --run can make (see deploy.execution_name).
    ex = name_of_execution(pipeline_name, "20261206T130404Z", "0123abcd")
    if not _name_ok("execution", ex):
        out.append(f"execution name {ex!r}")
    sm = _model("sagemaker")
    runtime_range = dict(sm.shape_for("ProcessingStoppingCondition").members["MaxRuntimeInSeconds"].metadata)
    for m in machines:
        definition = json.loads(files[m["file"]])
        for name, st in _states(definition["States"]):
            out += _state_problems(name, st)
            out += _retry_problems(name, st)
            if st.get("Resource", "") == compute.SAGEMAKER_SYNC:
                out += _sagemaker_problems(name, st, runtime_range, warned)
            if st.get("Resource", "") == compute.BATCH_SYNC:
                out += _batch_problems(name, st)
    out += iam_problems(files, machines)
    if "schedule.json" in files:
        out += _schedule_problems(json.loads(files["schedule.json"]))
    return out


def _state_problems(name: str, st: dict[str, Any]) -> list[str]:
    out = []
    # State names: at most 80 characters.
    # https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html
    if len(name) > 80:
        out.append(f"state name over 80: {name!r}")
    for key in ("Parameters", "ResultSelector", "ItemSelector"):
        for k, v in _fields(st.get(key, {})):
            n = intrinsic_calls(v)
            # https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html
            if n > MAX_INTRINSICS:
                out.append(f"{name}: {key}.{k} has {n} intrinsic calls (max {MAX_INTRINSICS})")
    # Helper S3 states retry throttling / 5xx (issue 20, SF 6).
    if st.get("Resource", "").startswith("arn:aws:states:::aws-sdk:s3:") and not st.get("Retry"):
        out.append(f"{name}: S3 helper state without Retry")
    # TimeoutSeconds / IntervalSeconds / MaxDelaySeconds: positive integers; MaxDelaySeconds
    # below 31622401: https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html
    t = st.get("TimeoutSeconds")
    if t is not None and (not isinstance(t, int) or t < 1 or t > 99_999_999):
        out.append(f"{name}: TimeoutSeconds {t}")
    return out


def _retry_problems(name: str, st: dict[str, Any]) -> list[str]:
    out = []
    for r in st.get("Retry", []):
        if not 1 <= r.get("IntervalSeconds", 1) <= 99_999_999:
            out.append(f"{name}: IntervalSeconds {r['IntervalSeconds']}")
        if not 0 < r.get("MaxDelaySeconds", 1) < 31_622_401:
            out.append(f"{name}: MaxDelaySeconds {r['MaxDelaySeconds']}")
        if not 0 <= r.get("MaxAttempts", 3) <= 99_999_999:
            out.append(f"{name}: MaxAttempts {r['MaxAttempts']}")
    # A wait's history cost must not grow with the producer's run time beyond a few
    # hundred events a day (25,000 events per execution, service-quotas.html above):
    # fast polls end within the hour (Catch), then polls 10 minutes apart.
    for r in st.get("Retry", []):
        if r["ErrorEquals"] != ["S3.NoSuchKeyException"]:
            continue
        caught = any(c["ErrorEquals"] == ["S3.NoSuchKeyException"] for c in st.get("Catch", []))
        slow = r["IntervalSeconds"] >= 600 and r.get("BackoffRate", 2.0) == 1.0
        if not slow and not (caught and r["MaxAttempts"] <= 130):
            out.append(f"{name}: a wait polling {r} costs history in proportion to its length")
    return out


def _sagemaker_problems(
    name: str, st: dict[str, Any], runtime_range: dict[str, Any], warned: str
) -> list[str]:
    out = []
    params = st.get("Parameters", {})
    t = st.get("TimeoutSeconds")
    fmt = params["ProcessingJobName.$"]
    head = re.match(r"States\.Format\('([^']*)\{\}'", fmt)
    assert head, fmt
    job = head.group(1) + "0a1b2c3d-0000-4000-8000-0123456789ab"  # States.UUID()
    if not _name_ok("processing_job", job):
        out.append(f"{name}: ProcessingJobName {job!r}")
    runtime = params["StoppingCondition"]["MaxRuntimeInSeconds"]
    if not runtime_range["min"] <= runtime <= runtime_range["max"]:
        out.append(f"{name}: MaxRuntimeInSeconds {runtime} outside {runtime_range}")
    # The step timeout is run time; the state timeout only a backstop after it.
    if t is not None and t <= runtime:
        out.append(f"{name}: TimeoutSeconds {t} fires before MaxRuntimeInSeconds {runtime}")
    # SageMaker pulls from ECR only: a non-ECR image must be warned about.
    image = params["AppSpecification"]["ImageUri"]
    if compute.ECR_IMAGE.match(image) is None and repr(image) not in warned:
        out.append(f"{name}: image {image} not in ECR and no warning")
    return out


def _batch_problems(name: str, st: dict[str, Any]) -> list[str]:
    out = []
    params = st.get("Parameters", {})
    t = st.get("TimeoutSeconds")
    if not _name_ok("batch_job", params["JobName"]):
        out.append(f"{name}: Batch JobName {params['JobName']!r}")
    if not _name_ok("batch_job_definition", params["JobDefinition"]):
        out.append(f"{name}: Batch job definition {params['JobDefinition']!r}")
    # https://docs.aws.amazon.com/batch/latest/APIReference/API_JobTimeout.html
    attempt = params.get("Timeout", {}).get("AttemptDurationSeconds")
    if attempt is not None and attempt < 60:
        out.append(f"{name}: AttemptDurationSeconds {attempt} < 60")
    if t is not None and (attempt is None or t <= attempt):
        out.append(f"{name}: TimeoutSeconds {t} is not a backstop after the attempt duration")
    return out


def _schedule_problems(req: dict[str, Any]) -> list[str]:
    out = []
    # EventBridge Scheduler cron: six fields (min hour dom month dow year), exactly one of
    # the day fields '?', weekdays 1-7: https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#cron-based
    cron = re.fullmatch(r"cron\((.*)\)", req["ScheduleExpression"])
    fields = cron.group(1).split() if cron else []
    if len(fields) != 6 or [fields[2], fields[4]].count("?") != 1:
        out.append(f"schedule expression {req['ScheduleExpression']!r} is not EventBridge cron")
    elif fields[4] != "?" and any(not 1 <= int(d) <= 7 for d in re.findall(r"\d+", fields[4].split("/")[0])):
        out.append(f"schedule weekdays {fields[4]!r} outside 1-7")
    from botocore.validate import ParamValidator

    report = ParamValidator().validate(req, _model("scheduler").operation_model("CreateSchedule").input_shape)
    if report.has_errors():
        out.append(report.generate_report())
    for member in ("Name", "GroupName", "ScheduleExpressionTimezone", "ScheduleExpression"):
        meta = _member("scheduler", "CreateScheduleInput", member)
        value = req[member]
        if len(value) > meta.get("max", 10**9) or not re.fullmatch(meta.get("pattern", ".*"), value):
            out.append(f"schedule {member} {value!r} breaks {meta}")
    return out


#: What each service integration needs (the docs cited in pipecast_stepfunctions.iam).
NEEDS = {
    compute.SAGEMAKER_SYNC: {
        "sagemaker:CreateProcessingJob",
        "sagemaker:DescribeProcessingJob",
        "sagemaker:StopProcessingJob",
        "events:PutTargets",
        "events:PutRule",
        "events:DescribeRule",
        "iam:PassRole",
        "s3:GetObject",
        "s3:PutObject",
    },
    compute.BATCH_SYNC: {
        "batch:SubmitJob",
        "batch:DescribeJobs",
        "batch:TerminateJob",
        "events:PutTargets",
        "events:PutRule",
        "events:DescribeRule",
    },
    compute.SQS_WAIT: {"sqs:SendMessage"},
    compute.S3_PUT: {"s3:PutObject"},
    compute.S3_GET: {"s3:GetObject", "s3:ListBucket"},
    "arn:aws:states:::states:startExecution.sync:2": {
        "states:StartExecution",
        "states:DescribeExecution",
        "states:StopExecution",
        "events:PutRule",
    },
}


def iam_problems(files: dict[str, str], machines: list[dict[str, Any]]) -> list[str]:
    """The emitted policy grants what every used integration needs, within IAM's quota; the
    trust policy names the services that assume the role."""
    out: list[str] = []
    policy = json.loads(files["iam-policy.json"])
    trust = json.loads(files["iam-trust-policy.json"])
    granted = {a for st in policy["Statement"] for a in st["Action"]}
    principals = set(trust["Statement"][0]["Principal"]["Service"])
    for m in machines:
        for name, st in _states(json.loads(files[m["file"]])["States"]):
            missing = NEEDS.get(st.get("Resource", ""), set()) - granted
            if missing:
                out.append(f"{name}: the role lacks {sorted(missing)}")
            mode = st.get("ItemProcessor", {}).get("ProcessorConfig", {}).get("Mode")
            if mode == "DISTRIBUTED" and "states:StartExecution" not in granted:
                out.append(f"{name}: a distributed map needs states:StartExecution")
            if st.get("Resource") == compute.SAGEMAKER_SYNC and "sagemaker.amazonaws.com" not in principals:
                out.append("SageMaker runs jobs as the role: trust sagemaker.amazonaws.com")
    if "states.amazonaws.com" not in principals:
        out.append("trust policy without states.amazonaws.com")
    if "schedule.json" in files and "scheduler.amazonaws.com" not in principals:
        out.append("the schedule's target role must trust scheduler.amazonaws.com")
    # Inline role policies: at most 10,240 characters (whitespace not counted).
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html
    size = len(json.dumps(policy, separators=(",", ":")))
    if size > 10_240:
        out.append(f"iam-policy.json is {size} characters (inline policies: 10,240)")
    return out


def test_name_rules_match_botocore() -> None:
    """Where botocore has a pattern and a length for a name, the table uses exactly those."""
    for kind, service, shape, member in [
        ("schedule", "scheduler", "CreateScheduleInput", "Name"),
        ("processing_job", "sagemaker", "CreateProcessingJobRequest", "ProcessingJobName"),
        ("state_machine", "stepfunctions", "CreateStateMachineInput", "name"),
        ("execution", "stepfunctions", "StartExecutionInput", "name"),
    ]:
        meta = _member(service, shape, member)
        pattern, limit, _url = AWS_NAMES[kind]
        assert limit == meta["max"], kind
        if "pattern" in meta:
            assert pattern == meta["pattern"], kind


@pytest.mark.parametrize("compute_name", COMPUTES)
@pytest.mark.parametrize("path", all_pipelines(), ids=ids)
def test_cloud_rules(path: Path, compute_name: str) -> None:
    try:
        # The check phase first, as `pipecast compile` runs it: a feature the target declares
        # unsupported (SPEC §13) is a named error before anything is emitted.
        compile_pipeline(load_checked(path), "stepfunctions", {"compute": compute_name, "default_image": ECR})
        loaded, result, _s = compile_file(path, compute=compute_name, default_image=ECR)
    except UserError as exc:
        codes = {d.code for d in exc.diagnostics}
        assert codes & NAMED_ERRORS, exc.diagnostics
        return
    problems = rule_problems(result.files, loaded.pipeline.name, result.diagnostics)
    assert not problems, "\n".join(problems)
    # The history estimate is within the 25,000 events an execution may have.
    # https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html
    assert result.summary["history_events_estimate"] <= 25_000


def test_ten_day_timeout_is_a_named_error_on_sagemaker_only() -> None:
    """MaxRuntimeInSeconds is at most 777,600 s (botocore); Batch and callback have no cap."""
    path = PROBES_DIR / "timeout10d.yaml"
    with pytest.raises(UserError) as exc:
        compile_file(path, compute="sagemaker", default_image=ECR)
    (d,) = exc.value.diagnostics
    assert d.code == "limit" and "777600" in d.message and d.path[-1] == "timeout"
    _l, result, _s = compile_file(path, compute="batch", default_image=ECR)
    run = next(
        st
        for _n, st in _states(json.loads(result.files["ten-day-timeout.asl.json"])["States"])
        if st.get("Resource") == compute.BATCH_SYNC
    )
    assert run["Parameters"]["Timeout"] == {"AttemptDurationSeconds": 864_000}
    assert run["TimeoutSeconds"] == 864_000 + 6 * 3600


def test_long_names_fit_every_aws_name_field() -> None:
    path = PROBES_DIR / "long_names.yaml"
    for c in COMPUTES:
        loaded, result, _s = compile_file(path, compute=c, default_image=ECR, name_prefix="a-sixteen-prefix")
        assert not rule_problems(result.files, loaded.pipeline.name)
        text = "".join(result.files.values())
        assert "~" not in json.loads(result.files["schedule.json"])["Name"]
        assert (
            "States.Format('a-step-name-that-is-e" not in text
            or "~" not in text.split("ProcessingJobName")[1][:80]
        )


def test_seven_branches_stay_within_ten_calls() -> None:
    """7 branches: two join Passes (5 + 2 branches), each field at most 10 calls (the rule in
    rule_problems); one join of 7 took 14."""
    _l, result, _s = compile_file(PROBES_DIR / "parallel7.yaml", compute="callback")
    definition = json.loads(result.files["parallel-seven.asl.json"])
    joins = {n: st for n, st in definition["States"].items() if n.startswith("Join after")}
    assert len(joins) == 2
    assert max(intrinsic_calls(st["Parameters"]["steps.$"]) for st in joins.values()) == 10


def test_non_ecr_image_warns_on_sagemaker() -> None:
    path = PROBES_DIR / "quarterly.yaml"
    _l, result, _s = compile_file(path, compute="sagemaker", default_image="python:3.11-slim")
    assert [d.code for d in result.diagnostics if d.code == "image"] == ["image"]
    _l, result, _s = compile_file(path, compute="sagemaker", default_image=ECR)
    assert not [d for d in result.diagnostics if d.code == "image"]


def test_iam_policies_load_into_iam(aws_env: str) -> None:
    """The policy documents are accepted by (moto's) IAM: CreateRole + PutRolePolicy."""
    import boto3

    iam = boto3.client("iam", region_name="us-east-1")
    for i, c in enumerate(COMPUTES):
        _l, result, _s = compile_file(
            PROBES_DIR.parent.parent / "examples/churn/pipeline.yaml", compute=c, default_image=ECR
        )
        role = f"pipecast-iam-check-{i}"
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=result.files["iam-trust-policy.json"])
        iam.put_role_policy(
            RoleName=role, PolicyName="pipecast", PolicyDocument=result.files["iam-policy.json"]
        )
        got = iam.get_role_policy(RoleName=role, PolicyName="pipecast")["PolicyDocument"]
        assert got == json.loads(result.files["iam-policy.json"])


def test_long_waits_cost_a_bounded_history(tmp_path: Path) -> None:
    """A wait on a 48-hour producer: ~1,200 events (was ~17,000); the estimate assumes the
    producer's timeout (every attempt), not an hour."""
    from pipecast_stepfunctions import waits

    assert 3 * waits.polls_within(48 * 3600) < 1_500
    assert waits.polls_within(24 * 3600) - waits.polls_within(3600) == 138  # 10-minute polls
    _l, short, _s = compile_file(PROBES_DIR / "hour_steps.yaml", compute="callback")
    text = (PROBES_DIR / "hour_steps.yaml").read_text().replace("timeout: 2h}", "timeout: 48h}")
    (tmp_path / "pipeline.yaml").write_text(text)
    _l, long, _s = compile_file(tmp_path / "pipeline.yaml", compute="callback")
    grown = long.summary["history_events_estimate"] - short.summary["history_events_estimate"]
    assert 3 * (waits.polls_within(48 * 3600) - waits.polls_within(2 * 3600)) == grown


def test_state_over_256_kib_is_a_compile_error(tmp_path: Path) -> None:
    """2,500 independent steps: every entry is in the state after their join (nothing to
    drop), over 256 KiB, which fails the execution past every Catch
    (States.DataLimitExceeded); compile says so first. The same steps in a chain compile:
    a long sequence drops the entries no later state reads."""
    n = 2500

    def write(chain: bool) -> Path:
        lines = ["pipecast: 1", "name: many", "steps:"]
        for i in range(n):
            reads = (
                f", inputs: {{value: '{{{{ steps.s{i - 1}.outputs.metric_value }}}}'}}" if chain and i else ""
            )
            lines.append(
                f"  s{i}: {{run: {{python: 'probe:emit'}}{reads}, outputs: {{metric_value: float, model: Model}}}}"
            )
        path = tmp_path / ("chain" if chain else "wide") / "pipeline.yaml"
        path.parent.mkdir()
        path.write_text("\n".join(lines) + "\n")
        return path

    with pytest.raises(UserError) as exc:
        compile_file(write(chain=False), compute="callback")
    assert [d.code for d in exc.value.diagnostics] == ["limit"]
    assert "262144" in exc.value.diagnostics[0].message
    _l, result, _s = compile_file(write(chain=True), compute="callback")
    assert result.summary["state_bytes_estimate"] < 20_000
    _l, result, _s = compile_file(PROBES_DIR / "loop60.yaml", compute="callback")
    assert 0 < result.summary["state_bytes_estimate"] < result.summary["state_bytes_limit"] == 262_144


def test_any_field_over_ten_intrinsic_calls_is_a_named_error() -> None:
    """Every field of every state is checked after emitting: one over 10 calls is a compile
    error naming the state, not a rejected deploy."""
    from pipecast_stepfunctions.compile import _check_intrinsics

    deep = "$.a"
    for _ in range(11):
        deep = f"States.JsonToString({deep})"
    definition = {
        "StartAt": "p",
        "States": {
            "p": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "x", "States": {"x": {"Type": "Pass", "Parameters": {"v": [{"w.$": deep}]}}}}
                ],
            }
        },
    }
    with pytest.raises(UserError) as exc:
        _check_intrinsics("m.asl.json", definition)
    (d,) = exc.value.diagnostics
    assert d.code == "limit" and "11 intrinsic function calls" in d.message and "'x'" in d.message


def test_long_sequence_drops_unread_entries_and_runs(aws_env: str, tmp_path: Path) -> None:
    """Past 25 top-level steps the state keeps only the entries later states read (here the
    first step, read by the last and by the pipeline outputs); the run in moto gives the
    simulator's outputs."""
    import shutil

    from sfn_helpers import run_in_moto

    from pipecast.api import load_checked
    from pipecast.simulator import run_pipeline

    shutil.copy(PROBES_DIR / "probe.py", tmp_path / "probe.py")
    n = 30
    lines = [
        "pipecast: 1",
        "name: chain",
        "steps:",
        "  s0: {run: {python: 'probe:emit'}, inputs: {value: 7}, outputs: {output: int}}",
    ]
    for i in range(1, n):
        lines.append(
            f"  s{i}: {{run: {{python: 'probe:emit'}}, inputs: {{value: '{{{{ steps.s{i - 1}.outputs.output }}}}'}}, "
            "outputs: {output: int}}"
        )
    lines.append(
        f"  last: {{run: {{python: 'probe:emit'}}, inputs: {{value: '{{{{ steps.s{n - 1}.outputs.output }}}}', "
        "other: '{{ steps.s0.outputs.output }}'}, outputs: {output: int}}"
    )
    lines.append("outputs: {first: '{{ steps.s0.outputs.output }}', last: '{{ steps.last.outputs.output }}'}")
    path = tmp_path / "pipeline.yaml"
    path.write_text("\n".join(lines) + "\n")
    _l, result, _s = compile_file(path, compute="callback")
    states = json.loads(result.files["chain.asl.json"])["States"]
    (drop,) = [st for name, st in states.items() if name.startswith("Drop entries")]
    assert sorted(drop["Parameters"]["steps"]) == ["s0.$", "s24.$"]
    record = run_in_moto(path, timeout=120)
    expected = run_pipeline(load_checked(path), run_dir=tmp_path / "sim", containers="host")
    assert record["status"] == expected["status"] == "succeeded"
    assert record["outputs"] == expected["outputs"] == {"first": 7, "last": 7}


def test_quarterly_cron_is_eventbridge_cron() -> None:
    _l, result, _s = compile_file(PROBES_DIR / "quarterly.yaml", compute="callback")
    req = json.loads(result.files["schedule.json"])
    assert req["ScheduleExpression"] == "cron(0 6 1 1,4,7,10 ? *)"
    assert req["ScheduleExpressionTimezone"] == "Asia/Kolkata"


def test_a_string_with_many_control_segments_is_formatted_in_parts(aws_env: str, tmp_path: Path) -> None:
    """Text with newlines goes into States.Format as States.Base64Decode (one call each): a
    string input with 11 of them is built in parts by a '(format inputs)' Pass first."""
    value = "\\n".join("{{ params.s }}" for _ in range(12))
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        "pipecast: 1\nname: many-lines\nparams: {s: {type: str, default: x}}\nsteps:\n"
        f'  w: {{run: {{python: "probe:emit"}}, inputs: {{value: "{value}"}}, outputs: {{output: str}}}}\n'
    )
    _l, result, _s = compile_file(path, compute="callback")
    states = json.loads(result.files["many-lines.asl.json"])["States"]
    fmt = states["w (format inputs)"]
    assert fmt["ResultPath"] == "$.fmt" and len(fmt["Parameters"]["value"]) == 2
    assert not rule_problems(result.files, "many-lines")
    import shutil

    from sfn_helpers import run_in_moto

    shutil.copy(PROBES_DIR / "probe.py", tmp_path / "probe.py")
    path.write_text(
        path.read_text().replace(
            "outputs: {output: str}}",
            "outputs: {output: str}}\noutputs: {out: '{{ steps.w.outputs.output }}'}",
        )
    )
    record = run_in_moto(path, timeout=120)
    assert record["outputs"] == {"out": "\n".join(["x"] * 12)}
