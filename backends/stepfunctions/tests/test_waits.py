"""``dag_mode: waits``: any DAG runs in Step Functions with exactly its own ordering.

The plan (SP skeleton + waits) is checked on random DAGs; the emitted waits are executed in
moto with the real worker, against the simulator, on success and on failure.
"""

from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pipecast_stepfunctions import lowering
from pipecast_stepfunctions.waits import WaitPlan, lower_with_waits, plan_makespan, poll_delay, polls_within
from sfn_helpers import compile_file, run_in_moto

from pipecast.simulator import run_pipeline

pytestmark = pytest.mark.stepfunctions

N_SHAPE = (["a", "b", "c", "d"], [("a", "c"), ("b", "c"), ("b", "d")])


def random_dag(rng: random.Random) -> tuple[list[str], list[tuple[str, str]]]:
    n = rng.randint(2, 40)
    names = [f"s{i}" for i in range(n)]
    order = names[:]
    rng.shuffle(order)
    p = rng.uniform(0.05, 0.5)
    return names, [(order[i], order[j]) for i in range(n) for j in range(i + 1, n) if rng.random() < p]


def closure(nodes: list[str], edges: list[tuple[str, str]]) -> set[tuple[str, str]]:
    succ: dict[str, set[str]] = {v: set() for v in nodes}
    for u, v in edges:
        succ[u].add(v)
    out: set[tuple[str, str]] = set()
    for start in nodes:
        stack, seen = [start], set()
        while stack:
            for w in succ[stack.pop()] - seen:
                seen.add(w)
                stack.append(w)
        out |= {(start, w) for w in seen}
    return out


def skeleton_order(sp: lowering.SP) -> set[tuple[str, str]]:
    first, second = lowering._linear_extensions(sp)
    p1 = {x: i for i, x in enumerate(first)}
    p2 = {x: i for i, x in enumerate(second)}
    return {(u, v) for u in p1 for v in p1 if p1[u] < p1[v] and p2[u] < p2[v]}


def test_n_shape_gets_one_wait_and_no_added_order() -> None:
    plan = lower_with_waits(*N_SHAPE)
    assert sum(len(v) for v in plan.waits.values()) == 1
    assert skeleton_order(plan.sp) <= closure(*N_SHAPE)


def test_add_back_retries_edges_that_fit_later() -> None:
    # A "W" under a join: dropping a->jab alone leaves a series-parallel DAG; a single greedy
    # pass rejects ja->report before jab->report is in and ends with 2 waits.
    nodes = ["a", "b", "ja", "jab", "jb", "report"]
    edges = [("a", "ja"), ("a", "jab"), ("b", "jab"), ("b", "jb")]
    edges += [(j, "report") for j in ("ja", "jab", "jb")]
    assert lower_with_waits(nodes, edges).waits == {"jab": ("a",)}


def test_series_parallel_dags_get_no_waits() -> None:
    nodes = ["a", "b", "c", "d"]
    edges = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
    assert lower_with_waits(nodes, edges) == WaitPlan(lowering.lower(nodes, edges), {})


def test_random_dags_are_ordered_exactly() -> None:
    rng = random.Random(7)
    for _ in range(300):
        nodes, edges = random_dag(rng)
        plan = lower_with_waits(nodes, edges)
        want = closure(nodes, edges)
        waited = {(u, v) for v, us in plan.waits.items() for u in us}
        order = skeleton_order(plan.sp)
        assert order <= want  # the skeleton adds no ordering
        assert closure(nodes, [*order, *waited]) == want  # skeleton + waits = the DAG
        assert not waited & order  # no wait the skeleton already guarantees
        dur = {v: rng.choice([0.5, 1.0, 7.0, 30.0]) for v in nodes}
        assert plan_makespan(plan, dur) == pytest.approx(lowering.dag_makespan(nodes, edges, dur))
        assert plan == lower_with_waits(nodes, edges)  # deterministic


def test_polling_delay_model() -> None:
    assert poll_delay(10.0, 5.0) == 10.0  # already done: the first poll sees it
    assert poll_delay(0.0, 1.0) == 1.0
    assert poll_delay(0.0, 2.5) == 3.0  # polls at 0, 1, 3, 7, 15, 31, 61, 91, ...
    assert poll_delay(0.0, 62.0) == 91.0
    assert polls_within(3600) == 124
    plan = lower_with_waits(*N_SHAPE)
    dur = {"a": 1.0, "b": 100.0, "c": 1.0, "d": 1.0}
    assert plan_makespan(plan, dur, poll_delay) >= plan_makespan(plan, dur)


def test_barriers_mode_adds_order_instead() -> None:
    path = Path(__file__).resolve().parents[3] / "tests/conformance/cases/non_series_parallel.yaml"
    _, waits_result, _ = compile_file(path, compute="callback")
    _, barrier_result, _ = compile_file(path, compute="callback", dag_mode="barriers")
    waits_text = waits_result.files["non-series-parallel.asl.json"]
    barrier_text = barrier_result.files["non-series-parallel.asl.json"]
    assert "aws-sdk:s3:getObject" in waits_text and "(wait for " in waits_text
    assert "(wait for " not in barrier_text and "(publish)" not in barrier_text


STEPS = """
import time


def emit(value):
    return value


def slow(value, seconds):
    time.sleep(seconds)
    return value


def add(a, b):
    return a + b


def boom(value):
    time.sleep(1)
    raise RuntimeError("boom")
"""

