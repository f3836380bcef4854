"""SPEC §20 cache keys in the simulator: imported modules, installed packages, ``version`` and
``max_age``, and the ``cache`` mapping in the loader and the JSON Schema."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pipecast.diagnostics import UserError
from pipecast.runtime.cachekey import code_parts
from tests.simulator.conftest import outputs, statuses

pytestmark = pytest.mark.local

PIPELINE = """
pipecast: 1
name: stale
steps:
  s:
    run: {python: "task:compute"}
    inputs: {x: 2}
    outputs: {output: int}
    cache: CACHE
"""

TASK = """
from helpers.scale import factor

def compute(x):
    return x * factor()
"""


def _project(tmp: Path, factor: int = 10) -> None:
    (tmp / "task.py").write_text(TASK)
    (tmp / "helpers").mkdir(exist_ok=True)
    (tmp / "helpers" / "__init__.py").write_text("")
    (tmp / "helpers" / "scale.py").write_text(
        "from .consts import FACTOR\n\ndef factor():\n    return FACTOR\n"
    )
    (tmp / "helpers" / "consts.py").write_text(f"FACTOR = {factor}\n")


def test_changing_an_imported_helper_module_reruns_the_step(sim):
    """The stale-cache bug: only the function's own file was signed, so a change in a module
    it imports (here two imports away, through a relative import) returned the old result."""
    _project(sim.tmp, 10)
    path = sim.write(PIPELINE.replace("CACHE", "true"))
    first = sim.run(path)
    assert outputs(first, "s") == {"output": 20}
    assert statuses(sim.run(path))["s"] == "cached"
    (sim.tmp / "helpers" / "consts.py").write_text("FACTOR = 100\n")
    third = sim.run(path)
    assert statuses(third)["s"] == "succeeded"
    assert outputs(third, "s") == {"output": 200}


def test_version_reruns_and_max_age_expires(sim):
    _project(sim.tmp)
    v1 = sim.write(PIPELINE.replace("CACHE", "{version: '1'}"))
    assert statuses(sim.run(v1))["s"] == "succeeded"
    assert statuses(sim.run(v1))["s"] == "cached"
    v2 = sim.write(PIPELINE.replace("CACHE", "{version: '2'}"))
    assert statuses(sim.run(v2))["s"] == "succeeded"
    assert statuses(sim.run(v2))["s"] == "cached"
    # The same signature, but the stored result is older than max_age.
    aged = sim.write(PIPELINE.replace("CACHE", "{version: '2', max_age: 1s}"))
    for entry in (sim.runs / ".cache").rglob("*.json"):
        data = json.loads(entry.read_text())
        data["created"] = time.time() - 5
        entry.write_text(json.dumps(data))
    assert statuses(sim.run(aged))["s"] == "succeeded"
    assert statuses(sim.run(aged))["s"] == "cached"  # the fresh entry is young enough


def test_defaults_cache_mapping_and_step_override(sim):
    from pipecast.api import load_checked

    _project(sim.tmp)
    path = sim.write(
        PIPELINE.replace("    cache: CACHE\n", "    cache: true\n").replace(
            "steps:\n", "defaults: {cache: {version: v7, max_age: 1h}}\nsteps:\n", 1
        )
    )
    loaded = load_checked(path)
    eff = loaded.index.effective(loaded.index.nodes["s"])
    assert (eff.cache, eff.cache_version, eff.cache_max_age) == (True, "v7", 3600.0)
    off = sim.write(
        PIPELINE.replace("CACHE", "false").replace("steps:\n", "defaults: {cache: true}\nsteps:\n", 1)
    )
    assert load_checked(off).index.effective(load_checked(off).index.nodes["s"]).cache is False


def test_cache_mapping_errors_are_located(sim):
    from pipecast.api import load_checked

    path = sim.write(PIPELINE.replace("CACHE", "{versoin: '1'}"))
    with pytest.raises(UserError) as err:
        load_checked(path)
    text = "\n".join(d.render() for d in err.value.diagnostics)
    assert "versoin" in text and ":9:" in text and "did you mean 'version'" in text
    path = sim.write(PIPELINE.replace("CACHE", "{max_age: soon}"))
    with pytest.raises(UserError):
        load_checked(path)


def test_schema_accepts_the_cache_mapping():
    from jsonschema import Draft202012Validator

    from pipecast.schema import pipeline_schema

    validator = Draft202012Validator(pipeline_schema())
    base = {"pipecast": 1, "name": "p", "steps": {"s": {"run": {"python": "m:f"}}}}
    for cache, ok in (
        (True, True),
        ({"version": "2", "max_age": "1d"}, True),
        ({"max_age": 60}, True),
        ({"versoin": "2"}, False),
        ("yes", False),
    ):
        base["steps"]["s"]["cache"] = cache
        assert validator.is_valid(base) is ok, cache


def test_code_parts_follow_imports_and_name_installed_packages(tmp_path):
    _project(tmp_path)
    (tmp_path / "task.py").write_text(TASK + "\nimport json\nimport yaml\n")
    parts = code_parts("task", [str(tmp_path)])
    srcs = sorted(p.split()[1] for p in parts if p.startswith("src "))
    assert srcs == ["helpers", "helpers.consts", "helpers.scale", "task"]
    # The function's own package counts too (importing it runs its __init__).
    pkg = sorted(p.split()[1] for p in code_parts("helpers.scale", [str(tmp_path)]) if p.startswith("src "))
    assert pkg == ["helpers", "helpers.consts", "helpers.scale"]
    assert any(p.startswith("pkg PyYAML==") for p in parts), parts  # an installed package by version
    assert not any("json" in p for p in parts)  # the standard library does not count
