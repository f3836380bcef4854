"""The bounded kfp.local runner (:mod:`pipecast.verify.kfp_child`): a run's record comes back
from its child process, and a run that does not end is killed, its stacks reported."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipecast.api import compile_pipeline, load_checked
from pipecast.passes.analysis import PipelineIndex
from pipecast.verify.kfp_child import KfpHang, run_bounded
from tests.conformance.catalogue import CASES_DIR

pytestmark = [pytest.mark.vertex, pytest.mark.filterwarnings("ignore::UserWarning")]

PIPELINE = """\
pipecast: 1
name: naps
params: {seconds: {type: float, default: 0.1}}
steps:
  nap:
    run: {python: "cstep:sleep"}
    inputs: {seconds: "{{ params.seconds }}"}
    outputs: {output: str}
"""


def _spec(tmp_path: Path, text: str = PIPELINE) -> tuple[Path, PipelineIndex]:
    """Compile pipeline ``text`` for Vertex: the spec file and the pipeline's index."""
    source = tmp_path / "pipeline.yaml"
    source.write_text(text)
    loaded = load_checked(source)
    files = compile_pipeline(
        loaded, "vertex", {"image": "python:3.11-slim", "pipeline_root": "gs://b/r"}
    ).files
    spec = tmp_path / "pipeline.spec.yaml"
    spec.write_text(files[f"{loaded.pipeline.name}.yaml"])
    return spec, loaded.index


def test_a_run_returns_its_record(tmp_path: Path) -> None:
    spec, index = _spec(tmp_path)
    work = tmp_path / "run"
    work.mkdir()
    record = run_bounded(spec, {}, work, [CASES_DIR], index=index, timeout=120)
    assert record["status"] == "succeeded"
    assert record["steps"]["nap"]["outputs"] == {"output": "woke"}
    assert (work / "kfp_local.log").read_text()  # the task logs stay beside the run


def test_a_run_past_its_bound_is_killed_with_its_stacks(tmp_path: Path) -> None:
    spec, index = _spec(tmp_path)
    work = tmp_path / "run"
    work.mkdir()
    started = time.monotonic()
    with pytest.raises(KfpHang) as hang:
        run_bounded(spec, {"seconds": 120.0}, work, [CASES_DIR], index=index, timeout=8)
    assert time.monotonic() - started < 30
    # The child was waiting on its task's subprocess: the stacks say so.
    assert "run_local_subprocess" in hang.value.stacks


FAN_OUT = """\
pipecast: 1
name: fan
steps:
  each:
    for_each: [0.1, 1.5, 0.5]
    as: s
    steps:
      nap:
        run: {python: "cstep:sleep"}
        inputs: {seconds: "{{ s }}"}
        outputs: {output: str}
"""


def test_parallel_items_leave_print_alone(tmp_path: Path) -> None:
    """kfp.local's ``indented_print`` swaps ``builtins.print`` from every ParallelFor thread;
    the first item ending before a later one leaves the later one's wrapper in place for good."""
    import builtins

    from pipecast.verify.kfp_local import run_local

    spec, index = _spec(tmp_path, FAN_OUT)
    before = builtins.print
    work = tmp_path / "run"
    work.mkdir()
    record = run_local(spec, {}, work, [CASES_DIR], index=index)
    assert record["status"] == "succeeded"
    assert builtins.print is before
