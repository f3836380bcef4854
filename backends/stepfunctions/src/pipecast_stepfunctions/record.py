"""The SPEC §12 run record of one execution, rebuilt from its history.

Each ``...StateEntered`` event carries the state's input, which holds ``$.index`` (the
loop indices), so a step's run key (``train[1]``) comes from the event itself. Task
events (``TaskScheduled``, ``TaskFailed``...) are tied to their state by following
``previousEventId`` back to the nearest ``TaskStateEntered``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pipecast.ir.models import Pipeline
from pipecast.passes.analysis import PipelineIndex


def _iso(value: Any) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else (str(value) if value else None)


def _take_result(entry: dict[str, Any], out: dict[str, Any], role: str) -> None:
    """What a step's ``$.steps.<step>`` entry tells the record: outputs, an import's metadata
    and a Metrics output's numbers (SPEC §15), attempts and cache hits (callback worker)."""
    if out.get("outputs"):
        entry["outputs"] = out["outputs"]
        for extra in ("metrics", "metadata"):
            if isinstance(out.get(extra), dict) and out[extra]:
                entry[extra] = out[extra]
    if role == "task" and isinstance(out.get("attempts"), int):
        entry["attempts"] = out["attempts"]  # retried by the callback worker
        if out["attempts"] == 0:
            entry["status"] = "cached"  # restored from the runtime's result cache


def run_record(
    pipeline: Pipeline, manifest: Mapping[str, Any], desc: Mapping[str, Any], events: list[dict[str, Any]]
) -> dict[str, Any]:
    index = PipelineIndex(pipeline)
    kinds: Mapping[str, Any] = manifest["states"]
    by_id = {ev["id"]: ev for ev in events}
    entered_at: dict[int, tuple[str, str] | None] = {}  # TaskStateEntered id -> (step, key)
    steps: dict[str, dict[str, Any]] = {}
    choices: dict[str, list[tuple[int, ...]]] = {}
    #: MapStateEntered id -> (group, its indices); then each started map's width.
    map_entered: dict[int, tuple[str, tuple[int, ...]]] = {}
    widths: list[tuple[str, tuple[int, ...], int]] = []

    def key_of(step: str, state_input: Any) -> tuple[str, tuple[int, ...]]:
        node = index.node(step)
        idx = state_input.get("index", {}) if isinstance(state_input, dict) else {}
        loops = index.loops(node) if step != "finally" else []
        indices = tuple(int(idx.get(g.name, 0)) for g in loops if g.name != step)
        return index.run_key(node, indices), indices

    def owner(ev: dict[str, Any]) -> tuple[str, str] | None:
        prev = ev.get("previousEventId")
        hops = 0
        while prev and hops < 10_000:
            e = by_id.get(prev)
            if e is None:
                return None
            if e["id"] in entered_at:
                return entered_at[e["id"]]
            prev = e.get("previousEventId")
            hops += 1
        return None

    for ev in events:
        kind = ev["type"]
        det = ev.get("stateEnteredEventDetails") or ev.get("stateExitedEventDetails")
        if det is not None:
            info = kinds.get(det.get("name", ""))
            if not info or not info.get("step"):
                if kind.endswith("Entered"):
                    # pipecast's own tasks (waits, publishing): their TaskScheduled and
                    # TaskFailed events belong to no step.
                    entered_at[ev["id"]] = None
                continue
            step, role = info["step"], info["kind"]
            data = json.loads(det.get("input") or det.get("output") or "null")
            key, indices = key_of(step, data)
            entry = steps.setdefault(key, {"status": "running"})
            if kind.endswith("Entered"):
                entry.setdefault("started", _iso(ev.get("timestamp")))
                if role == "task":
                    entered_at[ev["id"]] = (step, key)
                if role == "map":
                    map_entered[ev["id"]] = (step, indices)
                if role == "choice":
                    choices.setdefault(step, []).append(indices)
                    entry["status"] = "succeeded"
                if role == "skip":
                    entry["status"] = "skipped"
                if role == "fail":  # the step's condition could not be evaluated (SPEC §15)
                    entry["status"] = "failed"
            else:
                entry["ended"] = _iso(ev.get("timestamp"))
                if role in ("task", "outputs", "map", "group-outputs") and entry["status"] != "skipped":
                    entry["status"] = "succeeded"
                out = (data or {}).get("steps", {}).get(step) if isinstance(data, dict) else None
                if isinstance(out, dict) and role != "choice":
                    _take_result(entry, out, role)
        elif kind == "MapStateStarted":
            started = map_entered.get(ev.get("previousEventId", -1))
            length = (ev.get("mapStateStartedEventDetails") or {}).get("length")
            if started and isinstance(length, int):
                widths.append((*started, length))
        elif kind == "TaskScheduled":
            own = owner(ev)
            if own:
                e = steps[own[1]]
                e["attempts"] = e.get("attempts", 0) + 1
        elif kind in ("TaskFailed", "TaskTimedOut"):
            own = owner(ev)
            if own:
                steps[own[1]]["status"] = "failed"
                # The callback worker fails a task only after its last attempt.
                runtime_attempts = manifest.get("runtime_attempts", {}).get(own[0])
                if runtime_attempts and kind == "TaskFailed":
                    steps[own[1]]["attempts"] = runtime_attempts
    status = "succeeded" if desc["status"] == "SUCCEEDED" else "failed"
    for entry in steps.values():
        if entry["status"] == "running":
            entry["status"] = "failed" if status == "failed" else "succeeded"
    # Steps that never started: skipped when an enclosing condition was decided, else not run.
    for node in index.walk():
        conds = [g for g in [node, *index.ancestors(node)] if g.step.when is not None]
        decided = [ix for g in conds for ix in choices.get(g.name, [])]
        loops = index.loops(node)
        if decided:
            # A step under a decided condition that left no trace was in the branch not taken.
            for ix in decided:
                steps.setdefault(index.run_key(node, ix[: len(loops)]), {"status": "skipped"})
        elif not loops and node.name not in steps:
            steps[node.name] = {"status": "not_run"}
    # Items of a started Map that never started (the run failed first): not run (SPEC §12).
    for group, ix, length in widths:
        body = index.node(group).body
        for node in index.walk(body) if body is not None else []:
            if len(index.loops(node)) == len(ix) + 1:
                for i in range(length):
                    steps.setdefault(index.run_key(node, (*ix, i)), {"status": "not_run"})
    outputs: dict[str, Any] = {}
    if desc.get("output"):
        outputs = json.loads(desc["output"]).get("outputs", {})
    params = json.loads(desc.get("input") or "{}")
    defaults = {k: p.default for k, p in pipeline.params.items() if p.has_default}
    return {
        "pipeline": pipeline.name,
        "run_id": desc.get("name") or desc["executionArn"].rsplit(":", 1)[-1],
        "status": status,
        "params": {**defaults, **params},
        "outputs": outputs,
        "steps": dict(sorted(steps.items())),
        "started": _iso(desc.get("startDate")),
        "ended": _iso(desc.get("stopDate")),
    }
