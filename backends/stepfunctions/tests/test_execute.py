"""Execute compiled state machines in moto (compute=callback) with the real ``pipecast worker``.

Each test deploys through the backend's own ``deploy(run=True)`` and checks the run record
built from the execution history against expectations written from SPEC semantics.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sfn_helpers import REPO, run_in_moto

pytestmark = [pytest.mark.stepfunctions, pytest.mark.slow]


def _pipeline(tmp_path: Path, body: str, code: str = "") -> Path:
    (tmp_path / "stepsmod.py").write_text(code)
    p = tmp_path / "pipeline.yaml"
    p.write_text(body)
    return p


STEPS = """
import os, pathlib

def add(a, b):
    return a + b

def flaky(marker):
    p = pathlib.Path(marker)
    n = int(p.read_text()) + 1 if p.exists() else 1
    p.write_text(str(n))
    if n < 3:
        raise RuntimeError(f"attempt {n} fails")
    return n

def boom():
    raise RuntimeError("always fails")

def note(status):
    return status
"""


def test_churn_example(aws_env: str) -> None:
    rec = run_in_moto(REPO / "examples/churn/pipeline.yaml")
    assert rec["status"] == "succeeded", rec
    steps = rec["steps"]
    assert {k for k in steps if k.startswith("train[")} == {"train[0]", "train[1]"}
    assert steps["pick"]["outputs"]["best"] == max(
        steps["train[0]"]["outputs"]["auc"], steps["train[1]"]["outputs"]["auc"]
    )
    assert steps["finally"]["status"] == "succeeded"
    # Exactly one branch of the condition ran.
    assert {steps["register"]["status"], steps["alert"]["status"]} == {"succeeded", "skipped"}


def test_retry_then_success_and_exhausted_with_finally(aws_env: str, tmp_path: Path) -> None:
    marker = tmp_path / "count"
    p = _pipeline(
        tmp_path,
        f"""pipecast: 1
name: retries
steps:
  flaky:
    run: {{python: "stepsmod:flaky"}}
    inputs: {{marker: "{marker}"}}
    outputs: {{n: int}}
    retry: {{attempts: 3, delay: 0.01, backoff: 1}}
  boom:
    run: {{python: "stepsmod:boom"}}
    after: [flaky]
    retry: {{attempts: 2, delay: 0.01}}
finally:
  run: {{python: "stepsmod:note"}}
  inputs: {{status: "{{{{ pipeline.status }}}}"}}
  outputs: {{s: str}}
""",
        STEPS,
    )
    rec = run_in_moto(p)
    assert rec["status"] == "failed", rec
    assert rec["steps"]["flaky"]["status"] == "succeeded", rec["_worker_log"]
    # compute=callback: the worker retries inside one task (see docs), so the marker file
    # proves the three attempts.
    assert marker.read_text() == "3"
    assert rec["steps"]["flaky"]["outputs"] == {"n": 3}
    assert rec["steps"]["boom"]["status"] == "failed"
    assert rec["steps"]["finally"]["status"] == "succeeded"
    assert rec["steps"]["finally"]["outputs"] == {"s": "failed"}


def test_when_else_fan_out_nested_and_non_sp_dag(aws_env: str, tmp_path: Path) -> None:
    p = _pipeline(
        tmp_path,
        """pipecast: 1
name: shapes
params:
  xs: {type: list, default: [1, 2]}
  flag: {type: bool, default: true}
steps:
  a: {run: {python: "stepsmod:add"}, inputs: {a: 1, b: 1}, outputs: {v: int}}
  b: {run: {python: "stepsmod:add"}, inputs: {a: 2, b: 2}, outputs: {v: int}}
  c: {run: {python: "stepsmod:add"}, inputs: {a: "{{ steps.a.outputs.v }}", b: 0}, outputs: {v: int}}
  d: {run: {python: "stepsmod:add"}, inputs: {a: "{{ steps.a.outputs.v }}", b: "{{ steps.b.outputs.v }}"}, outputs: {v: int}}
  outer:
    for_each: "{{ params.xs }}"
    as: x
    steps:
      inner:
        for_each: [10, 20]
        as: y
        steps:
          cell: {run: {python: "stepsmod:add"}, inputs: {a: "{{ x }}", b: "{{ y }}"}, outputs: {v: int}}
        outputs: {vs: "{{ steps.cell.outputs.v }}"}
    outputs: {rows: "{{ steps.inner.outputs.vs }}"}
  yes:
    when: "params.flag and steps.d.outputs.v > 5"
    steps:
      t: {run: {python: "stepsmod:add"}, inputs: {a: 1, b: 0}, outputs: {v: int}}
    outputs: {v: "{{ steps.t.outputs.v }}"}
    else:
      steps:
        e: {run: {python: "stepsmod:add"}, inputs: {a: 0, b: 0}, outputs: {v: int}}
      outputs: {v: "{{ steps.e.outputs.v }}"}
outputs:
  rows: "{{ steps.outer.outputs.rows }}"
  branch: "{{ steps.yes.outputs.v }}"
  c: "{{ steps.c.outputs.v }}"
""",
        STEPS,
    )
    rec = run_in_moto(p)
    assert rec["status"] == "succeeded", rec
    assert rec["outputs"] == {"rows": [[11, 21], [12, 22]], "branch": 1, "c": 2}
    assert rec["steps"]["e"]["status"] == "skipped"
    assert rec["steps"]["cell[1][0]"]["outputs"] == {"v": 12}
    rec = run_in_moto(p, params={"flag": False})
    assert rec["outputs"]["branch"] == 0
    assert rec["steps"]["t"]["status"] == "skipped"
