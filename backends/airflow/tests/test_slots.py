"""``parallelism`` on Airflow (SPEC §22): the in-order slot rule of the runtime, and the lowering.

``dag.test()`` runs one task at a time, so the conformance case ``parallelism_bound`` cannot
show two items racing for a slot; here one OS process per item applies
:func:`pipecast.runtime.conventions.airflow.slot_free` to a shared "done" table, all at once,
and the items' own start/end times must never show more than ``bound`` in progress.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest
from af_helpers import compile_file

from pipecast.runtime.conventions.airflow import _Resolver, slot_free

pytestmark = pytest.mark.airflow


def test_slot_free_rule() -> None:
    assert slot_free(0, 1, {})
    assert not slot_free(1, 1, {0: False})
    assert slot_free(1, 1, {0: True})
    assert slot_free(1, 2, {})  # fewer lower items than the bound
    assert not slot_free(3, 2, {0: True, 1: False})  # item 2 missing counts as not done
    assert slot_free(3, 2, {0: True, 1: False, 2: True})


def _item(folder: str, index: int, bound: int, count: int, seconds: float) -> None:
    root = Path(folder)
    while True:
        done = {m: (root / f"{m}.done").exists() for m in range(count)}
        if slot_free(index, bound, done):
            break
        time.sleep(0.005)
    started = time.time()
    time.sleep(seconds)
    ended = time.time()
    (root / f"{index}.json").write_text(json.dumps([started, ended]), encoding="utf-8")
    (root / f"{index}.done").write_text("", encoding="utf-8")


def _peak(spans: list[list[float]]) -> int:
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


@pytest.mark.parametrize("bound", [1, 2])
def test_concurrent_items_stay_within_bound(tmp_path: Path, bound: int) -> None:
    count = 5
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_item, args=(str(tmp_path), m, bound, count, 0.15)) for m in range(count)]
    for p in reversed(procs):  # the later items are up first
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    spans = [json.loads((tmp_path / f"{m}.json").read_text(encoding="utf-8")) for m in range(count)]
    assert _peak(spans) == bound


def test_first_tasks_of_an_item_wait_for_a_slot(tmp_path: Path) -> None:
    pipeline = tmp_path / "slots.yaml"
    pipeline.write_text(
        """
pipecast: 1
name: slots
steps:
  loop:
    for_each: [1, 2, 3]
    parallelism: 2
    steps:
      a: {run: {python: "m:f"}, outputs: {o: int}}
      b: {run: {python: "m:f"}, outputs: {o: int}}
      c: {run: {python: "m:f"}, outputs: {o: int}, after: [a, b]}
  single:
    for_each: [1, 2, 3]
    parallelism: 1
    steps:
      d: {run: {python: "m:f"}, outputs: {o: int}}
""",
        encoding="utf-8",
    )
    _, source = compile_file(pipeline)
    tasks = {
        line.split(":")[0].strip().strip('"'): line for line in source.splitlines() if '"kind":"step"' in line
    }
    slot = '"slot":{"bound":2,"group":"loop","tasks":["loop.a","loop.b","loop.c"]}'
    assert slot in tasks["loop.a"] and slot in tasks["loop.b"]
    assert '"slot"' not in tasks["loop.c"]
    # one task per item: max_active_tis_per_dagrun bounds the items exactly, no slot needed
    assert '"slot"' not in tasks["single.d"]
    assert "max_active_tis_per_dagrun=1" in source


class _Run:
    """The task states of one dag run, as Airflow 3's execution API returns them."""

    states: dict[str, str | None] = {}

    map_index = 1

    @classmethod
    def get_task_states(cls, dag_id: str, run_ids: list[str], task_group_id: str | None) -> dict:
        return {run_ids[0]: dict(cls.states)}


def test_an_item_is_done_only_when_its_nested_group_is() -> None:
    """SPEC §22: an item is in progress until its last inner step ended, a nested group's
    tasks and finally included; a task not expanded yet (map index -1) for that item is not
    done unless it ended for every item."""
    tasks = ["loop.mul", "loop.grp-condition", "loop.inner", "loop.grp-finally"]
    res = _Resolver(_Run(), {}, "run", "dag")
    _Run.states = {
        "loop.mul_0": "success",
        "loop.grp-condition": None,
        "loop.inner": None,
        "loop.grp-finally": None,
    }
    assert res.items_done("loop", tasks, 1) == {0: False}
    assert not slot_free(1, 1, res.items_done("loop", tasks, 1))
    _Run.states = {
        "loop.mul_0": "success",
        "loop.grp-condition_0": "success",
        "loop.inner_0": "failed",
        "loop.grp-finally_0": "running",
    }
    assert res.items_done("loop", tasks, 1) == {0: False}
    _Run.states["loop.grp-finally_0"] = "success"
    assert res.items_done("loop", tasks, 1) == {0: True}
    # An unexpanded task that ended as a whole (upstream_failed for every item) is done.
    _Run.states = {
        "loop.mul_0": "success",
        "loop.grp-condition_0": "success",
        "loop.inner": "upstream_failed",
    }
    assert res.items_done("loop", ["loop.mul", "loop.grp-condition", "loop.inner"], 1) == {0: True}


def test_slot_lists_the_tasks_of_nested_groups(tmp_path: Path) -> None:
    pipeline = tmp_path / "nested.yaml"
    pipeline.write_text(
        """
pipecast: 1
name: nested
steps:
  loop:
    for_each: [1, 2, 3]
    parallelism: 1
    steps:
      mul: {run: {python: "m:f"}, outputs: {o: int}}
      grp:
        when: "1 > 0"
        steps:
          inner: {run: {python: "m:f"}, outputs: {o: int}, after: [mul]}
        finally: {run: {python: "m:f"}, outputs: {o: int}}
""",
        encoding="utf-8",
    )
    _, source = compile_file(pipeline)
    line = next(ln for ln in source.splitlines() if ln.strip().startswith('"loop.mul"'))
    # The nested group's condition and steps; not its join, end and finally, which Airflow
    # expands only once every item's upstream ended (waiting for them would wait for itself).
    assert '"tasks":["loop.grp-condition","loop.inner","loop.mul"]' in line
