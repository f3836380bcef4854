"""PipelineIndex (deps, toposort, resolve, effective), validate() rules and --param checking."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipecast.api import load_checked
from pipecast.diagnostics import UserError
from pipecast.loader import load
from pipecast.passes.validate import check_params, parse_param_value, validate

DAG = """\
pipecast: 1
name: dag
params:
  n: {type: int, default: 2}
  items: {type: list}
defaults:
  retry: {attempts: 3, delay: 5s}
  resources: {cpu: 1, memory: 1Gi}
  env: {A: "1", B: "2"}
steps:
  c:
    run: {python: "mod:f"}
    inputs: {x: "{{ steps.b.outputs.y }}", z: "{{ steps.a.outputs.x }}"}
    retry: {attempts: 5}
    env: {B: "3"}
  a:
    run: {python: "mod:f"}
    inputs: {x: "{{ params.n }}"}
    outputs: {x: int}
  b:
    run: {python: "mod:f"}
    after: [a]
    inputs: {x: 1}
    outputs: {y: float}
  loop:
    for_each: "{{ params.items }}"
    steps:
      inner:
        run: {python: "mod:f"}
        inputs: {x: "{{ item }}", y: "{{ steps.a.outputs.x }}"}
        outputs: {r: float}
    outputs: {rs: "{{ steps.inner.outputs.r }}"}
"""

MOD = """\
def f(x: float, z: int = 0, y: int = 0):
    return x
"""


@pytest.fixture
def dag(tmp_path: Path) -> Path:
    (tmp_path / "mod.py").write_text(MOD)
    path = tmp_path / "dag.yaml"
    path.write_text(DAG)
    return path


def test_deps_toposort_resolve_effective(dag: Path) -> None:
    loaded = load(dag)
    index = loaded.index
    assert index.deps(index.root) == {"c": ["a", "b"], "a": [], "b": ["a"], "loop": ["a"]}
    assert index.toposort(index.root) == ["a", "b", "c", "loop"]
    assert index.output_type(index.nodes["loop"], "rs") == "list[float]"
    c = index.effective(index.nodes["c"])
    assert (c.retry.attempts, c.retry.delay) == (5, 5.0)  # field by field
    assert c.env == {"A": "1", "B": "3"}  # key by key
    assert c.resources.memory == "1Gi"


def test_valid_pipeline_with_importable_functions(dag: Path) -> None:
    loaded = load_checked(dag)
    assert [d.message for d in loaded.warnings] == []


def test_annotation_mismatch_is_reported(dag: Path, tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text("def f(x: str, z: int = 0, y: int = 0):\n    return x\n")
    diags = [d for d in validate(load(dag)) if d.severity == "error"]
    assert {d.path for d in diags} == {
        ("steps", "c", "inputs", "x"),
        ("steps", "a", "inputs", "x"),
        ("steps", "b", "inputs", "x"),
    }  # the loop item's type is unknown (a plain 'list' parameter): not checked
    assert all("annotates it as str" in d.message for d in diags)


def test_import_failure_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text("raise RuntimeError('boom')\n")
    path = tmp_path / "dag.yaml"
    path.write_text(DAG)
    diags = validate(load(path))
    assert [d.severity for d in diags] == ["warning"]
    assert "boom" in diags[0].message


def test_int_flows_into_float_but_not_back(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text("def f(x: float): ...\ndef g(x: int): ...\n")
    text = DAG.split("steps:")[0] + (
        "steps:\n"
        "  a: {run: {python: 'mod:f'}, inputs: {x: '{{ params.n }}'}, outputs: {y: float}}\n"
        "  b: {run: {python: 'mod:g'}, inputs: {x: '{{ steps.a.outputs.y }}'}}\n"
        "  c: {run: {python: 'mod:f'}, inputs: {x: '{{ params.items }}'}}\n"
    )
    path = tmp_path / "p.yaml"
    path.write_text(text)
    errors = [d for d in validate(load(path)) if d.severity == "error"]
    assert [d.path[1] for d in errors] == ["b", "c"]


@pytest.mark.parametrize(
    ("type_name", "text", "value"),
    [
        ("str", "007", "007"),
        ("int", "7", 7),
        ("float", "7", 7.0),
        ("bool", "true", True),
        ("list", "[eu, us]", ["eu", "us"]),
        ("list", '["a", 1]', ["a", 1]),
        ("dict", '{"k": 1}', {"k": 1}),
    ],
)
def test_parse_param_value(type_name: str, text: str, value: object) -> None:
    assert parse_param_value(type_name, text) == value


@pytest.mark.parametrize(
    ("type_name", "text"), [("int", "1.5"), ("int", "true"), ("bool", "yes"), ("list", "3")]
)
def test_parse_param_value_rejects(type_name: str, text: str) -> None:
    with pytest.raises(ValueError):
        parse_param_value(type_name, text)


def test_check_params(dag: Path) -> None:
    pipeline = load(dag).pipeline
    assert check_params(pipeline, {"items": "[1, 2]"}) == {"n": 2, "items": [1, 2]}
    with pytest.raises(UserError) as info:
        check_params(pipeline, {"itmes": "1", "n": "x"})
    messages = " | ".join(d.message for d in info.value.diagnostics)
    assert "no parameter 'itmes'" in messages
    assert "'x' is not an int" in messages
    assert "'items' (list) has no default" in messages
    hints = [d.hint for d in info.value.diagnostics]
    assert "did you mean 'items'?" in hints


def test_find_cycle_is_the_one_search() -> None:
    """pipecast.passes.analysis.find_cycle serves the validator and the backends' output
    checks: the cycle in the direction of the dependencies, none when acyclic, and no
    recursion limit on a long chain."""
    from pipecast.passes.analysis import find_cycle

    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) is None
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": ["y", "a"], "y": [], "a": ["b"], "b": ["a"]}) == ["a", "b", "a"]
    assert find_cycle({"a": ["outside"]}) is None  # names that are not keys are leaves
    n = 5000
    chain = {f"s{i}": [f"s{(i + 1) % n}"] for i in range(n)}
    found = find_cycle(chain)
    assert found is not None and len(found) == n + 1 and found[0] == found[-1] == "s0"


def test_effective_settings_are_merged_once_per_step(tmp_path: Path) -> None:
    """``PipelineIndex.effective`` is computed once per step (backends read it several times
    per task); a step of another index with the same name gets its own settings."""
    from pipecast.passes.analysis import PipelineIndex

    path = tmp_path / "p.yaml"
    path.write_text(
        "pipecast: 1\nname: p\ndefaults: {image: 'img:1', retry: {attempts: 2}}\n"
        "steps:\n  a: {run: {python: 'm:f'}, retry: {backoff: 3}}\n",
        encoding="utf-8",
    )
    loaded = load_checked(path)
    index = loaded.index
    first = index.effective(index.nodes["a"])
    assert index.effective(index.nodes["a"]) is first
    assert (first.retry.attempts, first.retry.backoff, first.image) == (2, 3, "img:1")
    other = PipelineIndex(
        loaded.pipeline.model_copy(
            update={"defaults": loaded.pipeline.defaults.model_copy(update={"image": "img:2"})}
        )
    )
    assert other.effective(other.nodes["a"]).image == "img:2"
    assert index.effective(other.nodes["a"]) is not first  # a cache per node, not per name
    assert index.effective(index.nodes["a"]) is first
