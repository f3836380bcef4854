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

from pipecast.runtime.conventions.airflow import slot_free

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
    slot = '"slot":{"bound":2,"group":"loop"}'
    assert slot in tasks["loop.a"] and slot in tasks["loop.b"]
    assert '"slot"' not in tasks["loop.c"]
    # one task per item: max_active_tis_per_dagrun bounds the items exactly, no slot needed
    assert '"slot"' not in tasks["single.d"]
    assert "max_active_tis_per_dagrun=1" in source
