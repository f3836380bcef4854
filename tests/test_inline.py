"""Sub-pipelines inlined for targets without nested graphs (passes/inline.py), and the
record mapped back (verify.records.restore_inlined_groups)."""

from __future__ import annotations

from pathlib import Path

from pipecast.api import compile_pipeline, load_checked
from pipecast.passes.analysis import PipelineIndex
from pipecast.passes.inline import flat_names, inline_plain_groups
from pipecast.verify.records import restore_inlined_groups

CALLED = """\
pipecast: 1
name: prep
params: {x: {type: int}}
steps:
  clean:
    run: {python: "m:f"}
    inputs: {x: "{{ params.x }}"}
    outputs: {output: int}
outputs: {value: "{{ steps.clean.outputs.output }}"}
"""

CALLER = """\
pipecast: 1
name: caller
steps:
  prep__clean:
    run: {python: "m:f"}
    inputs: {x: 1}
    outputs: {output: int}
  prep:
    uses: ./prep.yaml
    inputs: {x: "{{ steps.prep__clean.outputs.output }}"}
  last:
    run: {python: "m:f"}
    inputs: {x: "{{ steps.prep.outputs.value }}"}
    outputs: {output: int}
    after: [prep]
"""


def _loaded(tmp_path: Path):
    (tmp_path / "prep.yaml").write_text(CALLED)
    (tmp_path / "caller.yaml").write_text(CALLER)
    return load_checked(tmp_path / "caller.yaml")


def test_inlined_names_never_collide_and_references_follow(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path)
    names = flat_names(loaded.pipeline)
    # A user step is already called prep__clean: the inlined one gets a hashed name.
    assert names["prep.clean"] != "prep__clean" and names["prep.clean"].startswith("prep__clean_")
    flat = inline_plain_groups(loaded.pipeline)
    inner = names["prep.clean"]
    assert list(flat.steps) == ["prep__clean", inner, "last"]
    last = flat.steps["last"]
    assert last.inputs["x"] == "{{ steps." + inner + ".outputs.output }}"
    assert last.after == [inner]


def test_record_gets_dotted_keys_and_the_group_entry_back(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path)
    inner = flat_names(loaded.pipeline)["prep.clean"]
    record = {
        "status": "succeeded",
        "steps": {
            "prep__clean": {"status": "succeeded", "outputs": {"output": 1}},
            inner: {"status": "succeeded", "outputs": {"output": 7}},
            "last": {"status": "succeeded", "outputs": {"output": 7}},
        },
    }
    restored = restore_inlined_groups(record, PipelineIndex(loaded.pipeline))["steps"]
    assert restored["prep.clean"] == {"status": "succeeded", "outputs": {"output": 7}}
    assert restored["prep"] == {"status": "succeeded", "outputs": {"value": 7}}
    assert "prep__clean" in restored and inner not in restored


def test_every_inlining_target_compiles_it(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path)
    for target in ("stepfunctions", "vertex", "airflow", "azureml"):
        files = compile_pipeline(loaded, target).files
        assert any("prep__clean_" in text for text in files.values()), target
