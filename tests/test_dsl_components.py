"""The DSL's components and sub-pipelines (SPEC §16-§17): ``component("file")`` called like a
step, a ``@pipeline`` function called inside another; both lower exactly as YAML ``uses:``."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from pipecast.api import load_checked
from pipecast.cli import main
from pipecast.diagnostics import UserError
from pipecast.dsl import load_python_pipeline
from pipecast.io import dump_yaml

HERE = Path(__file__).parent / "dsl_components"
PIPELINE = HERE / "pipeline.py"


def test_component_and_subpipeline_calls_lower_like_uses() -> None:
    p = load_checked(PIPELINE).pipeline
    bumped = p.steps["bumped"]
    assert bumped.component is not None and bumped.component.path == "plus.yaml"
    assert bumped.inputs == {"a": "{{ steps.first.outputs.value }}", "b": 10}  # the default applied
    assert bumped.retry is not None and bumped.retry.attempts == 3  # .options(retry=...) overrides
    first = p.steps["first"]
    assert first.subpipeline is not None and first.subpipeline.name == "prep"
    assert first.subpipeline.bindings == {"x": 5, "offset": 100}
    assert list(first.steps) == ["first.clean", "first.shift"]
    assert first.steps["first.clean"].inputs == {"x": 5}
    assert first.steps["first.shift"].inputs == {"a": "{{ steps.first.clean.outputs.output }}", "b": 100}
    assert first.outputs == {"value": "{{ steps.first.shift.outputs.output }}"}
    inner = p.steps["each"].steps["prep"]
    assert inner.steps["prep.clean"].inputs == {"x": "{{ x }}"}


def test_dsl_subpipeline_runs_with_spec_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(PIPELINE), "--json", "--run-dir", str(tmp_path)]) == 0
    record = json.loads(capsys.readouterr().out)
    steps = record["steps"]
    assert record["status"] == "succeeded"
    assert record["outputs"] == {"bumped": 120, "total": 12.0}
    assert steps["first.clean"]["outputs"] == {"output": 10}
    assert steps["first.shift"]["outputs"] == {"output": 110}
    assert steps["prep[1]"]["outputs"] == {"value": 4}
    assert steps["prep.clean[2]"]["outputs"] == {"output": 6}


def test_export_of_the_lowered_form_loads_back(tmp_path: Path) -> None:
    loaded = load_checked(PIPELINE)
    out = HERE / "exported.yaml"
    try:
        out.write_text(dump_yaml(loaded.pipeline.to_data()))
        assert load_checked(out).pipeline == loaded.pipeline
    finally:
        out.unlink()


def _write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "plus.yaml").write_text((HERE / "plus.yaml").read_text())
    path = tmp_path / "pipe.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_unknown_component_input_names_the_python_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        from pipecast.dsl import component, pipeline

        plus = component("plus.yaml")

        @pipeline
        def p():
            plus(a=1, c=2)
        """,
    )
    with pytest.raises(UserError) as info:
        load_python_pipeline(path)
    (diag,) = info.value.diagnostics
    assert "component 'plus' has no input 'c'" in diag.message
    assert diag.line == 8


def test_a_pipeline_calling_itself_is_a_cycle(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        from pipecast.dsl import pipeline

        @pipeline
        def a(x: int = 1):
            b(x=x)

        @pipeline
        def b(x: int = 1):
            a(x=x)

        pipeline = a
        """,
    )
    with pytest.raises(UserError) as info:
        load_python_pipeline(path)
    assert (
        "a pipeline may not use itself, directly or through others: a (pipe.py:4) -> b (pipe.py:8) -> a"
        in str(info.value.diagnostics[0].message)
    )


def test_missing_component_file_and_wrong_parameter_type(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        from pipecast.dsl import pipeline

        @pipeline
        def inner(x: int):
            return {}

        @pipeline
        def outer():
            inner(x="five")

        pipeline = outer
        """,
    )
    with pytest.raises(UserError) as info:
        load_python_pipeline(path)
    assert "pipeline 'inner', parameter 'x'" in info.value.diagnostics[0].message
