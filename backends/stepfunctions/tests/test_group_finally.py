"""A group's own ``finally`` (SPEC §18) in shapes the conformance cases do not cover: nested
groups with finally steps (innermost first), a ``when`` group with ``else``, a skipped ``when``
group that is the last step of its scope, and a failing group ``finally``. Executed in moto with
the real worker; the record is compared with the simulator's."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from sfn_helpers import compile_file, run_in_moto

STEPS = """
def emit(value):
    return value


def check(x):
    if x == 2:
        raise RuntimeError("item 2 is bad")
    return x


def tag(status, what):
    if what == "explode":
        raise RuntimeError("the finally fails")
    return status + "-" + what
"""

PIPELINE = """
pipecast: 1
name: nested-group-finally
params:
  what: {type: str, default: ok}
steps:
  outer:
    when: "params.what != 'skip-all'"
    steps:
      each:
        for_each: [1, 2, 3]
        as: x
        steps:
          check:
            run: {python: "gsteps:check"}
            inputs: {x: "{{ x }}"}
            outputs: {output: int}
        finally:
          run: {python: "gsteps:tag"}
          inputs: {status: "{{ group.status }}", what: "inner"}
          outputs: {output: str}
    finally:
      run: {python: "gsteps:tag"}
      inputs: {status: "{{ group.status }}", what: "{{ params.what }}"}
      outputs: {output: str}
finally:
  run: {python: "gsteps:tag"}
  inputs: {status: "{{ pipeline.status }}", what: "pipeline"}
  outputs: {output: str}
"""

BRANCHES = """
pipecast: 1
name: branch-group-finally
params:
  what: {type: str, default: ok}
steps:
  first:
    run: {python: "gsteps:emit"}
    inputs: {value: 1}
    outputs: {output: int}
  choose:
    when: "params.what == 'then'"
    steps:
      a:
        run: {python: "gsteps:emit"}
        inputs: {value: "a"}
        outputs: {output: str}
    else:
      steps:
        b:
          run: {python: "gsteps:emit"}
          inputs: {value: "b"}
          outputs: {output: str}
    finally:
      run: {python: "gsteps:tag"}
      inputs: {status: "{{ group.status }}", what: "{{ params.what }}"}
      outputs: {output: str}
    after: [first]
  last:
    when: "params.what == 'then'"
    steps:
      c:
        run: {python: "gsteps:emit"}
        inputs: {value: "c"}
        outputs: {output: str}
    finally:
      run: {python: "gsteps:tag"}
      inputs: {status: "{{ group.status }}", what: "last"}
      outputs: {output: str}
    after: [choose]
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "gsteps.py").write_text(textwrap.dedent(STEPS))
    path = tmp_path / "pipeline.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_the_lowering_shape(tmp_path: Path) -> None:
    _, result, _ = compile_file(write(tmp_path, PIPELINE), compute="callback")
    text = result.files["nested-group-finally.asl.json"]
    for state in ("outer (with finally)", "each (with finally)", "outer.finally (after failure)"):
        assert f'"{state}"' in text
    assert '"pipecast.GroupFailed"' in text
    assert '"$.group.status"' in text


def _statuses(record: dict) -> dict[str, object]:
    return {k: (v.get("status"), (v.get("outputs") or {}).get("output")) for k, v in record["steps"].items()}


@pytest.mark.slow
def test_nested_group_finally_steps_run_innermost_first(aws_env: str, tmp_path: Path) -> None:
    record = run_in_moto(write(tmp_path, PIPELINE), timeout=180)
    got = _statuses(record)
    assert record["status"] == "failed", record.get("_worker_log", "")[-2000:]
    assert got["check[1]"][0] == "failed"
    assert got["each.finally"] == ("succeeded", "failed-inner")
    assert got["outer.finally"] == ("succeeded", "failed-ok")
    assert got["finally"] == ("succeeded", "failed-pipeline")
    assert got["outer"][0] == "failed"
    outer_started = record["steps"]["outer.finally"]["started"]
    assert record["steps"]["each.finally"]["ended"] <= outer_started


@pytest.mark.slow
def test_a_failing_group_finally_fails_the_run(aws_env: str, tmp_path: Path) -> None:
    record = run_in_moto(write(tmp_path, PIPELINE), params={"what": "explode"}, timeout=180)
    got = _statuses(record)
    assert record["status"] == "failed"
    assert got["outer.finally"][0] == "failed"
    assert got["finally"] == ("succeeded", "failed-pipeline")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("what", "expected"),
    [
        ("then", {"a": "a", "choose.finally": "succeeded-then", "last.finally": "succeeded-last"}),
        ("other", {"b": "b", "choose.finally": "succeeded-other"}),
    ],
)
def test_else_branch_and_a_skipped_last_group(
    aws_env: str, tmp_path: Path, what: str, expected: dict[str, str]
) -> None:
    record = run_in_moto(write(tmp_path, BRANCHES), params={"what": what}, timeout=180)
    got = _statuses(record)
    assert record["status"] == "succeeded", record.get("_worker_log", "")[-2000:]
    for key, value in expected.items():
        assert got[key] == ("succeeded", value)
    if what != "then":
        assert "last.finally" not in got  # a skipped when group does not run its finally
        assert got["c"][0] == "skipped"
