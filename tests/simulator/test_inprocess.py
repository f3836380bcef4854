"""Many runs in one process: sequentially and from threads, pipelines whose step modules
share a name (``steps``) in different folders, steps that finish at once (skipped, cached)
inside loops and long chains. Every run must finish (no hang), give its own pipeline's
results, start with fresh user-module state, and leave no child process behind."""

from __future__ import annotations

import os
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.simulator.conftest import statuses

pytestmark = pytest.mark.local

STEPS = """
CALLS = 0

def which(x):
    global CALLS
    CALLS += 1
    return {{"who": "{who}", "x": x, "calls": CALLS}}
"""

PIPELINE = """
pipecast: 1
name: who-{low}
params:
  xs: {{type: list, default: [1, 5, 2, 8]}}
steps:
  first:
    run: {{python: "steps:which"}}
    inputs: {{x: 0}}
    outputs: {{output: dict}}
  each:
    for_each: "{{{{ params.xs }}}}"
    as: x
    parallelism: 2
    after: [first]
    steps:
      big:
        when: "x > 3"
        run: {{python: "steps:which"}}
        inputs: {{x: "{{{{ x }}}}"}}
        outputs: {{output: dict}}
"""

LIMIT = 60.0  # seconds: a run that takes longer than this is hung


def _children() -> set[int]:
    """Live child processes of this process (every thread's children, from /proc)."""
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids.update(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return {p for p in pids if Path(f"/proc/{p}").exists() and _state(p) != "Z"}


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


def _project(tmp: Path, who: str) -> Path:
    folder = tmp / who
    folder.mkdir()
    (folder / "steps.py").write_text(STEPS.format(who=who))
    path = folder / "pipeline.yaml"
    path.write_text(textwrap.dedent(PIPELINE.format(who=who, low=who.lower())))
    return path


def _run(path: Path, runs: Path, **options: Any) -> dict[str, Any]:
    """run_pipeline in a thread, failing the test (not hanging it) after LIMIT seconds."""
    from pipecast.api import load_checked
    from pipecast.simulator import run_pipeline

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["record"] = run_pipeline(load_checked(path), run_dir=runs, max_parallel=2, **options)
        except BaseException as exc:  # reported in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(LIMIT)
    assert not thread.is_alive(), f"run_pipeline({path.parent.name}) did not return within {LIMIT:g}s"
    if "error" in box:
        raise box["error"]
    return box["record"]


def _check(record: dict[str, Any], who: str) -> None:
    assert record["status"] == "succeeded", record
    assert statuses(record) == {
        "first": "succeeded",
        "each": "succeeded",
        "big[0]": "skipped",
        "big[1]": "succeeded",
        "big[2]": "skipped",
        "big[3]": "succeeded",
    }
    outs = {k: e["outputs"]["output"] for k, e in record["steps"].items() if k != "each" and "outputs" in e}
    assert {k: (o["who"], o["x"]) for k, o in outs.items()} == {
        "first": (who, 0),
        "big[1]": (who, 5),
        "big[3]": (who, 8),
    }
    # Fresh workers per run: module state starts over, at most 3 calls land on one worker.
    assert outs["first"]["calls"] == 1
    assert all(1 <= o["calls"] <= 3 for o in outs.values())


def test_sequential_runs_of_same_named_modules(tmp_path: Path) -> None:
    before = _children()
    a, b = _project(tmp_path, "A"), _project(tmp_path, "B")
    for path, who in [(a, "A"), (b, "B"), (a, "A"), (b, "B")]:
        _check(_run(path, tmp_path / "runs"), who)
        assert _children() - before == set(), "worker processes left behind"


def test_concurrent_runs_of_same_named_modules(tmp_path: Path) -> None:
    before = _children()
    paths = {who: _project(tmp_path, who) for who in "ABC"}
    results: dict[int, tuple[str, dict[str, Any]]] = {}
    errors: list[BaseException] = []

    def one(i: int, who: str) -> None:
        try:
            results[i] = (who, _run(paths[who], tmp_path / f"runs{i}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i, "ABC"[i % 3])) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(LIMIT * 2)
    assert not errors, errors
    assert len(results) == 6
    for who, record in results.values():
        _check(record, who)
    assert _children() - before == set(), "worker processes left behind"


def test_cached_loop_iterations_finish(tmp_path: Path) -> None:
    """A second run whose loop iterations are all cache hits (finish at once) completes."""
    path = _project(tmp_path, "C")
    text = path.read_text().replace(
        "outputs: {output: dict}\n", "outputs: {output: dict}\n        cache: true\n"
    )
    path.write_text(text.replace("        cache: true\n", "", 1))  # cache only the loop's step
    first = _run(path, tmp_path / "runs")
    second = _run(path, tmp_path / "runs")
    assert statuses(second)["big[1]"] == "cached" and statuses(second)["big[3]"] == "cached"
    assert second["steps"]["big[3]"]["outputs"] == first["steps"]["big[3]"]["outputs"]


def _write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def test_long_chain_of_skipped_steps(tmp_path: Path) -> None:
    """3,000 steps that each skip at once (each reads the previous one) do not recurse."""
    lines = [
        "pipecast: 1",
        "name: deep",
        "steps:",
        '  s0: {when: "1 > 2", run: {python: "m:f"}, outputs: {o: int}}',
    ]
    lines += [
        f'  s{i}: {{run: {{python: "m:f"}}, inputs: {{x: "{{{{ steps.s{i - 1}.outputs.o }}}}"}}, '
        "outputs: {o: int}}"
        for i in range(1, 3000)
    ]
    path = _write(tmp_path, "deep.yaml", "\n".join(lines) + "\n")
    record = _run(path, tmp_path / "runs", dry_run=True)
    assert record["status"] == "succeeded"
    assert set(statuses(record).values()) == {"skipped"} and len(record["steps"]) == 3000


def test_wide_loop_of_skipped_iterations(tmp_path: Path) -> None:
    items = list(range(3000))
    text = f"""
pipecast: 1
name: wide
params:
  xs: {{type: list, default: {items}}}
steps:
  each:
    for_each: "{{{{ params.xs }}}}"
    as: x
    steps:
      a: {{when: "x > 2997", run: {{python: "m:f"}}}}
"""
    record = _run(_write(tmp_path, "wide.yaml", text), tmp_path / "runs", dry_run=True)
    st = statuses(record)
    assert record["status"] == "succeeded" and st["each"] == "succeeded"
    assert st["a[2998]"] == st["a[2999]"] == "succeeded"
    assert sum(v == "skipped" for v in st.values()) == 2998
