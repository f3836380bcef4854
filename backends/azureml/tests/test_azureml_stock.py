"""Container steps run stock images on Azure ML (SPEC §21): the compiled command lines run with
Azure ML's ``${{inputs.X}}``/``${{outputs.Y}}`` substitution emulated, local folders standing in
for its mounts, and a ``python`` on the PATH that cannot import pipecast for the stock step."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from azml_helpers import REPO, compile_file

from tests.fixtures.bare_python import shim_dir

pytestmark = pytest.mark.azureml

CASE = REPO / "tests/conformance/cases/stock_image.yaml"


def _run(command: str, values: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """Replace ``${{inputs.X}}``/``${{outputs.Y}}`` as Azure ML does (text, unquoted), then run
    the command in a shell whose ``python`` has no pipecast (the runtime goes to this one)."""
    text = re.sub(
        r"\$\{\{(inputs|outputs)\.([A-Za-z0-9_]+)\}\}",
        lambda m: values[f"{m.group(1)}.{m.group(2)}"],
        command,
    )
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(shim_dir()), os.environ.get("PATH", "")]),
        "PIPECAST_PYTHON_PATH": str(CASE.parent),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(["sh", "-c", text], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def _outputs(mounts: Path, job: str, component: dict) -> dict[str, str]:
    out = {}
    for name, decl in component.get("outputs", {}).items():
        path = mounts / job / name
        if decl["type"] == "uri_folder":
            path.mkdir(parents=True)  # Azure ML mounts an output folder before the job starts
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        out[f"outputs.{name}"] = str(path)
    return out


def test_stock_step_runs_without_pipecast_between_python_steps(tmp_path):
    _loaded, result = compile_file(CASE)
    assert result.summary["runtime_images"] == {"example.azurecr.io/steps:1": ["count", "double", "make"]}
    jobs = yaml.safe_load(result.files["stock-image.yml"])["jobs"]
    scale = jobs["scale"]["component"]
    assert "pipecast" not in scale["command"].replace("PIPECAST_", "").replace(".pipecast-artifact", "")
    assert scale["environment"] == {"image": "python:3.11-slim"}
    mounts = tmp_path / "mounts"

    make = _outputs(mounts, "make", jobs["make"]["component"])
    done = _run(jobs["make"]["component"]["command"], make, tmp_path)
    assert done.returncode == 0, done.stderr

    # scale: the stock step reads a file artifact (stored in a folder beside the marker), a
    # parameter and a literal; pipecast is not importable by its python.
    values = {"inputs.rows": make["outputs.out"], "inputs.factor": "3", **_outputs(mounts, "scale", scale)}
    done = _run(scale["command"], values, tmp_path)
    assert done.returncode == 0, done.stderr
    parts = mounts / "scale" / "parts"
    assert sorted(p.name for p in (parts / "parts").iterdir()) == ["part-0.txt", "part-1.txt", "part-2.txt"]
    assert json.loads((parts / ".pipecast-artifact.json").read_text()) == {"file": "parts"}
    assert (mounts / "scale" / "label" / "label").read_text() == "stock:a,bb,ccc"

    count = jobs["count"]["component"]
    values = {"inputs.path": str(parts), **_outputs(mounts, "count", count)}
    done = _run(count["command"], values, tmp_path)
    assert done.returncode == 0, done.stderr
    assert (mounts / "count" / "output").read_text() == "3"

    # double reads the stock step's parameter output n twice: a folder holding the value's text.
    double = jobs["double"]["component"]
    assert double["inputs"] == {"a": {"type": "uri_folder"}, "b": {"type": "uri_folder"}}
    n = str(mounts / "scale" / "n")
    values = {"inputs.a": n, "inputs.b": n, **_outputs(mounts, "double", double)}
    done = _run(double["command"], values, tmp_path)
    assert done.returncode == 0, done.stderr
    assert (mounts / "double" / "output").read_text() == "18"


def test_values_reach_a_stock_command_byte_for_byte(tmp_path):
    """Hostile values (quotes, $(...), newlines, a trailing newline, the here-document's end)
    arrive unchanged; user text with ``$[[`` is no Azure ML expression."""
    (tmp_path / "p.yaml").write_text(
        "pipecast: 1\nname: echo\nparams:\n  s: {type: str, default: x}\n  b: {type: bool, default: true}\n"
        "steps:\n  e:\n    run:\n      image: alpine:3\n"
        "      command: [sh, -c, 'printf %s \"$1|$2|$3\" > \"$4\"', 'a$[[b]]', '{{ inputs.s }}', "
        "'{{ inputs.b }}', '{{ inputs.lit }}', '{{ outputs.o }}']\n"
        "    inputs: {s: '{{ params.s }}', b: '{{ params.b }}', lit: \"it's $HOME\"}\n"
        "    outputs: {o: str}\n"
    )
    _loaded, result = compile_file(tmp_path / "p.yaml")
    command = yaml.safe_load(result.files["echo.yml"])["jobs"]["e"]["component"]["command"]
    assert "$[[" not in command
    hostile = "q'\"`$(touch pwned)` \\\nPIPECAST_VALUE_ENDx\n\n"
    values = {"inputs.s": hostile, "inputs.b": "True", "outputs.o": str(tmp_path / "o")}
    (tmp_path / "o").mkdir()
    done = _run(command, values, tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "o" / "o").read_text() == f"{hostile}|true|it's $HOME"
    assert not (tmp_path / "pwned").exists()


def test_stock_command_retries_in_the_shell(tmp_path):
    """Command jobs have no retry: the command retries with SPEC §6 waits, each attempt without
    the last one's outputs, and ends with the last attempt's exit status."""
    (tmp_path / "p.yaml").write_text(
        "pipecast: 1\nname: flaky\nsteps:\n  f:\n    run:\n      image: alpine:3\n"
        '      command: [sh, -c, \'echo x >> "$1"; test -e "$2" && exit 9; echo >> "$2"; '
        '[ $(wc -l < "$1") -ge "$3" ] || exit 3; echo ok > "$2"\', s, \'{{ inputs.count }}\', '
        "'{{ outputs.o }}', '{{ inputs.need }}']\n"
        "    inputs: {count: COUNT, need: 2}\n    outputs: {o: str}\n"
        "    retry: {attempts: 3, delay: 10ms, backoff: 2, jitter: true}\n"
    )
    for need, attempts, status in ((2, 2, 0), (5, 3, 3)):
        text = (tmp_path / "p.yaml").read_text().replace("COUNT", str(tmp_path / f"count{need}"))
        (tmp_path / "q.yaml").write_text(text.replace("need: 2", f"need: {need}"))
        _loaded, result = compile_file(tmp_path / "q.yaml")
        assert result.summary["runtime_images"] == {}
        assert any(d.code == "jitter-ignored" for d in result.diagnostics)
        command = yaml.safe_load(result.files["flaky.yml"])["jobs"]["f"]["component"]["command"]
        assert "case $pipecast_attempt in 1) sleep 0.01;; 2) sleep 0.02;; esac" in command
        out = tmp_path / f"o{need}"
        out.mkdir()
        done = _run(command, {"outputs.o": str(out)}, tmp_path)
        assert done.returncode == status, done.stderr
        assert (tmp_path / f"count{need}").read_text().count("x") == attempts
        if status == 0:
            assert (out / "o").read_text() == "ok\n"
            assert done.stderr.count("failed (exit 3)") == 1


def test_steps_the_command_cannot_fill_fall_back_to_the_runtime(tmp_path):
    text = CASE.read_text().replace("    outputs: {parts: Artifact, n: int, label: str}",
                                    "    outputs: {parts: Artifact, n: int, label: str}\n    secrets: {TOKEN: tok}")  # fmt: skip
    (tmp_path / "stock_secret.yaml").write_text(text)
    (tmp_path / "cstep.py").write_text((CASE.parent / "cstep.py").read_text())
    _loaded, result = compile_file(tmp_path / "stock_secret.yaml")
    assert result.summary["runtime_images"]["python:3.11-slim"] == ["scale"]
    command = yaml.safe_load(result.files["stock-image.yml"])["jobs"]["scale"]["component"]["command"]
    assert "pipecast.runtime run" in command


def test_a_container_step_beside_python_steps_runs_stock(tmp_path):
    # The churn example's shape before it reported its AUCs as metrics: a python step and a
    # stock container step in the same image.
    (tmp_path / "p.yaml").write_text(
        "pipecast: 1\nname: mixed\ndefaults: {image: 'python:3.11-slim'}\nsteps:\n"
        "  train:\n    run: {python: 'm.steps:train'}\n    outputs: {auc: float}\n"
        "  pick:\n    run: {image: 'python:3.11-slim', command: [python, -c, 'import sys; "
        "open(sys.argv[2], \"w\").write(sys.argv[1])', '{{ inputs.auc }}', '{{ outputs.best }}']}\n"
        "    inputs: {auc: '{{ steps.train.outputs.auc }}'}\n    outputs: {best: float}\n"
    )
    _loaded, result = compile_file(tmp_path / "p.yaml")
    assert result.summary["runtime_images"] == {"python:3.11-slim": ["train"]}


@pytest.mark.parametrize(
    "extra, inputs",
    [
        ("params:\n  p: {type: str, default: 'a${{b}}'}\n", "{v: '{{ params.p }}'}"),  # travels encoded
        ("", "{v: 'mixed {{ params.q }}'}"),  # built at run time
    ],
)
def test_inputs_only_the_runtime_can_fill_fall_back(tmp_path, extra, inputs):
    params = extra or "params:\n  q: {type: str, default: x}\n"
    (tmp_path / "p.yaml").write_text(
        f"pipecast: 1\nname: fb\n{params}steps:\n  e:\n    run:\n      image: alpine:3\n"
        f"      command: [echo, '{{{{ inputs.v }}}}']\n    inputs: {inputs}\n"
    )
    _loaded, result = compile_file(tmp_path / "p.yaml")
    assert result.summary["runtime_images"] == {"alpine:3": ["e"]}


def test_a_loop_item_falls_back_and_a_plain_step_does_not(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "pipecast: 1\nname: lp\nsteps:\n  plain:\n    run: {image: 'alpine:3', command: [echo, hi]}\n"
        "  g:\n    for_each: [a, b]\n    as: it\n    steps:\n      e:\n"
        "        run: {image: 'alpine:3', command: [echo, '{{ inputs.v }}']}\n        inputs: {v: '{{ it }}'}\n"
    )
    _loaded, result = compile_file(tmp_path / "p.yaml")
    assert result.summary["runtime_images"] == {"alpine:3": ["e"]}
