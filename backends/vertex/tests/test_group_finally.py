"""A group's own ``finally`` (SPEC §18) on Vertex/Kubeflow: the shape kfp itself writes for an
exit handler one level down, a strict proto parse, and kfp.local runs (a failing ``for_each``
whose finally must see ``failed``; the conformance cases ``group_finally_*`` run the rest).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2 as pb
from kfp_local import run_local

from pipecast.api import compile_pipeline, load_checked
from tests.conformance.catalogue import CASES_DIR

pytestmark = [
    pytest.mark.vertex,
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning"),
]

SETTINGS = {"image": "python:3.11-slim", "pipeline_root": "gs://demo/runs"}


#: kfp 2.17's own compile of an ExitHandler that ends up inside a condition: a pipeline holding
#: it, called as a component in another pipeline's ``dsl.If`` (run as a script: kfp reads the
#: component functions' source and real annotations).
KFP_SCRIPT = """\
import sys

from kfp import compiler, dsl


@dsl.component(base_image="python:3.11")
def exit_op(status: dsl.PipelineTaskFinalStatus) -> str:
    return status.state


@dsl.component(base_image="python:3.11")
def body_op(x: int) -> int:
    return x


@dsl.pipeline
def inner(x: int = 1):
    with dsl.ExitHandler(exit_op()):
        body_op(x=x)


@dsl.pipeline
def outer(x: int = 1):
    with dsl.If(x == 1):
        inner(x=x)


compiler.Compiler().compile(outer, sys.argv[1])
"""


def _kfp_nested_exit_handler(tmp_path: Path) -> dict[str, Any]:
    script, out = tmp_path / "kfp_exit.py", tmp_path / "kfp.yaml"
    script.write_text(KFP_SCRIPT)
    subprocess.run([sys.executable, str(script), str(out)], check=True, capture_output=True)
    return yaml.safe_load(out.read_text())


def _compile(case: str, target: str = "vertex") -> dict[str, Any]:
    loaded = load_checked(CASES_DIR / f"{case}.yaml")
    result = compile_pipeline(loaded, target, SETTINGS)
    (name,) = [k for k in result.files if k.endswith(".yaml")]
    return yaml.safe_load(result.files[name])


def _exit_shape(spec: dict[str, Any], dag_comp: dict[str, Any], exit_task: str) -> dict[str, Any]:
    """The fields that make a task an exit task over its DAG sibling, names abstracted."""
    tasks = dag_comp["dag"]["tasks"]
    task = tasks[exit_task]
    (status_input,) = [k for k, v in task["inputs"]["parameters"].items() if "taskFinalStatus" in v]
    producer = task["inputs"]["parameters"][status_input]["taskFinalStatus"]["producerTask"]
    producer_comp = spec["components"][tasks[producer]["componentRef"]["name"]]
    exit_comp = spec["components"][task["componentRef"]["name"]]
    return {
        "tasks": len(tasks),
        "strategy": task["triggerPolicy"],
        "depends_on_producer": task["dependentTasks"] == [producer],
        "producer_is_dag": "dag" in producer_comp,
        "producer_has_condition": "triggerPolicy" in tasks[producer],
        "status_type": exit_comp["inputDefinitions"]["parameters"][status_input]["parameterType"],
    }


@pytest.mark.parametrize("target", ["vertex", "kubeflow"])
def test_exit_task_has_kfps_own_shape(target: str, tmp_path: Path) -> None:
    kfp = _kfp_nested_exit_handler(tmp_path)
    kfp_shape = _exit_shape(kfp, kfp["components"]["comp-inner"], "exit-op")
    ours = _compile("group_finally_failure", target)
    body = ours["components"]["comp-pipeline--body"]
    handler_task = body["dag"]["tasks"]["guarded"]
    # The group's task in its DAG keeps its condition and runs the handler DAG.
    assert handler_task["componentRef"]["name"] == "comp-guarded--exit-handler"
    assert "condition" in handler_task["triggerPolicy"]
    handler = ours["components"]["comp-guarded--exit-handler"]
    assert _exit_shape(ours, handler, "guarded--finally") == kfp_shape
    assert kfp_shape["strategy"] == {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
    # Every input of the group's own task comes from the handler's inputs.
    inner = handler["dag"]["tasks"]["guarded"]
    assert all("componentInputParameter" in b for b in inner["inputs"]["parameters"].values())
    assert set(inner["inputs"]["parameters"]) <= set(handler["inputDefinitions"]["parameters"])
    # Strict parse (unknown fields and bad enums fail), the executors aside (a free Struct).
    json_format.ParseDict({**ours, "deploymentSpec": {}}, pb.PipelineSpec())


def test_for_each_group_finally_reads_a_plain_dag(tmp_path: Path) -> None:
    """A loop with a finally is wrapped, so the exit task's producer is a plain DAG task (whose
    final status kfp.local records) holding the loop task, and the group's readers read the
    handler's forwarded outputs."""
    spec = _compile("group_finally_success")
    handler = spec["components"]["comp-per-item--exit-handler"]
    producer = handler["dag"]["tasks"]["per-item"]
    assert "parameterIterator" not in producer
    wrapper = spec["components"][producer["componentRef"]["name"]]
    assert "parameterIterator" in wrapper["dag"]["tasks"]["per-item--loop"]
    out = handler["dag"]["outputs"]["parameters"]["squares"]["valueFromParameter"]
    assert out == {"producerSubtask": "per-item", "outputParameterKey": "squares"}
    summary = spec["root"]["dag"]["tasks"]["summary"]
    assert summary["inputs"]["parameters"]["values"]["taskOutputParameter"]["producerTask"] == "per-item"


