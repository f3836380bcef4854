"""Issue 15: secrets, run ids, locks and interrupted runs in the simulator."""

from __future__ import annotations

import json

import pytest

from pipecast.diagnostics import UserError

SECRET = "s3cr3t-value-42"

LEAK = """
pipecast: 1
name: leak
steps:
  a:
    run: {python: "steps:token_line"}
    inputs: {name: TOKEN}
    secrets: {TOKEN: api-token}
    outputs: {output: str}
  b:
    run: {python: "steps:length"}
    inputs: {text: "{{ steps.a.outputs.output }}"}
    outputs: {output: int}
"""

EXTRA = """
def token_line(name):
    import os
    return "token=" + os.environ[name]

def length(text):
    return len(text)

def hello():
    return "hello world"
"""


@pytest.fixture
def env(sim):
    (sim.tmp / "steps.py").write_text((sim.tmp / "steps.py").read_text() + EXTRA)
    return sim


def _files(root):
    return [p for p in root.rglob("*") if p.is_file()]


def test_resume_reruns_a_step_whose_output_held_a_secret(env):
    rec = env.run(LEAK, secrets={"api-token": SECRET}, run_id="r1", fail=["b"])
    assert rec["status"] == "failed"
    assert rec["steps"]["a"]["outputs"]["output"] == "token=***"
    assert rec["steps"]["a"]["secret_outputs"] is True
    for path in _files(env.runs):
        assert SECRET.encode() not in path.read_bytes(), path
    rec = env.run(LEAK, secrets={"api-token": SECRET}, resume="r1")
    assert rec["status"] == "succeeded"
    # b computed from the real value, not from 'token=***'
    assert rec["steps"]["b"]["outputs"]["output"] == len("token=" + SECRET)
    assert not rec["steps"]["a"].get("resumed")


def test_a_secret_never_reaches_the_cache_in_plain_text(env):
    text = LEAK.replace(
        "    outputs: {output: str}\n  b:", "    outputs: {output: str}\n    cache: true\n  b:"
    )
    for run_id in ("c1", "c2"):
        rec = env.run(text, secrets={"api-token": SECRET}, run_id=run_id)
        assert rec["status"] == "succeeded"
        assert rec["steps"]["b"]["outputs"]["output"] == len("token=" + SECRET)
    for path in _files(env.runs):
        assert SECRET.encode() not in path.read_bytes(), path


def test_a_short_secret_does_not_mangle_other_values(env):
    text = """
    pipecast: 1
    name: short
    steps:
      s:
        run: {python: "steps:hello"}
        secrets: {T: tiny}
        outputs: {output: str}
      t:
        run: {python: "steps:length"}
        inputs: {text: "{{ steps.s.outputs.output }}"}
        outputs: {output: int}
    """
    rec = env.run(text, secrets={"tiny": "e"}, run_id="s1", fail=["t"])
    assert rec["steps"]["s"]["outputs"]["output"] == "hello world"
    assert any("'tiny' is shorter than" in w for w in rec["warnings"])
    rec = env.run(text, secrets={"tiny": "e"}, resume="s1")
    assert rec["steps"]["s"]["resumed"] is True
    assert rec["steps"]["t"]["outputs"]["output"] == 11
    assert json.loads((env.runs / "s1" / "run.json").read_text())["steps"]["s"]["outputs"]["output"] == (
        "hello world"
    )


def test_run_ids_are_names(env, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "run.json").write_text("{}")
    text = "pipecast: 1\nname: p\nsteps:\n  s: {run: {python: 'steps:hello'}, outputs: {output: str}}\n"
    for bad in ("../victim", "a/b", "..", "", ".hidden", "x" * 201):
        with pytest.raises(UserError, match="is not a run id"):
            env.run(text, run_id=bad)
        with pytest.raises(UserError, match="is not a run id"):
            env.run(text, resume=bad)
    assert (victim / "run.json").read_text() == "{}"
    assert not (tmp_path / "a").exists()
    from pipecast.cli import main

    assert main(["show", "../victim", "--run-dir", str(env.runs)]) == 1


def test_a_truncated_record_is_damaged_not_missing(env, capsys):
    from pipecast.cli import main

    rec = env.run(
        "pipecast: 1\nname: p\nsteps:\n  s: {run: {python: 'steps:hello'}, outputs: {output: str}}\n"
    )
    path = env.runs / rec["run_id"] / "run.json"
    path.write_text(path.read_text()[:40])
    assert main(["show", rec["run_id"], "--run-dir", str(env.runs)]) == 1
    err = capsys.readouterr().err
    assert "is damaged" in err and "no run record" not in err
