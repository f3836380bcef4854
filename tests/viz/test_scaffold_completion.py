"""``pipecast init`` (the scaffold's own tests run in a subprocess) and ``pipecast completion``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipecast.api import load_checked, load_settings
from pipecast.cli import build_parser, main

KINDS = ("churn", "sweep", "containers")


def test_init_then_the_projects_own_tests_pass(tmp_path: Path) -> None:
    procs = {}
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    for kind in KINDS:
        target = tmp_path / f"my-{kind}"
        assert main(["init", f"my-{kind}", "--example", kind, "--dir", str(target)]) == 0
        loaded = load_checked(target / "pipeline.yaml")
        assert loaded.pipeline.name == f"my-{kind}"
        readme = (target / "README.md").read_text()
        assert "pipecast run pipeline.yaml" in readme and "pipecast compile pipeline.yaml --target" in readme
        # The three projects' suites run side by side (each is a few simulator runs).
        procs[kind] = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
            cwd=target,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
    for kind, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{kind}:\n{out}"
        assert " passed" in out and "skipped" not in out, out


@pytest.mark.parametrize("target", ["stepfunctions", "vertex", "azureml", "airflow", "kubeflow"])
def test_settings_files_are_valid(tmp_path: Path, target: str) -> None:
    from pipecast import registry

    assert main(["init", "demo", "--dir", str(tmp_path / "p")]) == 0
    backend = registry.get(target)
    settings = load_settings(backend, tmp_path / "p" / "settings" / f"{target}.yaml")
    assert isinstance(settings, backend.settings_model)


def test_init_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    assert main(["init", "taken", "--dir", str(target)]) == 1
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert main(["init", "Bad_Name", "--dir", str(tmp_path / "x")]) == 1
    assert "try 'bad-name'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["init", "ok-name", "--dir", str(empty), "--example", "containers"]) == 0


def test_bash_completion_completes(tmp_path: Path) -> None:
    bash = shutil.which("bash")
    assert bash is not None
    script = tmp_path / "pipecast.bash"
    from pipecast.viz.completion import script as make

    script.write_text(make(build_parser(), "bash"))

    def complete(*words: str) -> list[str]:
        items = " ".join(f"'{w}'" for w in ("pipecast", *words))
        cmd = f'source {script}; COMP_WORDS=({items}); COMP_CWORD={len(words)}; _pipecast; printf "%s\\n" "${{COMPREPLY[@]}}"'
        out = subprocess.run([bash, "-c", cmd], capture_output=True, text=True, check=True, cwd=tmp_path)
        return out.stdout.split()

    assert {"graph", "report", "init", "completion", "validate", "compile", "run"} <= set(complete(""))
    assert complete("gr") == ["graph"]
    assert set(complete("compile", "p.yaml", "--target", "")) >= {
        "stepfunctions",
        "vertex",
        "azureml",
        "airflow",
    }
    assert complete("graph", "p.yaml", "--format", "d") == ["dot"]
    assert set(complete("completion", "")) == {"bash", "zsh", "fish"}
    assert "--example" in complete("init", "--ex")


def test_zsh_and_fish_scripts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "zsh"]) == 0
    zsh = capsys.readouterr().out
    assert "bashcompinit" in zsh and "complete -o default -F _pipecast pipecast" in zsh
    assert main(["completion", "fish"]) == 0
    fish = capsys.readouterr().out
    assert "complete -c pipecast -n 'not __fish_seen_subcommand_from" in fish
    assert "-l target -s t" in fish and "-xa 'bash zsh fish'" in fish
    for exe, text in (("zsh", zsh), ("fish", fish)):
        path = shutil.which(exe)
        if path:  # syntax check with the real shell where it is installed
            subprocess.run([path, "-n"], input=text, text=True, check=True)
