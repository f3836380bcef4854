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
from pipecast.ir.condition import evaluate
from pipecast.passes.parse import parse_condition
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


def collected_into_conditions(doc: dict[str, Any]) -> list[str]:
    """Condition tasks binding a collected artifact list straight from a sibling task: a shape
    kfp 2.17 never writes (``build_component_spec_for_group`` declares a ``dsl.Collected``
    entering a condition group as a parameter, in
    https://github.com/kubeflow/pipelines/blob/master/sdk/python/kfp/compiler/pipeline_spec_builder.py)."""
    comps = doc.get("components", {})
    dags = [doc.get("root", {}).get("dag", {}), *(c.get("dag", {}) for c in comps.values())]
    out = []
    for dag in dags:
        for tname, task in dag.get("tasks", {}).items():
            if not task.get("triggerPolicy", {}).get("condition"):
                continue
            defs = comps.get(task["componentRef"]["name"], {}).get("inputDefinitions", {})
            for name, binding in task.get("inputs", {}).get("artifacts", {}).items():
                if "taskOutputArtifact" in binding and defs.get("artifacts", {}).get(name, {}).get(
                    "isArtifactList"
                ):
                    out.append(
                        f"condition task {tname!r} binds the collected artifact list {name!r} from a task"
                    )
    return out


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
        out.extend(f"{rel}: {p}" for p in collected_into_conditions(doc))
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
            "local-path",  # SPEC §14: a cloud target cannot read the user's disk
        }
        return
    problems = rule_problems(result.files)
    assert not problems, "\n".join(problems)


TYPES = {"params.n": "int", "params.f": "float", "params.s": "str", "params.b": "bool", "x": "any"}


def _lookup(ref: Any) -> tuple[str, str]:
    return f"pipelinechannel--{ref.name}", TYPES[ref.path]


def _typed(expr: Any) -> Any:
    """The condition as the resolve pass hands it over: each path typed (here from TYPES)."""
    from pipecast.ir import condition as c

    if isinstance(expr, c.Path):
        return c.Path(expr.ref, TYPES[expr.ref.path])
    if isinstance(expr, c.Not):
        return c.Not(_typed(expr.operand))
    if isinstance(expr, c.BoolOp):
        return c.BoolOp(expr.op, tuple(_typed(o) for o in expr.operands))
    if isinstance(expr, c.Compare):
        return c.Compare(expr.op, _typed(expr.left), _typed(expr.right))
    if isinstance(expr, c.In):
        return c.In(_typed(expr.operand), expr.options)
    return expr


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

    expr = _typed(parse_condition(text))
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


COLLECTED_WHEN = """
pipecast: 1
name: collected-when
params:
  flag: {type: str, default: "yes"}
steps:
  each:
    for_each: ["a", "b", "c"]
    as: x
    steps:
      make:
        run: {python: "cwhen:write_file"}
        inputs: {text: "{{ x }}"}
        outputs: {out: Dataset}
    outputs: {parts: "{{ steps.each_part_placeholder }}"}
  join:
    when: "params.flag == 'yes'"
    run: {python: "cwhen:join"}
    inputs: {parts: "{{ steps.each.outputs.parts }}"}
    outputs: {output: str}
  gate:
    when: "params.flag == 'yes'"
    steps:
      join2:
        run: {python: "cwhen:join"}
        inputs: {parts: "{{ steps.each.outputs.parts }}"}
        outputs: {output: str}
""".replace("steps.each_part_placeholder", "steps.make.outputs.out")
CWHEN = """
from pathlib import Path


def write_file(text: str, out: str) -> None:
    Path(out).write_text(text)


def join(parts: list) -> str:
    return ",".join(Path(p).read_text() for p in parts)
"""


