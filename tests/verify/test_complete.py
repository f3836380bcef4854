"""``pipecast.verify.records.complete``: the entries an engine that reports tasks cannot see."""

from __future__ import annotations

from pathlib import Path

from pipecast.api import load_checked
from pipecast.verify.records import complete

CASES = Path(__file__).resolve().parents[1] / "conformance" / "cases"


def test_a_group_in_a_loop_follows_its_own_items_tasks_only() -> None:
    # check[0]'s status comes from train[0] alone: train[1] failing is another item's.
    index = load_checked(CASES / "group_finally_in_for_each_failure.yaml").lowered().index
    record = {
        "status": "failed",
        "steps": {"train[0]": {"status": "succeeded"}, "train[1]": {"status": "failed"}},
    }
    steps = complete(record, ["check[0]", "check[1]", "regions"], index)["steps"]
    assert steps["check[0]"]["status"] == "succeeded"
    assert steps["check[1]"]["status"] == "failed"
    assert steps["regions"]["status"] == "failed"
