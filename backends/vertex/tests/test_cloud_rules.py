"""Cloud rules (issue 20): what Vertex AI Pipelines enforces on the compiled output, checked
on every example, every conformance case and the probe pipelines (tests/probes).

Each rule cites its source (the kfp 2.17 compiler, the PipelineSpec proto, the Vertex REST
reference). Conditions are evaluated with a real CEL implementation (cel-python) against the
reference semantics (:func:`pipecast.ir.condition.evaluate`), with parameter values as Vertex
hands them over: ``google.protobuf.Value``, where every number is a double.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pipecast_vertex.conditions import to_cel
from pipecast_vertex.schedule import FAIL_FAST

from pipecast.api import compile_pipeline, load_checked
from pipecast.diagnostics import UserError
from pipecast.ir.condition import evaluate, parse_condition
from tests.probes import PROBES_DIR, all_pipelines, ids

pytestmark = pytest.mark.vertex
ROOT = Path(__file__).resolve().parents[3]
SETTINGS = {"image": "img:1", "pipeline_root": "gs://b/root", "project": "p1"}
# RetryPolicy.backoff_max_duration: "Max allowed is 1 hour - higher value will be capped":
# https://github.com/kubeflow/pipelines/blob/master/api/v2alpha1/pipeline_spec.proto
MAX_BACKOFF_S = 3600
# A path compared with an int literal without a cast: a double against a CEL int, which kfp
# never emits ("Type-cast to so CEL does not complain", _resolve_condition_operands in
# https://github.com/kubeflow/pipelines/blob/master/sdk/python/kfp/compiler/pipeline_spec_builder.py).
UNCAST = re.compile(
    r"(?<![\w(])inputs\.parameter_values\['[^']+'\]\s*(==|!=|<=|>=|<|>)\s*-?\d+(?![\d.eE])"
    r"|(?<![\w.eE+-])-?\d+\s*(==|!=|<=|>=|<|>)\s*inputs\.parameter_values"
)


def _walk(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        for k, v in value.items():
            if k == key:
                yield v
            yield from _walk(v, key)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v, key)


def _seconds(duration: str) -> float:
    return float(duration.rstrip("s"))


def rule_problems(files: dict[str, str]) -> list[str]:
    import celpy

    out: list[str] = []
    env = celpy.Environment()
    for rel, text in files.items():
        doc = yaml.safe_load(text) if rel.endswith((".yaml", ".json")) else None
        if not isinstance(doc, dict):
            continue
        for cond in _walk(doc, "condition"):
            if not isinstance(cond, str):
                continue
            if UNCAST.search(cond):
                out.append(f"{rel}: uncast comparison with an int: {cond}")
            try:
                env.compile(cond)
            except Exception as exc:
                out.append(f"{rel}: CEL does not parse {cond!r}: {exc}")
        for policy in _walk(doc, "retryPolicy"):
            bmax = policy.get("backoffMaxDuration")
            if bmax is not None and _seconds(bmax) > MAX_BACKOFF_S:
                out.append(f"{rel}: backoffMaxDuration {bmax} over Vertex's 1 hour cap")
        if rel.endswith("schedule.json"):
            runtime = doc["createPipelineJobRequest"]["pipelineJob"]["runtimeConfig"]
            # SPEC §10 needs fail-fast; Vertex's default keeps starting independent tasks.
            # https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.pipelineJobs#PipelineFailurePolicy
            if runtime.get("failurePolicy") != FAIL_FAST:
                out.append("schedule.json: runtimeConfig.failurePolicy is not FAIL_FAST")
            # Schedule.displayName: at most 128 UTF-8 characters.
            # https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.schedules#Schedule
            if len(doc["displayName"]) > 128:
                out.append("schedule.json: displayName over 128 characters")
    return out


@pytest.mark.parametrize("path", all_pipelines(), ids=ids)
def test_cloud_rules(path: Path) -> None:
    loaded = load_checked(path)
    try:
        result = compile_pipeline(loaded, "vertex", SETTINGS)
    except UserError as exc:
        assert {d.code for d in exc.diagnostics} & {
            "unsupported-feature",
            "unsupported-accelerator",
            "limit",
            "resources",
        }
        return
    problems = rule_problems(result.files)
    assert not problems, "\n".join(problems)


TYPES = {"params.n": "int", "params.f": "float", "params.s": "str", "params.b": "bool", "x": "any"}


def _lookup(ref: Any) -> tuple[str, str]:
    return f"pipelinechannel--{ref.name}", TYPES[ref.path]


@pytest.mark.parametrize(
    "text",
    [
        "params.n > 2",
        "params.n == 3",
        "params.f >= 1",
        "params.n < params.f",
        "x > 3",
        "x == 2",
        "x in [1, 2, 5]",
        "params.s == 'a' and not params.b",
        "params.n in [1, 3]",
        "params.b",
    ],
)
@pytest.mark.parametrize(
    "values",
    [
        {"n": 3, "f": 1.0, "s": "a", "b": False, "x": 5},
        {"n": 1, "f": 2.5, "s": "b", "b": True, "x": 2},
    ],
)
def test_conditions_evaluate_in_cel_like_the_simulator(text: str, values: dict[str, Any]) -> None:
    import celpy

    expr = parse_condition(text)
    cel = to_cel(expr, _lookup)
    assert not UNCAST.search(cel), cel
    env = celpy.Environment()
    # What Vertex passes: protobuf Values (every number a double).
    wire = {
        f"pipelinechannel--{k}": float(v) if isinstance(v, int) and not isinstance(v, bool) else v
        for k, v in values.items()
    }
    got = env.program(env.compile(cel)).evaluate({"inputs": celpy.json_to_cel({"parameter_values": wire})})

    def resolve(ref: Any) -> Any:
        return values[ref.name if ref.path != "x" else "x"]

    assert bool(got) == bool(evaluate(expr, resolve)), (cel, values)


def test_fail_fast_in_the_run_request_and_the_schedule() -> None:
    from google.auth.credentials import AnonymousCredentials
    from pipecast_vertex.deploy import build_job
    from pipecast_vertex.settings import VertexSettings

    loaded = load_checked(PROBES_DIR / "quarterly.yaml")
    result = compile_pipeline(loaded, "vertex", SETTINGS)
    job = build_job(
        loaded.pipeline, result.files, VertexSettings(**SETTINGS), credentials=AnonymousCredentials()
    )
    assert job.to_dict()["runtimeConfig"]["failurePolicy"] == FAIL_FAST
    schedule = json.loads(result.files["quarterly.schedule.json"])
    assert schedule["createPipelineJobRequest"]["pipelineJob"]["runtimeConfig"]["failurePolicy"] == FAIL_FAST


def test_max_delay_over_an_hour_is_retried_by_the_runtime() -> None:
    """Vertex would cap backoffMaxDuration at 1 h; the runtime retries with SPEC timing."""
    loaded = load_checked(PROBES_DIR / "timeout10d.yaml")
    result = compile_pipeline(loaded, "vertex", SETTINGS)
    doc = yaml.safe_load(result.files["ten-day-timeout.yaml"])
    assert not list(_walk(doc, "retryPolicy"))
    assert '\\"attempts\\":3' in result.files["ten-day-timeout.yaml"]
