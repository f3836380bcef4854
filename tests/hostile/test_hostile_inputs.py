"""Issue 15, items 10-14: user mistakes are user errors (exit 1, a location, a fix), never
an internal error, a hang or a file that compiles but does not import."""

from __future__ import annotations

import os
import re
import sys
import time

import pytest

from pipecast.cli import main
from tests.hostile.cases import CASES, HEAD


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_file_is_a_located_user_error(name, tmp_path, capsys):
    file_name, text = CASES[name]
    path = tmp_path / file_name
    path.write_text(text)
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "internal error" not in err and "Traceback" not in err
    assert f"{path}:" in err and "error:" in err
    # every one names a line and column
    assert re.search(rf"^{re.escape(str(path))}:\d+:\d+: error:", err, re.M), err[:500]


@pytest.mark.parametrize(
    "name, where",
    [
        ("json_big_int", ":1:73: error: an integer of 5000 digits"),
        ("yaml_big_int", ":4:27: error: an integer of 5000 digits"),
        ("json_deep", ":1:135: error: the document nests deeper than 100 levels"),
        ("yaml_deep", ":3:104: error: the document nests deeper than 100 levels"),
    ],
)
def test_too_long_numbers_and_too_deep_nesting_are_located(name, where, tmp_path, capsys):
    file_name, text = CASES[name]
    path = tmp_path / file_name
    path.write_text(text)
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}{where}" in err, err[:800]
    assert "hint:" in err
    if "big_int" in name:
        assert "at params.p.default" in err
        assert "9" * 100 not in err  # the number is not echoed whole


def test_non_regular_files_are_refused_at_once(tmp_path, capsys):
    t0 = time.monotonic()
    assert main(["validate", "/dev/zero"]) == 1
    assert "not a regular file" in capsys.readouterr().err
    fifo = tmp_path / "p.yaml"
    os.mkfifo(fifo)
    assert main(["validate", str(fifo)]) == 1
    assert time.monotonic() - t0 < 5


def test_only_alias_repeats_count_toward_the_expansion_limit(tmp_path, capsys):
    steps = "".join(f"  s{i}: {{run: {{python: 'm:f'}}}}\n" for i in range(15_000))
    big = tmp_path / "big.yaml"
    big.write_text(HEAD + "steps:\n" + steps)
    from pipecast.loader import load

    assert len(load(big).pipeline.steps) == 15_000
    bomb = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 7)]
    bomb.write_text("\n".join(lines) + "\n" + HEAD + STEP_TEXT)
    assert main(["validate", str(bomb)]) == 1
    assert "through aliases" in capsys.readouterr().err


STEP_TEXT = "steps:\n  s: {run: {python: 'm:f'}}\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "start_date=2024-13-45"], "not a calendar date"),
        (["--set", "start_date=2024-02-30"], "not a calendar date"),
    ],
)
def test_bad_settings_are_user_errors(tmp_path, capsys, args, message):
    path = tmp_path / "p.yaml"
    path.write_text(HEAD + STEP_TEXT)
    assert main(["compile", str(path), "-t", "airflow", "-o", str(tmp_path / "o"), *args]) == 1
    assert message in capsys.readouterr().err


