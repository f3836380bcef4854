"""Azure ML backend: every example and conformance case compiles to a job that Azure ML's SDK
loads and validates, that pipecast's own checks pass, and whose graph maps one to one onto the IR."""

from __future__ import annotations

import json

import pytest
import yaml
from azml_helpers import CASES, EXAMPLES, UNSUPPORTED, compile_file, compiled_edges, docs, label, scope_file

from pipecast.diagnostics import UserError
from pipecast.ir.refs import single_ref

pytestmark = pytest.mark.azureml
ALL = [*EXAMPLES, *CASES]


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


@pytest.mark.parametrize("path", [p for p in ALL if label(p) not in UNSUPPORTED], ids=label)
def test_graph_matches_ir(path):
    """Jobs, bindings, conditions and loops map one to one onto the pipeline's IR."""
    loaded, result = compile_file(path)
    index = loaded.index
    files = docs(result.files)
    job_file = f"{loaded.pipeline.name}.yml"
    for scope in index.scopes():
        doc = files[scope_file(index, scope, job_file)]
        jobs = doc["jobs"]
        siblings = set(scope.steps)
        # Every job belongs to one step of this scope, and every step has its jobs.
        owners = {name for name in jobs if name != "finally"}
        assert {n.rsplit("__", 1)[0] if n not in siblings else n for n in owners} == siblings
        for name, node in scope.steps.items():
            if node.is_task:
                job = jobs[name]
                assert job["type"] == "command"
                spec = json.loads(_spec_arg(job["component"]["command"]))
                assert spec["step"] == name and spec["run"] == node.task.run.to_data()
                assert set(job["component"].get("outputs") or {}) - {"pipecast_done"} == set(
                    node.task.outputs
                )
                if node.task.when is not None:
                    _check_condition(jobs, name, name, node.task.when)
            elif node.group.is_loop:
                loop = jobs[name]
                assert loop["type"] == "parallel_for"
                assert loop["body"] == f"${{{{parent.jobs.{name}__body}}}}"
                assert jobs[f"{name}__body"]["component"].endswith(f"{name}.yml")
                assert loop.get("max_concurrency") == node.group.parallelism
                body = files[f"components/{name}.yml"]
                assert set(body.get("outputs") or {}) == set(node.group.outputs)
                var = f"item__{node.group.as_}"
                if isinstance(node.group.for_each, list):
                    items = json.loads(loop["items"])
                    assert [
                        json.loads(i[var]) if not isinstance(v, str) else i[var]
                        for i, v in zip(items, node.group.for_each, strict=True)
                    ] == node.group.for_each
                else:
                    assert loop["items"] == f"${{{{parent.jobs.{name}__items.outputs.items}}}}"
                    ref = single_ref(node.group.for_each)
                    bound = jobs[f"{name}__items"]["inputs"]["values"]
                    assert (ref.name in bound) and (ref.kind != "step" or ref.key in bound)
            else:
                _check_condition(jobs, name, name, node.group.when)
                if_job = jobs[f"{name}__if"]
                assert if_job["true_block"] == f"${{{{parent.jobs.{name}}}}}"
                assert ("false_block" in if_job) == (node.group.else_ is not None)
        # Dependencies: exactly the IR's (data and `after`), no more, no less.
        expected = {k: set(v) for k, v in index.deps(scope).items()}
        assert compiled_edges(jobs, siblings) == expected
    root = files[job_file]
    assert ("on_finalize" in root["settings"]) == (index.finally_node is not None)
    assert set(root.get("inputs") or {}) == set(loaded.pipeline.params)


def _spec_arg(command: str) -> str:
    import shlex

    words = shlex.split(command)
    return words[words.index("--spec") + 1]


def _check_condition(jobs, owner_name, then_block, when):
    cond = jobs[f"{owner_name}__cond"]
    spec = json.loads(_spec_arg(cond["component"]["command"]))
    assert spec["inputs"]["when"]["value"] == when
    assert cond["component"]["outputs"]["result"] == {"type": "boolean", "is_control": True}
    if_job = jobs[f"{owner_name}__if"]
    assert if_job["condition"] == f"${{{{parent.jobs.{owner_name}__cond.outputs.result}}}}"
    assert if_job["true_block"] == f"${{{{parent.jobs.{then_block}}}}}"


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
