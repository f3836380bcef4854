"""Values the state machine carries as written (SPEC §19, §22): literal mappings keep their key
order in the definition (which is otherwise written with sorted keys), and a ``for_each`` list
literal holding references is built by ``Pass`` states. Executed in moto with the real worker."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from sfn_helpers import compile_file, run_in_moto

from pipecast.api import compile_pipeline, load_checked
from pipecast.diagnostics import UserError

STEPS = """
def emit(value):
    return value
"""

PIPELINE = """
pipecast: 1
name: ordered-literals
params:
  tag: {type: str, default: v1}
  n: {type: int, default: 4}
steps:
  literal:
    run: {python: "osteps:emit"}
    inputs: {value: {z: 2.0, a: 1, m: {y: [3.0], b: null}}}
    outputs: {output: dict}
  each:
    for_each: [{z: "{{ params.tag }}", a: "{{ params.n }}", t: "x-{{ params.tag }}"}, {z: 1, a: 2.0}]
    as: row
    steps:
      echo:
        run: {python: "osteps:emit"}
        inputs: {value: "{{ row }}"}
        outputs: {output: dict}
  fixed:
    for_each: [{b: 1, a: 2}]
    as: row
    steps:
      echo2:
        run: {python: "osteps:emit"}
        inputs: {value: "{{ row }}"}
        outputs: {output: dict}
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "osteps.py").write_text(textwrap.dedent(STEPS))
    path = tmp_path / "pipeline.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_literal_mappings_keep_their_key_order_in_the_definition(tmp_path: Path) -> None:
    _, result, _ = compile_file(write(tmp_path, PIPELINE), compute="callback")
    text = result.files["ordered-literals.asl.json"]
    assert '{"z":2.0,"a":1,"m":{"y":[3.0],"b":null}}' in text
    assert '{"b":1,"a":2}' in text  # a literal loop list's item
    definition = json.loads(text)  # still valid JSON, other objects sorted as before
    assert list(definition) == sorted(definition)


@pytest.mark.slow
def test_ordered_literals_and_built_loop_items_execute(aws_env: str, tmp_path: Path) -> None:
    record = run_in_moto(write(tmp_path, PIPELINE), timeout=120)
    steps = record["steps"]
    assert record["status"] == "succeeded", record.get("_worker_log", "")[-2000:]
    out = steps["literal"]["outputs"]["output"]
    assert json.dumps(out) == '{"z": 2.0, "a": 1, "m": {"y": [3.0], "b": null}}'
    assert json.dumps(steps["echo[0]"]["outputs"]["output"]) == '{"z": "v1", "a": 4, "t": "x-v1"}'
    assert json.dumps(steps["echo[1]"]["outputs"]["output"]) == '{"z": 1, "a": 2.0}'
    assert json.dumps(steps["echo2[0]"]["outputs"]["output"]) == '{"b": 1, "a": 2}'


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ('{l: ["{{ params.n }}"]}', "a list holding references inside a for_each item"),
        ('"n={{ params.n }}"', "{{ params.n }} (int) inside a mixed string of a for_each item"),
    ],
)
def test_loop_items_asl_cannot_build_are_refused(tmp_path: Path, item: str, message: str) -> None:
    text = PIPELINE.replace("[{b: 1, a: 2}]", f"[{item}]")
    with pytest.raises(UserError) as err:
        compile_pipeline(load_checked(write(tmp_path, text)), "stepfunctions", {"compute": "callback"})
    shown = str(err.value)
    assert message in shown and "pipeline.yaml:" in shown and "fixed" in shown


OUTPUTS = """
pipecast: 1
name: rendered-outputs
steps:
  make:
    run: {python: "osteps:numbers"}
    outputs: {big: int, d: dict}
  g:
    for_each: [x]
    as: i
    steps:
      inner:
        run: {python: "osteps:numbers"}
        outputs: {big: int, d: dict}
    outputs: {txt: "{{ i }}:d={{ steps.inner.outputs.d }}"}
outputs:
  label: "n={{ steps.make.outputs.big }} d={{ steps.make.outputs.d }}"
  texts: "{{ steps.g.outputs.txt }}"
"""

NUMBERS = """
def numbers():
    return {"big": 2**53 + 1, "d": {"z": 2.0, "a": 1}}
"""


@pytest.mark.slow
def test_mixed_strings_in_outputs_are_rendered_by_asl(aws_env: str, tmp_path: Path) -> None:
    """Group and pipeline outputs have no runtime to render a mixed string: ASL does
    (States.JsonToString, compact JSON in stored key order; a loop item bare)."""
    path = write(tmp_path, OUTPUTS)
    (tmp_path / "osteps.py").write_text(textwrap.dedent(STEPS) + textwrap.dedent(NUMBERS))
    record = run_in_moto(path, timeout=120)
    assert record["status"] == "succeeded", record.get("_worker_log", "")[-2000:]
    assert record["outputs"] == {
        "label": 'n=9007199254740993 d={"z":2.0,"a":1}',
        "texts": ['x:d={"z":2.0,"a":1}'],
    }
