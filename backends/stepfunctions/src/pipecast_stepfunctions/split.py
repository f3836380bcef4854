"""Splitting a definition over the size limit into child state machines.

https://docs.aws.amazon.com/step-functions/latest/dg/connect-stepfunctions.html

The top level of a generated definition is a chain of states (parameters, then the
lowered root sequence, then the outputs). When the definition is too big, runs of
consecutive top-level states whose combined size is large are moved into child state
machines; the parent starts each child with ``states:startExecution.sync:2`` and takes
the child's final state (``$.Output``) as its own state, so the state layout is the same
on both sides. A single top-level state that is bigger than the limit by itself (a huge
``Parallel`` or ``Map``) cannot be moved whole, and splitting stops with that reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

START_SYNC = "arn:aws:states:::states:startExecution.sync:2"


@dataclass
class Split:
    main: dict[str, Any]
    children: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    why_not: str = ""


def _size(value: Any) -> int:
    return len(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).encode())


def split_definition(definition: dict[str, Any], limit: int, base_name: str, settings: Any) -> Split:
    """Return the definition unchanged when it fits, else a parent plus children."""
    if _size(definition) <= limit:
        return Split(definition)
    from .compile import state_machine_arn
    from .names import shorten

    states: dict[str, dict[str, Any]] = definition["States"]
    chain = _top_chain(definition)
    # Only plain links (Next) may move: Choice/Fail/terminal states stay in the parent.
    movable = [
        n for n in chain if "Next" in states[n] and states[n]["Type"] in ("Task", "Parallel", "Map", "Pass")
    ]
    budget = max(limit // 2, limit - 50_000)
    runs: list[list[str]] = []
    current: list[str] = []
    current_size = 0
    prev: str | None = None
    for name in movable:
        size = _size(states[name])
        if size > budget:
            return Split(
                definition,
                why_not=f"state {name!r} alone is {size} bytes (a single Parallel/Map cannot be moved "
                "into a child state machine as a whole by this version)",
            )
        contiguous = prev is not None and states[prev].get("Next") == name
        if current and (not contiguous or current_size + size > budget):
            runs.append(current)
            current, current_size = [], 0
        current.append(name)
        current_size += size
        prev = name
    if current:
        runs.append(current)
    children: list[tuple[str, dict[str, Any]]] = []
    new_states = dict(states)
    for i, run in enumerate(runs, 1):
        child_name = shorten(f"{base_name}-part-{i}")
        child_states = {n: dict(states[n]) for n in run}
        last = run[-1]
        after = child_states[last].pop("Next")
        child_states[last]["End"] = True
        children.append(
            (child_name, {"Comment": f"part {i} of {base_name}", "StartAt": run[0], "States": child_states})
        )
        for n in run:
            del new_states[n]
        call = shorten(f"Run part {i}")
        new_states[call] = {
            "Type": "Task",
            "Resource": START_SYNC,
            "Parameters": {"StateMachineArn": state_machine_arn(child_name, settings), "Input.$": "$"},
            "ResultSelector": {"state.$": "$.Output"},
            "OutputPath": "$.state",
            "Next": after,
        }
        for st in new_states.values():
            _retarget(st, run[0], call)
        if definition["StartAt"] == run[0]:
            definition = {**definition, "StartAt": call}
    main = {**definition, "States": new_states}
    return Split(main, children)


def _retarget(state: dict[str, Any], old: str, new: str) -> None:
    if state.get("Next") == old:
        state["Next"] = new
    if state.get("Default") == old:
        state["Default"] = new
    for rule in state.get("Choices", []):
        if rule.get("Next") == old:
            rule["Next"] = new
    for catcher in state.get("Catch", []):
        if catcher.get("Next") == old:
            catcher["Next"] = new


def _top_chain(definition: dict[str, Any]) -> list[str]:
    """Top-level states in execution order, following Next and Choice Defaults."""
    states = definition["States"]
    order: list[str] = []
    seen: set[str] = set()
    todo = [definition["StartAt"]]
    while todo:
        name = todo.pop()
        if name in seen or name not in states:
            continue
        seen.add(name)
        order.append(name)
        st = states[name]
        nxt = [st.get("Next"), st.get("Default"), *(r.get("Next") for r in st.get("Choices", []))]
        nxt += [c.get("Next") for c in st.get("Catch", [])]
        todo.extend(reversed([n for n in nxt if n]))
    return order
