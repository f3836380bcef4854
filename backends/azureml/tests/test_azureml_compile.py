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


@pytest.mark.parametrize(
    ("case", "path", "words"),
    [
        (
            "else_outputs.yaml",
            ("steps", "choose", "outputs"),
            ["when-group outputs", "'choose'", "no outputs"],
        ),
        (
            "when_true.yaml",
            ("steps", "after_gate", "after"),
            ["after a group with no outputs", "'after_gate'"],
        ),
    ],
)
def test_named_errors_say_what_why_and_instead(case, path, words):
    """The shapes Azure ML cannot express fail at the YAML key that asks for them, with a fix."""
    with pytest.raises(UserError) as err:
        compile_file(next(p for p in CASES if p.name == case))
    diag = err.value.diagnostics[0]
    assert diag.code == "unsupported-feature" and tuple(diag.path) == path
    assert all(w in diag.message for w in words) and "docs/targets/azureml.md" in (diag.hint or "")