FAILING_LOOP = """\
pipecast: 1
name: failing-loop-finally
steps:
  each:
    for_each: [1, 2]
    as: n
    steps:
      boom:
        run: {python: "cstep:fail"}
        inputs: {message: "item {{ n }}"}
    finally:
      run: {python: "cstep:status"}
      inputs: {status: "{{ group.status }}"}
      outputs: {output: str}
  later:
    run: {python: "cstep:emit"}
    inputs: {value: 1}
    outputs: {output: int}
    after: [each]
"""


def test_failing_for_each_finally_sees_failed_in_kfp_local(tmp_path: Path) -> None:
    source = tmp_path / "p.yaml"
    source.write_text(FAILING_LOOP)
    loaded = load_checked(source)
    result = compile_pipeline(loaded, "vertex", SETTINGS)
    spec = tmp_path / "failing-loop-finally.yaml"
    spec.write_text(result.files[spec.name])
    work = tmp_path / "kfp"
    work.mkdir()
    record = run_local(spec, {}, work, None, [CASES_DIR], index=loaded.index)
    assert record["status"] == "failed"
    assert record["steps"]["each.finally"]["status"] == "succeeded"
    assert record["steps"]["each.finally"]["outputs"] == {"output": "failed"}
    assert "later" not in record["steps"] or record["steps"]["later"]["status"] != "succeeded"


ELSE_IN_LOOP = """\
pipecast: 1
name: else-finally
params:
  mode: {type: str, default: "slow"}
steps:
  rows:
    for_each: ["a", "b"]
    as: row
    steps:
      choose:
        when: "params.mode == 'fast'"
        steps:
          quick:
            run: {python: "cstep:emit"}
            inputs: {value: "quick-{{ row }}"}
            outputs: {output: str}
        outputs: {result: "{{ steps.quick.outputs.output }}"}
        else:
          steps:
            slow:
              run: {python: "cstep:fail"}
              inputs: {message: "slow {{ row }}"}
              outputs: {output: str}
          outputs: {result: "{{ steps.slow.outputs.output }}"}
        finally:
          run: {python: "cstep:add"}
          inputs: {a: "{{ group.status }}", b: "-{{ row }}"}
          outputs: {output: str}
      use:
        run: {python: "cstep:emit"}
        inputs: {value: "got {{ steps.choose.outputs.result }}"}
        outputs: {output: str}
"""


def test_if_else_group_finally_in_a_loop_in_kfp_local(tmp_path: Path) -> None:
    """An if/else group's finally runs after the branch taken, once per item, and sees its
    failure; the branch not taken is recorded skipped (kfp.local reports nothing for it), what
    reads the group's output never starts."""
    source = tmp_path / "p.yaml"
    source.write_text(ELSE_IN_LOOP)
    loaded = load_checked(source)
    result = compile_pipeline(loaded, "kubeflow", SETTINGS)
    spec = tmp_path / "else-finally.yaml"
    spec.write_text(result.files[spec.name])
    work = tmp_path / "kfp"
    work.mkdir()
    record = run_local(spec, {}, work, None, [CASES_DIR], index=loaded.index)
    steps = record["steps"]
    assert record["status"] == "failed"
    for i, row in enumerate(["a", "b"]):
        assert steps[f"choose.finally[{i}]"]["outputs"] == {"output": f"failed-{row}"}
        assert steps[f"slow[{i}]"]["status"] == "failed"
        assert steps[f"quick[{i}]"] == {"status": "skipped"}
        assert f"use[{i}]" not in steps


NESTED_WITH_COMPONENT = """\
pipecast: 1
name: nested-finally
params:
  grid: {type: list, default: [1, 2]}
steps:
  prep:
    run: {python: "cstep:emit"}
    inputs: {value: "p"}
    outputs: {output: str}
  outer:
    for_each: "{{ params.grid }}"
    as: row
    steps:
      inner:
        for_each: [1, 2]
        as: v
        steps:
          sq:
            run: {python: "cstep:square"}
            inputs: {x: "{{ v }}"}
            outputs: {output: int}
          gated:
            when: "v > 1"
            run: {python: "cstep:emit"}
            inputs: {value: "{{ v }}"}
            outputs: {output: int}
        outputs: {squares: "{{ steps.sq.outputs.output }}"}
        finally:
          uses: ./lib/plus_text.yaml
          inputs: {a: "{{ group.status }}-{{ row }}", b: "-{{ steps.prep.outputs.output }}"}
"""

PLUS_TEXT = """\
pipecast: 1
component: plus_text
run: {python: "cstep:add"}
inputs:
  a: str
  b: {type: str, default: "n"}
outputs: {output: str}
"""


def test_nested_loop_group_finally_using_a_component_in_kfp_local(tmp_path: Path) -> None:
    """A loop group's finally inside another loop: it uses a component, reads the enclosing
    loop's item and a step before the loops (the handler task waits for it), once per outer
    item; a when step inside is skipped where its condition is false."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "plus_text.yaml").write_text(PLUS_TEXT)
    source = tmp_path / "p.yaml"
    source.write_text(NESTED_WITH_COMPONENT)
    loaded = load_checked(source)
    spec = tmp_path / "nested-finally.yaml"
    spec.write_text(compile_pipeline(loaded, "vertex", SETTINGS).files[spec.name])
    work = tmp_path / "kfp"
    work.mkdir()
    record = run_local(spec, {}, work, None, [CASES_DIR], index=loaded.index)
    steps = record["steps"]
    assert record["status"] == "succeeded", record
    for i in (0, 1):
        assert steps[f"inner.finally[{i}]"]["outputs"] == {"output": f"succeeded-{i + 1}-p"}
        assert steps[f"gated[{i}][0]"] == {"status": "skipped"}
        assert steps[f"gated[{i}][1]"]["outputs"] == {"output": 2}
