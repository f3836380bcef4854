"""The backend plugin interface: what the core learns from each installed backend."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipecast import registry
from pipecast.cli import main
from pipecast.conformance import Conformance, hooks_for
from pipecast.diagnostics import UserError
from pipecast.runtime import conventions
from pipecast.runtime.secrets import SecretError, resolve, store_names

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "churn" / "pipeline.yaml"


@pytest.mark.parametrize("name", registry.available())
def test_every_backend_declares_its_hooks(name: str) -> None:
    backend = registry.get(name)
    assert isinstance(hooks_for(backend), Conformance)
    assert backend.summary_lines({}) == []
    profile = backend.profile()
    assert profile is None or profile.report() == {"target": name, "violations": [], **profile.extra()}


def test_uninstalled_first_party_target_names_its_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_entry_points", lambda: {})
    registry.get.cache_clear()
    try:
        with pytest.raises(UserError) as err:
            registry.get("vertex")
    finally:
        registry.get.cache_clear()
    assert err.value.diagnostics[0].hint == "pip install pipecast-vertex"


def test_conventions_and_secret_stores_are_found_by_name() -> None:
    assert {"local", "s3", "kfp"} <= set(conventions.names())
    assert "base" not in conventions.names()
    assert conventions.load("kfp").name == "kfp"
    assert {"env", "aws"} <= set(store_names())
    with pytest.raises(SecretError, match="unknown secret store 'nope'"):
        resolve({"X": "x"}, "nope")


def test_a_missing_sdk_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``compile --check`` without the target's checker SDK: exit 1, the extra to install."""
    # kfp-pipeline-spec (compile) without kfp (--check): `from kfp import components` fails.
    import kfp

    monkeypatch.delattr(kfp, "components", raising=False)
    monkeypatch.setitem(sys.modules, "kfp.components", None)
    code = main(["compile", str(EXAMPLE), "--target", "vertex", "--check", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "needs the Python package 'kfp'" in err and "pip install 'pipecast-vertex[check]'" in err
    assert "Traceback" not in err


def test_the_core_names_no_target() -> None:
    """Outside the registry line, no code of the core names a target: no identifier, attribute,
    definition, argument, import or string other than documentation (docstrings, comments).
    Exempt, by file: the step runtime's target conventions, its secret stores and the Step
    Functions callback worker, which ship with ``pipecast`` because a step image (and an Airflow
    worker) installs only ``pipecast`` (docs/CONTRIBUTING.md, "Decisions behind the plugin
    interface"); any other runtime module is checked like the rest."""
    import ast
    import re

    exempt = {
        "registry.py",  # DISTRIBUTED, the one line a new backend adds
        "runtime/conventions/airflow.py",
        "runtime/conventions/azureml.py",
        "runtime/conventions/kfp.py",
        "runtime/conventions/sagemaker.py",
        "runtime/secrets.py",
        "runtime/worker.py",
    }
    targets = sorted({*registry.DISTRIBUTED, *(t for t in registry.available() if t != "local")})
    pattern = re.compile("|".join(targets), re.IGNORECASE)
    core = Path(__file__).resolve().parents[1] / "src" / "pipecast"
    assert all((core / rel).is_file() for rel in exempt), "an exempt file moved: update the list"
    found = []
    for path in sorted(core.rglob("*.py")):
        rel = path.relative_to(core).as_posix()
        if rel in exempt:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            text = None
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                text = node.value
            elif isinstance(node, ast.Name):
                text = node.id
            elif isinstance(node, ast.Attribute):
                text = node.attr
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                text = node.name
            elif isinstance(node, ast.arg | ast.keyword):
                text = node.arg
            elif isinstance(node, ast.Import | ast.ImportFrom):
                text = " ".join([getattr(node, "module", None) or "", *(a.name for a in node.names)])
            if text and pattern.search(text):
                found.append(f"{rel}:{getattr(node, 'lineno', '?')}: {text[:60]!r}")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("name", registry.available())
def test_one_check_phase(name: str) -> None:
    """A backend reports its user errors in check_target, through the Report (issue 16 part 3):
    none overrides Backend.check, which runs the feature table, then check_target with the
    user's settings."""
    from pipecast.backend import Backend

    backend = registry.get(name)
    assert type(backend).check is Backend.check, f"{name} overrides Backend.check: use check_target"
