"""Loader: YAML/JSON parsing, source positions, YAML 1.2 scalars, aliases, model errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipecast.diagnostics import UserError
from pipecast.loader import load, parse_yaml

MINI = """\
pipecast: 1
name: mini
params:
  region: {type: str, default: no}
steps:
  a:
    run: {python: "m:f"}
    inputs: {x: "{{ params.region }}", when: 2024-01-01}
    timeout: 1h30m
"""


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_positions_and_yaml12_scalars(tmp_path: Path) -> None:
    loaded = load(write(tmp_path, MINI))
    assert loaded.source.positions[("steps", "a")] == (6, 3)
    assert loaded.source.positions[("steps", "a", "inputs", "x")] == (8, 14)
    # YAML 1.2 core schema: 'no' stays a string, dates stay strings.
    assert loaded.pipeline.params["region"].default == "no"
    assert loaded.pipeline.steps["a"].inputs["when"] == "2024-01-01"
    assert loaded.pipeline.steps["a"].timeout == 5400.0


def test_json_gives_same_ir_with_positions(tmp_path: Path) -> None:
    yaml_loaded = load(write(tmp_path, MINI))
    data = yaml_loaded.pipeline.to_data()
    path = write(tmp_path, json.dumps(data, indent=2), "p.json")
    json_loaded = load(path)
    assert json_loaded.pipeline == yaml_loaded.pipeline
    assert json_loaded.source.locate(("steps", "a", "run")) is not None


def test_all_errors_in_one_pass(tmp_path: Path) -> None:
    text = MINI.replace("timeout: 1h30m", "timeout: soon\n    retry: {attempts: 0}\n    ouputs: {}")
    with pytest.raises(UserError) as info:
        load(write(tmp_path, text))
    messages = [d.message for d in info.value.diagnostics]
    assert len(messages) == 3, messages
    assert any("not a duration" in m for m in messages)
    unknown = next(d for d in info.value.diagnostics if "ouputs" in d.message)
    assert unknown.hint == "did you mean 'outputs'?"
    assert unknown.line == 11


def test_merge_keys_and_aliases(tmp_path: Path) -> None:
    text = MINI + "  b:\n    <<: {run: {python: 'm:g'}}\n    after: [a]\n"
    loaded = load(write(tmp_path, text))
    assert loaded.pipeline.steps["b"].run.python == "m:g"


def test_recursive_alias_is_an_error() -> None:
    _data, _src, problems = parse_yaml("a: &x [1, *x]\n")
    assert problems and "cycle" in problems[0].message


def test_alias_bomb_fails_fast() -> None:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    with pytest.raises(UserError, match="more than"):
        parse_yaml("\n".join(lines))


def test_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="suffix"):
        load(write(tmp_path, MINI, "p.txt"))
    with pytest.raises(UserError, match="no such file"):
        load(tmp_path / "nope.yaml")


def test_empty_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="empty"):
        load(write(tmp_path, "", "e.yaml"))
    with pytest.raises(UserError, match="a list"):
        load(write(tmp_path, "- 1\n", "l.yaml"))


def test_python_file_without_dsl_is_user_error_or_loads(tmp_path: Path) -> None:
    path = write(tmp_path, "x = 1\n", "p.py")
    with pytest.raises(UserError):
        load(path)
