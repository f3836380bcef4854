"""Hostile pipeline content never breaks or injects into the compiled Azure ML commands.

Quotes, double quotes, backslashes, newlines, tabs, ``$(...)``, backticks, ``${{ }}``/``$[[ ]]``
and the here-document end line sit in names' descriptions, defaults, literal inputs, env
values, loop items, conditions, run-time overrides and step outputs. The compiled files must
pass pipecast's checks and ``load_job`` + ``_validate()``, and the command lines, executed in
bash with Azure ML's substitution done as Azure ML does it (the value's text pasted into the
command) and local folders standing in for the mounts, must deliver every value unchanged and
run nothing it holds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from azml_helpers import compile_file

from pipecast.runtime.conventions.azureml import HEREDOC_END, encode_text

pytestmark = pytest.mark.azureml

BASE = (
    'it\'s "dq" back\\slash `touch PWNED_BT` $(touch PWNED_SUB) ;touch PWNED_SEMI\n'
    f"{HEREDOC_END}\n\ttab 'un\"balanced"
)
WITH_EXPR = BASE + " ${{inputs.text}} $[[ ${{inputs.x}} ]]"
RAW = 'o\'k $(touch PWNED_RAW) `touch PWNED_RAW2` "q" \\n\nsecond line'
ITEMS = [BASE, "$(touch PWNED_ITEM)", {"k": "it's ${x}"}, 7]
LITERAL = BASE + " $[[w]] ${ {x} }"

STEPS = """
import json, os
from pathlib import Path

def show(text, conf, raw, lit, mixed, report):
    Path(report).write_text(json.dumps(
        {"text": text, "conf": conf, "raw": raw, "lit": lit, "mixed": mixed, "env": os.environ["E1"]}))
    return mixed

def echo(v, t):
    return json.dumps({"v": v, "t": t}, sort_keys=True)
"""


def _pipeline() -> dict:
    return {
        "pipecast": 1,
        "name": "hostile",
        "description": WITH_EXPR,
        "params": {
            "text": {"type": "str", "default": WITH_EXPR, "description": WITH_EXPR},
            "conf": {"type": "dict", "default": {"k": WITH_EXPR, "n": [1, "$(x)"]}},
            "raw": {"type": "str", "default": RAW},
        },
        "steps": {
            "a": {
                "description": WITH_EXPR,
                "run": {"python": "hostile_steps:show"},
                "env": {"E1": WITH_EXPR},
                "inputs": {
                    "text": "{{ params.text }}",
                    "conf": "{{ params.conf }}",
                    "raw": "{{ params.raw }}",
                    "lit": LITERAL,
                    "mixed": "pre ' $(touch PWNED_MIX) {{ params.raw }} \" `x`",
                },
                "outputs": {"report": "Dataset", "o": "str"},
            },
            "loop": {
                "description": WITH_EXPR,
                "for_each": ITEMS,
                "as": "v",
                "steps": {
                    "b": {
                        "when": "v == '$(touch PWNED_ITEM)' or v == 7",
                        "run": {"python": "hostile_steps:echo"},
                        "inputs": {"v": "{{ v }}", "t": "{{ steps.a.outputs.o }}"},
                        "outputs": {"seen": "str"},
                    }
                },
            },
        },
    }


def _substitute(command: str, values: dict[str, str]) -> str:
    """What Azure ML does: paste each value's text in place of its expression, unquoted."""
    return re.sub(
        r"\$\{\{(inputs|outputs)\.([A-Za-z0-9_]+)\}\}",
        lambda m: values[f"{m.group(1)}.{m.group(2)}"],
        command,
    ).replace("python -m", f"{sys.executable} -m", 1)


