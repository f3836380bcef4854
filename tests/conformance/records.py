"""Turn what a target's local executor reports into a SPEC §12 run record.

Executors report tasks only (kfp.local's trace, Airflow task instances); the expectations
also name groups and steps that never started. :func:`complete` adds those entries from the
pipeline's own structure, the same way for every target, so :func:`catalogue.compare` sees
one shape.
"""

from __future__ import annotations

import re
from typing import Any

from pipecast.passes.analysis import PipelineIndex

_INDEX = re.compile(r"\[\d+\]")


def base_name(key: str) -> str:
    """``cell[0][2]`` → ``cell``."""
    return _INDEX.sub("", key)


def complete(record: dict[str, Any], keys: list[str], index: PipelineIndex) -> dict[str, Any]:
    """Add the entries an executor cannot report: tasks that never ran, and groups.

    A task absent from the executor's report did not run: ``skipped`` when the run
    succeeded (a false condition), ``not_run`` when it failed. A group's status follows its
    inner tasks (failed if one failed, succeeded if one ran, else skipped).
    """
    steps = record.setdefault("steps", {})
    for key in keys:
        if key in steps:
            continue
        name = base_name(key)
        node = index.nodes.get(name)
        if node is not None and node.is_group:
            inner_names = {n.name for n in index.walk(node.body)}
            if node.else_body is not None:
                inner_names |= {n.name for n in index.walk(node.else_body)}
            inner = [v.get("status") for k, v in steps.items() if base_name(k) in inner_names]
            status = (
                "failed"
                if "failed" in inner
                else "succeeded"
                if any(s == "succeeded" for s in inner)
                else "skipped"
            )
        else:
            status = "skipped" if record.get("status") == "succeeded" else "not_run"
        steps[key] = {"status": status}
    return record
