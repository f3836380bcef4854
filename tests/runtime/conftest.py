"""Helpers for the runtime tests: the step module folder and a StepSpec builder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipecast.runtime.spec import StepSpec

PROJECT = Path(__file__).parent / "project"


def make_spec(run: str | dict[str, Any], outputs: dict[str, str] | None = None, **kw: Any) -> StepSpec:
    """A StepSpec for ``rt_steps:<run>`` (a string) or a container run (a dict)."""
    run_data = {"python": f"rt_steps:{run}"} if isinstance(run, str) else run
    if isinstance(kw.get("inputs"), list):  # names only: inputs of unknown type
        kw["inputs"] = {name: {"type": "any"} for name in kw["inputs"]}
    return StepSpec(pipeline="rt", step="s", run=run_data, outputs=outputs or {}, **kw)


@pytest.fixture
def pp() -> list[str]:
    return [str(PROJECT)]
