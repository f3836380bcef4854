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


def _entry(steps: Any, step: str) -> Any:
    """A step's ``$.steps`` entry; a group's finally (``<group>.finally``, SPEC §18) writes
    its result at the JSONPath ``$.steps.<group>.finally``, inside the group's entry."""
    out = steps
    for part in step.split("."):
        out = out.get(part) if isinstance(out, dict) else None
    return out


class _History:
    """What one execution's history says of each step, read event by event."""

    def __init__(
        self, index: PipelineIndex, manifest: Mapping[str, Any], events: list[dict[str, Any]]
    ) -> None:
        self.index = index
        self.manifest = manifest
        self.kinds: Mapping[str, Any] = manifest["states"]
        self.by_id = {ev["id"]: ev for ev in events}
        self.entered_at: dict[int, tuple[str, str] | None] = {}  # TaskStateEntered id -> (step, key)
        self.steps: dict[str, dict[str, Any]] = {}
        self.choices: dict[str, list[tuple[int, ...]]] = {}
        #: MapStateEntered id -> (group, its indices); then each started map's width.
        self.map_entered: dict[int, tuple[str, tuple[int, ...]]] = {}
        self.widths: list[tuple[str, tuple[int, ...], int]] = []

    def key_of(self, step: str, state_input: Any) -> tuple[str, tuple[int, ...]]:
        node = self.index.node(step)
        idx = state_input.get("index", {}) if isinstance(state_input, dict) else {}
        loops = self.index.loops(node) if step != "finally" else []
        indices = tuple(int(idx.get(g.name, 0)) for g in loops if g.name != step)
        return self.index.run_key(node, indices), indices

    def owner(self, ev: dict[str, Any]) -> tuple[str, str] | None:
        """The step (and run key) of a task event: its nearest ``TaskStateEntered``."""
        prev = ev.get("previousEventId")
        hops = 0
        while prev and hops < 10_000:
            e = self.by_id.get(prev)
            if e is None:
                return None
            if e["id"] in self.entered_at:
                return self.entered_at[e["id"]]
            prev = e.get("previousEventId")
            hops += 1
        return None

    def read(self, ev: dict[str, Any]) -> None:
        kind = ev["type"]
        det = ev.get("stateEnteredEventDetails") or ev.get("stateExitedEventDetails")
        if det is not None:
            self.state_event(ev, det)
        elif kind == "MapStateStarted":
            started = self.map_entered.get(ev.get("previousEventId", -1))
            length = (ev.get("mapStateStartedEventDetails") or {}).get("length")
            if started and isinstance(length, int):
                self.widths.append((*started, length))
        elif kind == "TaskScheduled":
            own = self.owner(ev)
            if own:
                e = self.steps[own[1]]
                e["attempts"] = e.get("attempts", 0) + 1
        elif kind in ("TaskFailed", "TaskTimedOut"):
            self.task_failed(ev, kind)

    def state_event(self, ev: dict[str, Any], det: Mapping[str, Any]) -> None:
        kind = ev["type"]
        info = self.kinds.get(det.get("name", ""))
        if not info or not info.get("step"):
            if kind.endswith("Entered"):
                # pipecast's own tasks (waits, publishing): their TaskScheduled and
                # TaskFailed events belong to no step.
                self.entered_at[ev["id"]] = None
            return
        step, role = info["step"], info["kind"]
        data = json.loads(det.get("input") or det.get("output") or "null")
        key, indices = self.key_of(step, data)
        entry = self.steps.setdefault(key, {"status": "running"})
        if kind.endswith("Entered"):
            self.entered(ev, entry, step, role, key, indices)
        else:
            self.exited(ev, entry, step, role, data)

    def entered(
        self,
        ev: dict[str, Any],
        entry: dict[str, Any],
        step: str,
        role: str,
        key: str,
        indices: tuple[int, ...],
    ) -> None:
        entry.setdefault("started", _iso(ev.get("timestamp")))
        if role == "task":
            self.entered_at[ev["id"]] = (step, key)
        if role == "map":
            self.map_entered[ev["id"]] = (step, indices)
        if role == "choice":
            self.choices.setdefault(step, []).append(indices)
            entry["status"] = "succeeded"
        if role == "skip":
            entry["status"] = "skipped"
        if role == "fail":  # the step's condition could not be evaluated (SPEC §15)
            entry["status"] = "failed"
        if role == "group-failed":  # the Catch of a group with a finally (SPEC §18)
            entry["status"] = "failed"
            entry.setdefault("ended", _iso(ev.get("timestamp")))

    @staticmethod
    def exited(ev: dict[str, Any], entry: dict[str, Any], step: str, role: str, data: Any) -> None:
        entry["ended"] = _iso(ev.get("timestamp"))
        if role in ("task", "outputs", "map", "group-outputs") and entry["status"] != "skipped":
            entry["status"] = "succeeded"
        out = _entry((data or {}).get("steps", {}), step) if isinstance(data, dict) else None
        if isinstance(out, dict) and role != "choice":
            _take_result(entry, out, role)

    def task_failed(self, ev: dict[str, Any], kind: str) -> None:
        own = self.owner(ev)
        if own:
            self.steps[own[1]]["status"] = "failed"
            # The callback worker fails a task only after its last attempt.
            runtime_attempts = self.manifest.get("runtime_attempts", {}).get(own[0])
            if runtime_attempts and kind == "TaskFailed":
                self.steps[own[1]]["attempts"] = runtime_attempts

    def finish(self, status: str) -> dict[str, dict[str, Any]]:
        """Every step's entry once the run ended with ``status``, the steps that never started
        included."""
        index, steps = self.index, self.steps
        for entry in steps.values():
            if entry["status"] == "running":
                entry["status"] = "failed" if status == "failed" else "succeeded"
        # Steps that never started: skipped when an enclosing condition was decided, else not run.
        for node in index.walk():
            conds = [g for g in [node, *index.ancestors(node)] if g.step.when is not None]
            decided = [ix for g in conds for ix in self.choices.get(g.name, [])]
            loops = index.loops(node)
            if decided:
                # A step under a decided condition that left no trace was in the branch not taken.
                for ix in decided:
                    steps.setdefault(index.run_key(node, ix[: len(loops)]), {"status": "skipped"})
            elif not loops and node.name not in steps:
                steps[node.name] = {"status": "not_run"}
        # Items of a started Map that never started (the run failed first): not run (SPEC §12).
        for group, ix, length in self.widths:
            body = index.node(group).body
            for node in index.walk(body) if body is not None else []:
                if len(index.loops(node)) == len(ix) + 1:
                    for i in range(length):
                        steps.setdefault(index.run_key(node, (*ix, i)), {"status": "not_run"})
        return dict(sorted(steps.items()))


def run_record(
    pipeline: Pipeline, manifest: Mapping[str, Any], desc: Mapping[str, Any], events: list[dict[str, Any]]
) -> dict[str, Any]:
    history = _History(PipelineIndex(pipeline), manifest, events)
    for ev in events:
        history.read(ev)
    status = "succeeded" if desc["status"] == "SUCCEEDED" else "failed"
    steps = history.finish(status)
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
        "steps": steps,
        "started": _iso(desc.get("startDate")),
        "ended": _iso(desc.get("stopDate")),
    }
