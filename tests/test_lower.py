"""IR → IR lowerings (passes/lower.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipecast.api import load_checked
from pipecast.diagnostics import UserError
from pipecast.passes.lower import pipeline_refs_as_inputs

CASE = Path(__file__).parent / "conformance" / "cases" / "pipeline_refs.yaml"


def test_pipeline_refs_in_a_command_become_inputs() -> None:
    loaded = load_checked(CASE)
    lowered = pipeline_refs_as_inputs(loaded.pipeline)
    tagged = lowered.steps["tagged"]
    assert tagged.run.command[3:5] == [
        "{{ inputs.__pipecast_name }}",
        "run={{ inputs.__pipecast_run_id }}",
    ]
    assert tagged.inputs == {
        "__pipecast_name": "{{ pipeline.name }}",
        "__pipecast_run_id": "{{ pipeline.run_id }}",
    }
    # Python steps already take references in inputs: untouched, same object.
    assert lowered.steps["named"] is loaded.pipeline.steps["named"]
    # Lowering twice changes nothing more.
    assert pipeline_refs_as_inputs(lowered) is lowered
    # The lowered node serialises like a written one (no defaults appear).
    assert "args" not in tagged.run.to_data()


def test_a_pipeline_without_such_refs_is_returned_as_is() -> None:
    loaded = load_checked(Path(__file__).parent / "conformance" / "cases" / "container.yaml")
    assert pipeline_refs_as_inputs(loaded.pipeline) is loaded.pipeline
    assert loaded.lowered() is loaded


def test_reserved_input_names_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "pipecast: 1\nname: p\nsteps:\n  a:\n    run: {python: 'm:f'}\n    inputs: {__pipecast_x: 1}\n"
    )
    with pytest.raises(UserError) as err:
        load_checked(path)
    assert "reserved" in err.value.render()