# fast -> both, slow -> both, slow -> only_slow: an "N". "both" hangs under "fast" in the
# skeleton (the later of two equally deep parents) and waits for "slow" through S3, polling.
PIPELINE = """
pipecast: 1
name: {name}
steps:
  slow:
    run: {{python: "wsteps:{slow}"}}
    inputs: {{value: 10{seconds}}}
    outputs: {{output: int}}
  fast:
    run: {{python: "wsteps:emit"}}
    inputs: {{value: 1}}
    outputs: {{output: int}}
  both:
    run: {{python: "wsteps:add"}}
    inputs: {{a: "{{{{ steps.fast.outputs.output }}}}", b: "{{{{ steps.slow.outputs.output }}}}"}}
    outputs: {{output: int}}
  only_slow:
    run: {{python: "wsteps:emit"}}
    inputs: {{value: "{{{{ steps.slow.outputs.output }}}}"}}
    outputs: {{output: int}}
  after_fast:
    run: {{python: "wsteps:emit"}}
    inputs: {{value: "{{{{ steps.fast.outputs.output }}}}"}}
    outputs: {{output: int}}
  per_item:
    for_each: [1, 2]
    as: k
    steps:
      p:
        run: {{python: "wsteps:slow"}}
        inputs: {{value: "{{{{ k }}}}", seconds: 1}}
        outputs: {{output: int}}
      q:
        run: {{python: "wsteps:emit"}}
        inputs: {{value: "{{{{ steps.slow.outputs.output }}}}"}}
        outputs: {{output: int}}
      r:
        run: {{python: "wsteps:add"}}
        inputs: {{a: "{{{{ steps.p.outputs.output }}}}", b: "{{{{ steps.q.outputs.output }}}}"}}
        outputs: {{output: int}}
      s:
        run: {{python: "wsteps:emit"}}
        inputs: {{value: "{{{{ steps.q.outputs.output }}}}"}}
        outputs: {{output: int}}
    outputs:
      sums: "{{{{ steps.r.outputs.output }}}}"
finally:
  run: {{python: "wsteps:emit"}}
  inputs: {{value: "{{{{ pipeline.status }}}}"}}
outputs:
  total: "{{{{ steps.both.outputs.output }}}}"
  sums: "{{{{ steps.per_item.outputs.sums }}}}"
"""


def write_pipeline(folder: Path, name: str, slow: str, seconds: str) -> Path:
    folder.mkdir()
    (folder / "wsteps.py").write_text(textwrap.dedent(STEPS))
    path = folder / "pipeline.yaml"
    path.write_text(PIPELINE.format(name=name, slow=slow, seconds=seconds))
    return path


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": record["status"],
        "outputs": record.get("outputs"),
        "steps": {k: (v["status"], v.get("outputs")) for k, v in record["steps"].items()},
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    ("slow", "seconds", "status"),
    [("slow", ", seconds: 3", "succeeded"), ("boom", "", "failed")],
    ids=["producer-succeeds", "producer-fails"],
)
def test_waits_execute_in_moto_like_the_simulator(
    aws_env: str, tmp_path: Path, slow: str, seconds: str, status: str
) -> None:
    from pipecast.api import load_checked

    path = write_pipeline(tmp_path / "p", f"waits-{slow}", slow, seconds)
    _, result, _ = compile_file(path, compute="callback")
    text = json.dumps(json.loads(result.files[f"waits-{slow}.asl.json"]))
    assert "(wait for " in text  # the N really is lowered with a wait

    record = run_in_moto(path, timeout=120)
    simulated = run_pipeline(load_checked(path), run_dir=tmp_path / "sim", containers="host")
    assert comparable(record) == comparable(simulated), record.get("_worker_log", "")[-2000:]
    assert record["status"] == status
    steps = record["steps"]
    if status == "succeeded":
        assert record["outputs"] == {"total": 11, "sums": [11, 12]}  # waits inside a Map, per item
        # Every edge of the DAG held: a step started only after each producer ended.
        for u, v in [("fast", "both"), ("slow", "both"), ("slow", "only_slow"), ("fast", "after_fast")]:
            assert steps[v]["started"] >= steps[u]["ended"], (u, v, steps)
        # ... and no ordering was added: after_fast did not wait for slow.
        assert steps["after_fast"]["ended"] < steps["slow"]["ended"]
        # "both" really polled: its wait saw NoSuchKey before slow published its entry.
        errors = [e.get("taskFailedEventDetails", {}).get("error") for e in _history(f"waits-{slow}")]
        assert "S3.NoSuchKeyException" in errors
    else:
        assert steps["slow"]["status"] == "failed"
        assert steps["both"]["status"] == "not_run" and steps["only_slow"]["status"] == "not_run"
        assert steps["finally"]["status"] == "succeeded"


def _history(pipeline: str) -> list[dict[str, Any]]:
    """The events of the (only) execution of the state machine named after ``pipeline``."""
    import boto3

    sfn = boto3.client("stepfunctions")
    machines = [m for m in sfn.list_state_machines()["stateMachines"] if m["name"].endswith(pipeline)]
    assert len(machines) == 1, machines
    (execution,) = sfn.list_executions(stateMachineArn=machines[0]["stateMachineArn"])["executions"]
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution["executionArn"])
    return [e for page in pages for e in page["events"]]


def test_compile_reports_the_waits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipecast.cli import main

    case = Path(__file__).resolve().parents[3] / "tests/conformance/cases/non_series_parallel.yaml"
    argv = ["compile", str(case), "--target", "stepfunctions", "--set", "compute=callback", "-o"]
    assert main([*argv, str(tmp_path / "a")]) == 0
    assert "1 cross-branch wait(s)" in capsys.readouterr().out
    assert main([*argv, str(tmp_path / "b"), "--set", "dag_mode=barriers"]) == 0
    assert "cross-branch" not in capsys.readouterr().out
