"""The cyclic collector is paused while a compile builds its output, and only then."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from pipecast import registry
from pipecast.api import compile_pipeline, load_checked
from pipecast.diagnostics import UserError
from pipecast.gcpause import gc_paused

PIPELINE = "pipecast: 1\nname: tiny\nsteps:\n  a: {run: {python: 'm:f'}, image: 'img:1', outputs: {x: int}}\n"


def test_gc_paused_restores_the_previous_state() -> None:
    assert gc.isenabled()
    with pytest.raises(ValueError), gc_paused():
        assert not gc.isenabled()
        with gc_paused():  # nested: the inner pause does not re-enable it
            pass
        assert not gc.isenabled()
        raise ValueError
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # a caller's own pause is kept
    finally:
        gc.enable()


@pytest.mark.parametrize("target", [t for t in registry.available() if t != "local"])
def test_compile_runs_with_the_collector_paused(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(PIPELINE, encoding="utf-8")
    backend = registry.get(target)
    seen: list[bool] = []
    emit = backend.emit

    def watched_emit(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        if len(seen) > 1:
            raise RuntimeError("emit failed")
        return emit(*args, **kwargs)

    monkeypatch.setattr(backend, "emit", watched_emit)
    compile_pipeline(load_checked(path), target)
    assert seen == [False]
    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="emit failed"):
        compile_pipeline(load_checked(path), target)
    assert seen == [False, False]
    assert gc.isenabled()  # back on after a failed compile too
    with pytest.raises(UserError):
        compile_pipeline(load_checked(path), target, {"no_such_setting": 1})
    assert gc.isenabled()