def test_run_option_mistakes_are_user_errors(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(HEAD + "steps:\n  s: {run: {python: 'm:f'}, secrets: {T: tok}}\n")
    assert main(["run", str(path), "--dry-run", "--max-parallel", "0"]) == 1
    capsys.readouterr()
    mock = tmp_path / "mock.yaml"
    mock.write_text("s: {duration: -5s}\n")
    assert main(["run", str(path), "--dry-run", "--mock", str(mock)]) == 1
    assert "s.duration" in capsys.readouterr().err
    env = tmp_path / "bad.env"
    env.write_bytes(b"tok=\xff\xfe\n")
    assert main(["run", str(path), "--secrets", str(env), "--run-dir", str(tmp_path / "r")]) == 1
    assert "not UTF-8" in capsys.readouterr().err


DSL = """
from pipecast.dsl import pipeline, step
print("PRINTED BY THE FILE")

@step
def one() -> int:
    return 1

@pipeline(name="p")
def p():
    one()
"""


@pytest.mark.parametrize(
    "args",
    [
        ["run", "P", "--dry-run", "--max-parallel", "0"],
        ["run", "P", "--dry-run", "--max-parallel", "-3"],
        ["run", "P", "--dry-run", "--max-parallel", "two"],
        ["run", "P", "--dry-run", "--max-parallel", "1e3"],
        ["run", "P", "--dry-run", "--seed", "1.5"],
        ["run", "P", "--dry-run", "--containers", "kvm"],
        ["run", "P", "--dry-run", "--param", "novalue"],
        ["verify", "P", "-t", "airflow", "--timeout", "nan"],
        ["verify", "P", "-t", "airflow", "--timeout", "-1"],
        ["export", "P", "--format", "xml"],
        ["completion", "tcsh"],
        ["export", "P", "-o", "."],
    ],
)
def test_bad_option_values_are_user_errors(tmp_path, capsys, args):
    path = tmp_path / "p.yaml"
    path.write_text(HEAD + STEP_TEXT)
    args = [str(path) if a == "P" else a for a in args]
    assert main(args) == 1
    err = capsys.readouterr().err
    flag = args[-2] if args[-2].startswith("-") else "shell"
    assert f"\ncommand line: error: {'export -o' if flag == '-o' else flag} " in "\n" + err, err
    assert "hint: " in err and "usage:" not in err and "Traceback" not in err


def test_unknown_commands_and_options_stay_usage_errors(capsys):
    assert main(["frobnicate"]) == 2
    assert main(["validate", "x.yaml", "--frobnicate"]) == 2


def test_dsl_file_output_stays_off_stdout_and_runs_once(tmp_path, capsys):
    path = tmp_path / "flow.py"
    path.write_text(DSL)
    assert main(["export", str(path), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    import json

    assert json.loads(out)["name"] == "p"
    assert err.count("PRINTED BY THE FILE") == 1
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().err.count("PRINTED BY THE FILE") == 1


@pytest.mark.parametrize(
    "body",
    [
        "import sys\nsys.exit(0)\n",
        "raise GeneratorExit('x')\n",
        "class E(BaseException):\n    pass\nraise E('boom')\n",
    ],
)
def test_dsl_file_that_exits_or_raises_base_exceptions(tmp_path, capsys, body):
    path = tmp_path / "flow.py"
    path.write_text(body)
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "importing flow.py failed" in err and "Traceback" not in err


def test_dsl_file_name_that_is_no_module_name(tmp_path, capsys):
    path = tmp_path / "my-pipeline.py"
    path.write_text(DSL)
    assert main(["validate", str(path)]) == 1
    assert "rename the file to my_pipeline.py" in capsys.readouterr().err
    sys.modules.pop("my-pipeline", None)


def test_an_oversized_definition_blames_a_huge_description(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(HEAD.replace("name: h", "name: d") + f"description: '{'x' * 1_100_000}'\n" + STEP_TEXT)
    assert main(["compile", str(path), "-t", "stepfunctions", "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "the pipeline's description" in err and "at description" in err


def test_airflow_warns_about_dags_too_large_to_import_in_time(tmp_path, monkeypatch):
    import pipecast_airflow.backend as af

    from pipecast.api import compile_pipeline, load_checked

    monkeypatch.setattr(af, "LARGE_DAG_TASKS", 3)
    path = tmp_path / "p.yaml"
    path.write_text(HEAD + "steps:\n" + "".join(f"  s{i}: {{run: {{python: 'm:f'}}}}\n" for i in range(4)))
    result = compile_pipeline(load_checked(path), "airflow", {})
    assert any(d.code == "limit" and "dagbag_import_timeout" in (d.hint or "") for d in result.diagnostics)