class Runner:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.env = {**os.environ, "PIPECAST_PYTHON_PATH": str(tmp)}
        self.env.pop("MLFLOW_TRACKING_URI", None)

    def run(self, command: str, values: dict[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-c", _substitute(command, values)],
            cwd=self.tmp, env=self.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    def pwned(self) -> list[str]:
        return sorted(p.name for p in self.tmp.glob("PWNED*"))


def _text(value: object) -> str:
    """A literal input value as Azure ML pastes it (strings as they are)."""
    return value if isinstance(value, str) else json.dumps(value)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    (tmp / "pipeline.yaml").write_text(yaml.safe_dump(_pipeline(), sort_keys=False))
    (tmp / "hostile_steps.py").write_text(STEPS)
    _loaded, result = compile_file(tmp / "pipeline.yaml")
    return tmp, result


def test_hostile_content_validates(compiled):
    from pipecast_azureml.validate import validate_files

    _tmp, result = compiled
    problems = validate_files(result.files)  # own checks, load_job + _validate()
    assert not problems, "\n".join(p.render() for p in problems)
    job = yaml.safe_load(result.files["hostile.yml"])
    # Values Azure ML would read as its own expressions are encoded, safe ones stay readable.
    assert job["inputs"]["raw"] == RAW
    assert job["inputs"]["text"].startswith("pipecast:json:") and "$" not in job["inputs"]["text"]
    assert "$" not in job["inputs"]["conf"]
    assert "E1" not in job["jobs"]["a"].get("environment_variables", {})


def test_values_arrive_unchanged(compiled):
    tmp, result = compiled
    runner = Runner(tmp)
    job = yaml.safe_load(result.files["hostile.yml"])
    a = job["jobs"]["a"]
    params = {k: _text(v) for k, v in job["inputs"].items()}

    def run_a(overrides: dict[str, str], name: str) -> tuple[subprocess.CompletedProcess, Path, Path]:
        given = params | overrides
        out = tmp / name
        (out / "report").mkdir(parents=True)
        values = {f"inputs.{ch}": given[b.split(".")[-1][:-2]] for ch, b in a["inputs"].items()}
        values |= {"outputs.report": str(out / "report"), "outputs.o": str(out / "o")}
        return runner.run(a["component"]["command"], values), out / "report" / "report", out / "o"

    done, report, o = run_a({}, "a1")
    assert done.returncode == 0, done.stderr
    expected = {
        "text": WITH_EXPR,
        "conf": {"k": WITH_EXPR, "n": [1, "$(x)"]},
        "raw": RAW,
        "lit": LITERAL,
        "mixed": f"pre ' $(touch PWNED_MIX) {RAW} \" `x`",
        "env": WITH_EXPR,
    }
    assert json.loads(report.read_text()) == expected
    assert o.read_text() == expected["mixed"]
    assert runner.pwned() == []

    # Run-time overrides (`--set inputs.P=...`): raw text with quotes/newlines/$(...), and the
    # encoded form for text holding ${{ }} (which Azure ML would take for a binding).
    override = 'n\'ew $(touch PWNED_OV) `touch PWNED_OV2`\n"x"\\'
    done, report, o = run_a({"raw": override, "text": encode_text("${{z}} it's")}, "a2")
    assert done.returncode == 0, done.stderr
    seen = json.loads(report.read_text())
    assert seen["raw"] == override and seen["text"] == "${{z}} it's"
    assert runner.pwned() == []

    # A step output holding the here-document end line would end the next job's value early:
    # the producing step refuses to publish it.
    done, _report, o = run_a({"raw": encode_text(f"x\n{HEREDOC_END}\ntouch PWNED_NEXT")}, "a3")
    assert done.returncode == 1 and HEREDOC_END in done.stderr.strip().splitlines()[-1]
    assert not o.exists()

    # The loop: every item (always JSON text) and a's output reach the body unchanged; the
    # condition compares them as values.
    body = yaml.safe_load(result.files["components/loop.yml"])["jobs"]
    items = [entry["item__v"] for entry in json.loads(job["jobs"]["loop"]["items"])]
    t_text = expected["mixed"]  # what `a` published
    for i, (item_text, item) in enumerate(zip(items, ITEMS, strict=True)):
        cond = body["b__cond"]
        result_path = tmp / f"cond{i}"
        values = {f"inputs.{ch}": item_text for ch in cond["inputs"]} | {"outputs.result": str(result_path)}
        done = runner.run(cond["component"]["command"], values)
        assert done.returncode == 0, done.stderr
        assert result_path.read_text() == ("true" if item in ("$(touch PWNED_ITEM)", 7) else "false")
        seen_path = tmp / f"seen{i}"
        values = {"inputs.v": item_text, "inputs.t": t_text, "outputs.seen": str(seen_path)}
        done = runner.run(body["b"]["component"]["command"], values)
        assert done.returncode == 0, done.stderr
        assert json.loads(seen_path.read_text()) == {"v": item, "t": t_text}
    assert runner.pwned() == []


def test_commands_keep_substitutions_in_here_documents(compiled):
    """Every Azure ML expression in a command is a whole line inside a quoted here-document."""
    _tmp, result = compiled
    for rel, text in result.files.items():
        doc = yaml.safe_load(text)
        for name, job in (doc.get("jobs") or {}).items():
            if job.get("type") != "command":
                continue
            lines = job["component"]["command"].split("\n")
            for i, line in enumerate(lines):
                if "${{" in line or "$[[" in line:
                    assert re.fullmatch(r"\$\{\{(inputs|outputs)\.\w+\}\}", line), (rel, name, line)
                    assert lines[i - 1].endswith(f"<<'{HEREDOC_END}'") and lines[i + 1] == HEREDOC_END
