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
