"""Stock images (SPEC §21): the shared command splitting and what ``pipecast compile`` prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipecast.cli import main
from pipecast.ir.models import ContainerRun
from pipecast.passes.parse import single_ref
from pipecast.passes.resolve import DictOf, Lit, LoopItem, ParamRef, PipelineField, StepOutput, Text, Value
from pipecast.stock import Slot, arg_parts, input_kind, literal_text, render_args, slots

# A python step and a stock container step in the same image (the churn example's shape
# before it reported its AUCs as metrics).
MIXED = """\
pipecast: 1
name: mixed-images
defaults: {image: "python:3.11-slim"}
steps:
  train:
    run: {python: "m.steps:train"}
    outputs: {auc: float}
  pick:
    run: {image: "python:3.11-slim", command: [python, -c, "import sys; open(sys.argv[2],'w').write(sys.argv[1])", "{{ inputs.auc }}", "{{ outputs.best }}"]}
    inputs: {auc: "{{ steps.train.outputs.auc }}"}
    outputs: {best: float}
"""


def test_arguments_split_into_text_and_slots() -> None:
    assert arg_parts("--out={{ outputs.m }}/x") == ["--out=", Slot("outputs", "m"), "/x"]
    assert arg_parts("{{inputs.a}}") == [Slot("inputs", "a")]
    assert arg_parts("") == [""]
    run = ContainerRun(
        image="i", command=["sh", "-c", "{{ inputs.a }} {{ inputs.a }}"], args=["{{ outputs.b }}"]
    )
    assert slots(run) == [Slot("inputs", "a"), Slot("outputs", "b")]


def test_user_text_and_placeholders_stay_apart() -> None:
    """The target's escaping sees only user text; its placeholders are never escaped."""
    out = render_args(
        ["{{ inputs.a }}-{x}", "plain"],
        lambda s: f"<{s.kind}:{s.name}>",
        lambda text: text.replace("{", "\\{"),
    )
    assert out == ["<inputs:a>-\\{x}", "plain"]


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (3, "literal"),
        ({"a": [1]}, "literal"),
        ("{{ params.p }}", "ref"),
        ("{{ steps.s.outputs.o }}", "ref"),
        ("{{ item }}", "ref"),
        ("{{ item.key }}", "runtime"),
        ("s3://{{ params.p }}/x", "runtime"),
        ("{{ pipeline.run_id }}", "runtime"),
        ({"a": "{{ params.p }}"}, "runtime"),
    ],
)
def test_input_kinds(value: object, kind: str) -> None:
    """``input_kind`` reads the input's resolved form (built here by hand, out of a pipeline)."""
    assert input_kind(value, _resolved(value)) == kind


def _resolved(value: object) -> Value:
    if not isinstance(value, str):
        return Lit(value, "any") if "{{" not in str(value) else DictOf(())
    ref = single_ref(value)
    if ref is None:
        return Text(())
    cls = {"param": ParamRef, "step": StepOutput, "loop": LoopItem, "pipeline": PipelineField}[ref.kind]
    return cls(ref, "any")  # type: ignore[abstract]


def test_literal_text_is_raw_for_strings_json_otherwise() -> None:
    assert literal_text("a b") == "a b"
    assert literal_text(2.0) == "2.0"
    # Compact JSON, keys in stored order (SPEC §22), as a mixed string renders it.
    assert literal_text([1, "x"]) == '[1,"x"]'
    assert literal_text({"z": 1.0, "a": [2]}) == '{"z":1.0,"a":[2]}'


def test_compile_lists_the_images_that_need_the_runtime(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Vertex and Step Functions (sagemaker) run the container step `pick` in
    python:3.11-slim unchanged; with compute=batch every image needs the runtime."""
    pipe = tmp_path / "pipeline.yaml"
    pipe.write_text(MIXED)
    assert main(["compile", str(pipe), "-t", "vertex", "-o", str(tmp_path / "v")]) == 0
    out = capsys.readouterr().out
    assert "images that need the pipecast runtime" in out
    line = next(x for x in out.splitlines() if x.strip().startswith("python:3.11-slim:"))
    assert "pick" not in line and "train" in line
    assert main(["compile", str(pipe), "-t", "stepfunctions", "-o", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.strip().startswith("python:3.11-slim:"))
    assert "pick" not in line and "train" in line
    batch = [
        "compile",
        str(pipe),
        "-t",
        "stepfunctions",
        "--set",
        "compute=batch",
        "-o",
        str(tmp_path / "b"),
    ]
    assert main(batch) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.strip().startswith("python:3.11-slim:"))
    assert "pick" in line
