"""The ``azureml`` runtime convention runs real steps: the compiled command lines are executed
with local folders standing in for Azure ML's mounts (``${{inputs.X}}``/``${{outputs.Y}}``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from azml_helpers import compile_file

pytestmark = pytest.mark.azureml

PIPELINE = """
pipecast: 1
name: conv-test
params:
  n: {type: int, default: 3}
  tags: {type: list, default: [a, b]}
steps:
  make:
    run: {python: "steps_mod:make"}
    inputs: {n: "{{ params.n }}", tags: "{{ params.tags }}", note: "n={{ params.n }} in {{ pipeline.name }}"}
    outputs: {table: Dataset, total: int, label: str, meta: dict}
    retry: {attempts: 2, delay: 10ms}
  use:
    run: {python: "steps_mod:use"}
    inputs: {table: "{{ steps.make.outputs.table }}", total: "{{ steps.make.outputs.total }}"}
    outputs: {ok: bool}
  gate:
    when: "steps.make.outputs.total > 2 and steps.make.outputs.label == 'three'"
    steps:
      inner:
        run: {python: "steps_mod:use"}
        inputs: {table: "{{ steps.make.outputs.table }}", total: 1}
        outputs: {ok: bool}
"""

STEPS = """
import json, os
from pathlib import Path

def make(n, tags, note, table):
    marker = Path(os.environ["MARKER"])
    if not marker.exists():          # fail the first attempt: the runtime retries inside the job
        marker.write_text("1")
        raise RuntimeError("flaky")
    Path(table).write_text(json.dumps({"n": n, "tags": tags, "note": note}))
    return {"total": n, "label": "three", "meta": {"tags": tags}}

def use(table, total):
    data = json.loads(Path(table).read_text())
    return data["n"] == total
"""


def _run(command: str, values: dict[str, str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Replace ``${{inputs.X}}``/``${{outputs.Y}}`` as Azure ML does, then run it in a shell."""
    text = re.sub(
        r"\$\{\{(inputs|outputs)\.([A-Za-z0-9_]+)\}\}",
        lambda m: values[f"{m.group(1)}.{m.group(2)}"],
        command,
    )
    text = text.replace("python -m", f"{sys.executable} -m", 1)
    return subprocess.run(["bash", "-c", text], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_steps_run_through_the_convention(tmp_path, monkeypatch):
    import os

    (tmp_path / "pipeline.yaml").write_text(textwrap.dedent(PIPELINE))
    (tmp_path / "steps_mod.py").write_text(STEPS)
    _loaded, result = compile_file(tmp_path / "pipeline.yaml")
    jobs = yaml.safe_load(result.files["conv-test.yml"])["jobs"]
    env = {**os.environ, "PIPECAST_PYTHON_PATH": str(tmp_path), "MARKER": str(tmp_path / "marker")}
    env.pop("MLFLOW_TRACKING_URI", None)
    mounts = tmp_path / "mounts"

    # make: pipeline inputs as values (a list as JSON text), outputs as mounted folders/paths.
    outs = {o: mounts / "make" / o for o in ("table", "total", "label", "meta")}
    outs["table"].mkdir(parents=True)
    values = {"inputs.n": "3", "inputs.tags": '["a", "b"]', "inputs.pipecast_ref0": "3"}
    values |= {f"outputs.{k}": str(v) for k, v in outs.items()}
    done = _run(jobs["make"]["component"]["command"], values, tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert "attempt 1/2 failed" in done.stderr
    stored = json.loads((outs["table"] / "table").read_text())  # a file artifact kept in its folder
    assert stored == {"n": 3, "tags": ["a", "b"], "note": "n=3 in conv-test"}
    assert outs["total"].read_text() == "3" and outs["label"].read_text() == "three"
    assert json.loads(outs["meta"].read_text()) == {"tags": ["a", "b"]}

    # use: the artifact input is the mounted folder of make's output, total a value.
    ok = mounts / "use" / "ok"
    values = {"inputs.table": str(outs["table"]), "inputs.total": "3", "outputs.ok": str(ok)}
    done = _run(jobs["use"]["component"]["command"], values, tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert ok.read_text() == "true"

    # the generated condition job evaluates SPEC §5 and writes a boolean control output.
    cond = jobs["gate__cond"]
    bound = cond["inputs"]
    result_path = mounts / "gate" / "result"
    values = {"outputs.result": str(result_path)}
    for channel, binding in bound.items():
        values[f"inputs.{channel}"] = "3" if "total" in binding else "three"
    done = _run(cond["component"]["command"], values, tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert result_path.read_text() == "true"


def test_loop_items_and_collected_inputs(tmp_path):
    from pipecast.runtime.conventions.azureml import collected_paths, loop_items

    assert json.loads(loop_items('[1, "x", {"k": 2}]', "item__v")) == [
        {"item__v": "1"}, {"item__v": '"x"'}, {"item__v": '{"k":2}'},
    ]  # fmt: skip
    assert json.loads(loop_items({"xs": [True]}, "item__x", key="xs")) == [{"item__x": "true"}]
    for i in (10, 2, 1):
        (tmp_path / str(i)).mkdir()
        (tmp_path / str(i) / f"m{i}.txt").write_text("x")
        (tmp_path / str(i) / ".pipecast-artifact.json").write_text(json.dumps({"file": f"m{i}.txt"}))
    assert [Path(p).name for p in collected_paths(tmp_path)] == ["m1.txt", "m2.txt", "m10.txt"]


def test_failure_exits_non_zero_with_one_line(tmp_path):
    (tmp_path / "pipeline.yaml").write_text(textwrap.dedent(PIPELINE))
    (tmp_path / "steps_mod.py").write_text(STEPS)
    _loaded, result = compile_file(tmp_path / "pipeline.yaml")
    jobs = yaml.safe_load(result.files["conv-test.yml"])["jobs"]
    import os

    env = {**os.environ, "PIPECAST_PYTHON_PATH": str(tmp_path), "MARKER": str(tmp_path / "marker")}
    values = {
        "inputs.table": str(tmp_path / "missing"),
        "inputs.total": "3",
        "outputs.ok": str(tmp_path / "ok"),
    }
    done = _run(jobs["use"]["component"]["command"], values, tmp_path, env)
    assert done.returncode == 1
    assert "artifact input 'table' is not mounted" in done.stderr.strip().splitlines()[-1]
