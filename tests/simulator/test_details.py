"""Details a user meets from the shell: resume re-runs finally, an installed but unusable
container engine, the record's step order, errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipecast.diagnostics import UserError
from tests.simulator.conftest import outputs, statuses

pytestmark = pytest.mark.local

FINALLY = """
pipecast: 1
name: fin
steps:
  a:
    run: {python: "steps:emit"}
    inputs: {value: 1}
    outputs: {output: int}
  b:
    run: {python: "steps:add"}
    inputs: {a: "{{ steps.a.outputs.output }}", b: 1}
    outputs: {output: int}
finally:
  run: {python: "steps:status"}
  inputs: {s: "{{ pipeline.status }}"}
  outputs: {output: str}
"""


def test_resume_runs_finally_again_with_the_new_status(sim):
    path = sim.write(FINALLY)
    first = sim.run(path, fail=["b"])
    assert first["status"] == "failed" and outputs(first, "finally") == {"output": "failed"}
    second = sim.run(path, resume=first["run_id"])
    assert second["status"] == "succeeded"
    assert second["steps"]["a"].get("resumed") is True
    assert "resumed" not in second["steps"]["finally"]
    assert outputs(second, "finally") == {"output": "succeeded"}
    assert outputs(second, "b") == {"output": 2}


CONTAINER = """
pipecast: 1
name: box
steps:
  c:
    run: {image: "alpine:3", command: [sh, -c, "printf 7 > {{ outputs.n }}"]}
    outputs: {n: int}
"""


def test_installed_but_unusable_docker_is_a_clear_error(sim, monkeypatch):
    fake = sim.tmp / "bin"
    fake.mkdir()
    for engine in ("docker", "podman"):
        script = fake / engine
        script.write_text(
            "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2\nexit 1\n"
        )
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    path = sim.write(CONTAINER)
    with pytest.raises(UserError) as err:
        sim.run(path, containers=None)
    text = str(err.value)
    assert str(path) in text and "Cannot connect" in text and "--containers host" in text
    with pytest.raises(UserError, match="--containers docker"):
        sim.run(path, containers="docker")
    record = sim.run(path, containers="host")
    assert record["status"] == "succeeded" and outputs(record, "c") == {"n": 7}
    assert any("alpine:3" in w and "ignored" in w for w in record["warnings"])


ORDER = """
pipecast: 1
name: order
steps:
  first:
    run: {python: "steps:emit"}
    inputs: {value: [1, 2]}
    outputs: {output: list}
  loop:
    for_each: "{{ steps.first.outputs.output }}"
    steps:
      inner:
        run: {python: "steps:square"}
        inputs: {x: "{{ item }}"}
        outputs: {output: int}
    outputs: {squares: "{{ steps.inner.outputs.output }}"}
  last:
    run: {python: "steps:total"}
    inputs: {xs: "{{ steps.loop.outputs.squares }}"}
    outputs: {output: int}
"""


def test_record_order_is_writing_order_and_show_follows_it(sim, capsys):
    from pipecast.simulator.progress import print_summary
    from pipecast.simulator.run import read_record

    record = sim.run(sim.write(ORDER))
    assert record["order"] == ["first", "loop", "inner[0]", "inner[1]", "last"]
    assert list(record["steps"]) == record["order"]
    assert outputs(record, "last") == {"output": 5}
    # run.json is written with sorted keys; show prints in writing order all the same.
    print_summary(read_record(sim.runs / record["run_id"]))
    out = capsys.readouterr().out
    rows = [line.split()[1] for line in out.splitlines() if line.startswith("│")]
    assert rows == ["first", "loop", "inner[0]", "inner[1]", "last"]


def test_start_errors_name_the_file(sim):
    path = sim.write(FINALLY)
    with pytest.raises(UserError) as err:
        sim.run(path, fail=["bb"])
    assert str(err.value).startswith(f"{path}:") and "did you mean" in str(err.value)
    assert statuses(sim.run(path)) == {"a": "succeeded", "b": "succeeded", "finally": "succeeded"}


def test_show_of_unknown_run_names_the_folder(sim):
    from pipecast.simulator.run import read_record

    with pytest.raises(UserError, match="pipecast runs"):
        read_record(Path(sim.runs) / "nope")