KFP_COLLECTED_WHEN = """
import sys
from typing import List

from kfp import compiler, dsl
from kfp.dsl import Dataset, Input, Output


@dsl.component(base_image="python:3.11-slim")
def make(x: str, out: Output[Dataset]):
    with open(out.path, "w") as f:
        f.write(x)


@dsl.component(base_image="python:3.11-slim")
def join(parts: Input[List[Dataset]]) -> str:
    return ",".join(open(p.path).read() for p in parts)


@dsl.pipeline(name="branch")
def branch(parts: Input[List[Dataset]], flag: str):
    with dsl.If(flag == "yes"):
        join(parts=parts)


@dsl.pipeline(name="p")
def nested(flag: str = "yes"):
    with dsl.ParallelFor(["a", "b", "c"]) as x:
        t = make(x=x)
    branch(parts=dsl.Collected(t.outputs["out"]), flag=flag)


compiler.Compiler().compile(nested, sys.argv[1])
try:

    @dsl.pipeline(name="p")
    def direct(flag: str = "yes"):
        with dsl.ParallelFor(["a", "b", "c"]) as x:
            t = make(x=x)
        with dsl.If(flag == "yes"):
            join(parts=dsl.Collected(t.outputs["out"]))

except TypeError as exc:
    print("direct:", type(exc).__name__, exc)
"""


def _kfp_collected_when(path: Path) -> dict[str, Any]:
    """kfp's own compile of the equivalent DSL. ``dsl.If`` over ``dsl.Collected(<artifact>)``
    does not compile in kfp 2.17 (a TypeError), so the condition sits in a nested pipeline that
    takes ``Input[List[Dataset]]``, the one way kfp writes that data flow."""
    import subprocess
    import sys

    script = path.with_suffix(".py")
    script.write_text(KFP_COLLECTED_WHEN)
    proc = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("direct: TypeError"), proc.stdout
    return yaml.safe_load(path.read_text())


def _list_shape(doc: dict[str, Any]) -> set[tuple[str, str, bool]]:
    """How each isArtifactList input of a DAG component is bound: (binding kind where the DAG
    task is, whether that task has a condition, the binding inside the DAG)."""
    comps = doc["components"]
    dags = [doc["root"]["dag"], *(c["dag"] for c in comps.values() if "dag" in c)]
    out = set()
    for dag in dags:
        for task in dag["tasks"].values():
            comp = comps[task["componentRef"]["name"]]
            if "dag" not in comp:
                continue
            for name, binding in task.get("inputs", {}).get("artifacts", {}).items():
                if not comp["inputDefinitions"]["artifacts"][name].get("isArtifactList"):
                    continue
                inside = {
                    kind
                    for t in comp["dag"]["tasks"].values()
                    for b in t.get("inputs", {}).get("artifacts", {}).values()
                    if b.get("componentInputArtifact") == name
                    for kind in b
                }
                for kind in sorted(inside):
                    out.add((next(iter(binding)), "condition" in task.get("triggerPolicy", {}), kind))
    return out


def test_collected_artifacts_into_a_condition_take_kfps_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Vertex rule 4 (issue 20): a for_each's collected artifacts read under 'when' (on a
    step and on a group) compile to the shape kfp writes, and run in kfp.local like the simulator."""
    from kfp_local import run_local

    from pipecast.simulator import run_pipeline

    project = tmp_path / "project"
    project.mkdir()
    (project / "pipeline.yaml").write_text(COLLECTED_WHEN)
    (project / "cwhen.py").write_text(CWHEN)
    loaded = load_checked(project / "pipeline.yaml")
    result = compile_pipeline(loaded, "vertex", SETTINGS)
    ours = yaml.safe_load(result.files["collected-when.yaml"])
    assert collected_into_conditions(ours) == []
    kfp = _kfp_collected_when(tmp_path / "reference.yaml")
    assert _list_shape(kfp) == {
        ("taskOutputArtifact", False, "componentInputArtifact"),  # the nested pipeline task
        ("componentInputArtifact", True, "componentInputArtifact"),  # its dsl.If
    }
    assert _list_shape(ours) == _list_shape(kfp)
    for flag in ("yes", "no"):
        monkeypatch.chdir(tmp_path)
        expected = run_pipeline(
            loaded, params={"flag": flag}, run_dir=tmp_path / f"sim-{flag}", containers="host", seed=1
        )
        spec = tmp_path / "collected-when.yaml"
        spec.write_text(result.files[spec.name])
        work = tmp_path / f"kfp-{flag}"
        work.mkdir()
        record = run_local(spec, {"flag": flag}, work, monkeypatch, [project], index=loaded.index)
        assert record["status"] == expected["status"] == "succeeded"
        for step in ("join", "join2"):
            want = expected["steps"][step]
            assert record["steps"].get(step, {"status": "skipped"})["status"] == want["status"], step
            if flag == "yes":
                assert record["steps"][step]["outputs"] == want["outputs"] == {"output": "a,b,c"}
