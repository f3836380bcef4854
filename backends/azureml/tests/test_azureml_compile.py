"""Azure ML backend: every example and conformance case compiles to a job that Azure ML's SDK
loads and validates, that pipecast's own checks pass, and whose graph maps one to one onto the IR."""

from __future__ import annotations

import pytest
import yaml
from azml_helpers import CASES, EXAMPLES, UNSUPPORTED, check_graph, compile_file, label

from pipecast.diagnostics import UserError

pytestmark = pytest.mark.azureml
# The conformance cases run in tests/conformance (compile, SDK validation, graph check).
ALL = EXAMPLES


@pytest.mark.parametrize("path", ALL, ids=label)
def test_compiles_and_validates(path):
    from pipecast_azureml.validate import validate_files

    if label(path) in UNSUPPORTED:
        with pytest.raises(UserError) as err:
            compile_file(path)
        assert err.value.diagnostics[0].code == UNSUPPORTED[label(path)]
        assert "azureml" in err.value.diagnostics[0].message
        assert err.value.diagnostics[0].line is not None, "the error must point into the pipeline file"
        return
    _loaded, result = compile_file(path)
    problems = validate_files(result.files)
    assert not problems, "\n".join(p.render() for p in problems)


@pytest.mark.parametrize("path", [p for p in EXAMPLES if label(p) not in UNSUPPORTED], ids=label)
def test_graph_matches_ir(path):
    """Jobs, bindings, conditions and loops map one to one onto the pipeline's IR (examples;
    tests/conformance checks the conformance cases the same way)."""
    loaded, result = compile_file(path)
    check_graph(loaded, result.files)


def test_deterministic():
    for path in [p for p in ALL if label(p) not in UNSUPPORTED][:6]:
        _l, first = compile_file(path)
        _l, second = compile_file(path)
        assert first.files == second.files


def test_after_is_a_commented_control_binding():
    path = next(p for p in CASES if p.name == "after.yaml")
    _loaded, result = compile_file(path)
    text = result.files["after.yml"]
    assert "after__first: ${{parent.jobs.first.outputs.pipecast_done}}  # control binding" in text
    second = yaml.safe_load(text)["jobs"]["second"]
    assert second["component"]["inputs"]["after__first"] == {"type": "uri_folder"}


GATED_LOOP = """
pipecast: 1
name: gated-loop
params:
  on: {type: bool, default: true}
  xs: {type: list, default: [1, 2]}
steps:
  g:
    when: "params.on"
    steps:
      each:
        for_each: "{{ params.xs }}"
        as: x
        steps:
          sq: {run: {python: "m:f"}, inputs: {x: "{{ x }}"}, outputs: {output: int}}
        outputs: {squares: "{{ steps.sq.outputs.output }}"}
  last: {run: {python: "m:f"}, after: [g]}
"""

AFTER_LOOP = """
pipecast: 1
name: after-loop
steps:
  each:
    for_each: [1, 2]
    as: x
    steps:
      a: {run: {python: "m:f"}, inputs: {x: "{{ x }}"}}
      b: {run: {python: "m:f"}, inputs: {x: "{{ x }}"}}
  last: {run: {python: "m:f"}, after: [each]}
"""


def test_items_from_data_inside_a_gated_branch_compile(tmp_path):
    """The items job takes the branch's gate as its own: a closed gate gives one sentinel item
    and closes the body's gate (``nonempty``), so parallel_for never sees a skipped marker."""
    from pipecast_azureml.validate import validate_files

    path = tmp_path / "p.yaml"
    path.write_text(GATED_LOOP)
    loaded, result = compile_file(path)
    check_graph(loaded, dict(result.files))
    assert not [p for p in validate_files(result.files) if p.severity == "error"]
    jobs = yaml.safe_load(result.files["components/g.yml"])["jobs"]
    assert jobs["each__items"]["inputs"]["pipecast_gate"] == "${{parent.inputs.pipecast_gate}}"
    assert jobs["each__body"]["inputs"]["pipecast_gate"] == "${{parent.jobs.each__items.outputs.nonempty}}"
    path.write_text(GATED_LOOP.replace('"{{ params.xs }}"', "[1, 2]"))
    loaded, result = compile_file(path)  # a literal list needs no items job
    check_graph(loaded, dict(result.files))


def test_after_a_for_each_without_outputs_waits_for_every_last_body_job(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(AFTER_LOOP)
    loaded, result = compile_file(path)
    check_graph(loaded, dict(result.files))
    body = yaml.safe_load(result.files["components/each.yml"])
    assert body["outputs"] == {
        "pipecast_done__a": {"type": "uri_folder"},
        "pipecast_done__b": {"type": "uri_folder"},
    }
    last = yaml.safe_load(result.files["after-loop.yml"])["jobs"]["last"]
    assert last["inputs"] == {
        "after__each__a": "${{parent.jobs.each.outputs.pipecast_done__a}}",
        "after__each__b": "${{parent.jobs.each.outputs.pipecast_done__b}}",
    }
    assert last["component"]["inputs"]["after__each__a"] == {"type": "mltable"}
    from pipecast_azureml.validate import validate_files

    assert not [d for d in validate_files(result.files) if d.severity == "error"]
