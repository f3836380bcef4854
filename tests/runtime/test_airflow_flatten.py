"""The Airflow convention's flattened nested loops, against an in-memory XCom store: the items
task's item paths (inner lists resolved per outer item, empty ones included) and the consumers'
regrouping in item order. ``backends/airflow/tests`` and the conformance suite run the same
code under ``dag.test()``."""

from __future__ import annotations

from typing import Any

from pipecast.runtime.conventions import airflow as af


class FakeTI:
    """What the convention uses of a task instance: XCom push/pull by task, key, map index."""

    def __init__(self, store: dict[tuple[str, str, int], Any], task_id: str, map_index: int = -1) -> None:
        self.store = store
        self.task_id = task_id
        self.map_index = map_index
        self.dag_id = "d"

    def xcom_push(self, key: str, value: Any) -> None:
        self.store[(self.task_id, key, self.map_index)] = value

    def xcom_pull(self, task_ids: str, key: str = "return_value", map_indexes: int = -1) -> Any:
        return self.store.get((task_ids, key, map_indexes))


ROWS = [{"vals": [1, 2]}, {"vals": []}, {"vals": [3]}]
ITEMS_DOC = {
    "kind": "items",
    "for_each": {"template": "{{ params.rows }}", "refs": {"params.rows": {"param": "rows"}}},
    "nested": [
        {"template": "{{ row.vals }}", "refs": {"row.vals": {"loop": "o-items", "level": 0, "key": "vals"}}}
    ],
}


def _context(ti: FakeTI) -> dict[str, Any]:
    return {"ti": ti, "params": {"rows": ROWS}, "run_id": "r"}


def test_items_are_paths_in_item_order_and_levels_keep_empty_inner_lists() -> None:
    store: dict[tuple[str, str, int], Any] = {}
    flat = af.items(ITEMS_DOC, _context(FakeTI(store, "o-items")))
    assert flat == [
        {"ix": [0, 0], "items": [{"vals": [1, 2]}, 1]},
        {"ix": [0, 1], "items": [{"vals": [1, 2]}, 2]},
        {"ix": [2, 0], "items": [{"vals": [3]}, 3]},
    ]
    assert store[("o-items", af.LEVELS_KEY, -1)] == [[[0], [1], [2]], [[0, 0], [0, 1], [2, 0]]]


def test_consumers_regroup_outputs_per_outer_item() -> None:
    store: dict[tuple[str, str, int], Any] = {}
    flat = af.items(ITEMS_DOC, _context(FakeTI(store, "o-items")))
    store[("o-items", "return_value", -1)] = flat
    for m, item in enumerate(flat):
        store[("o.sq", "return_value", m)] = {"output": item["items"][1] ** 2}
    inner = {
        "template": "{{ steps.sq.outputs.output }}",
        "refs": {"steps.sq.outputs.output": {"xcom": "o.sq", "output": "output", "mapped": True}},
    }
    collect_inner = {"collect": "o-items", "level": 1, "depth": 2, "each": inner}
    each_outer = {"template": "{{ steps.i.outputs.s }}", "refs": {"steps.i.outputs.s": collect_inner}}
    consumer = {
        "template": "{{ steps.o.outputs.s }}",
        "refs": {"steps.o.outputs.s": {"collect": "o-items", "level": 0, "depth": 2, "each": each_outer}},
    }
    res = af._Resolver(FakeTI(store, "show"), {"rows": ROWS}, "r", "d")
    assert res.binding(consumer, -1) == [[1, 4], [], [9]]
    # Inside the flattened group, a loop variable of either level reads its map index's item.
    cell = af._Resolver(FakeTI(store, "o.sq", map_index=2), {}, "r", "d")
    outer_var = {"template": "{{ row }}", "refs": {"row": {"loop": "o-items", "level": 0, "key": None}}}
    inner_var = {"template": "{{ v }}", "refs": {"v": {"loop": "o-items", "level": 1, "key": None}}}
    assert cell.binding(outer_var, 2) == {"vals": [3]} and cell.binding(inner_var, 2) == 3
