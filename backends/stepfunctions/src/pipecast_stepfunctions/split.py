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
    budget = max(limit // 2, limit - 50_000)
    out = Split(json.loads(json.dumps(definition)))
    _split_container(out.main, budget, base_name, settings, out)
    return out


def _split_container(
    container: dict[str, Any], budget: int, base_name: str, settings: Any, out: Split
) -> None:
    """Move runs of consecutive states of one ``States`` object into child machines; states
    too big on their own are split inside (Parallel branches, Map item processors)."""
    from .compile import state_machine_arn
    from .names import shorten

    states: dict[str, dict[str, Any]] = container["States"]
    chain = _top_chain(container)
    for name in chain:
        st = states[name]
        if _size(st) <= budget:
            continue
        inner = st.get("Branches", []) + ([st["ItemProcessor"]] if "ItemProcessor" in st else [])
        for sub in inner:
            if _size(sub) > budget // 4:
                _split_container(sub, budget, base_name, settings, out)
        if _size(st) > budget:
            out.why_not = out.why_not or (
                f"state {name!r} is {_size(st)} bytes even after splitting its branches into child machines"
            )
    movable = [
        n for n in chain if "Next" in states[n] and states[n]["Type"] in ("Task", "Parallel", "Map", "Pass")
    ]
    runs: list[list[str]] = []
    current: list[str] = []
    current_size = 0
    prev: str | None = None
    for name in movable:
        size = _size(states[name])
        contiguous = prev is not None and states[prev].get("Next") == name
        if current and (not contiguous or current_size + size > budget):
            runs.append(current)
            current, current_size = [], 0
        current.append(name)
        current_size += size
        prev = name
    if current:
        runs.append(current)
    if sum(_size(states[n]) for n in movable) < budget // 4 and not out.children:
        return
    for run in runs:
        if (
            len(run) == 1
            and states[run[0]]["Type"] == "Task"
            and "startExecution" in states[run[0]].get("Resource", "")
        ):
            continue
        i = len(out.children) + 1
        child_name = shorten(f"{base_name}-part-{i}")
        child_states = {n: states[n] for n in run}
        last = run[-1]
        after = child_states[last].pop("Next")
        child_states[last]["End"] = True
        out.children.append(
            (child_name, {"Comment": f"part {i} of {base_name}", "StartAt": run[0], "States": child_states})
        )
        for n in run:
            del states[n]
        call = shorten(f"Run part {i}")
        states[call] = {
            "Type": "Task",
            "Resource": START_SYNC,
            "Parameters": {"StateMachineArn": state_machine_arn(child_name, settings), "Input.$": "$"},
            "ResultSelector": {"state.$": "$.Output"},
            "OutputPath": "$.state",
            "Next": after,
        }
        for st in states.values():
            _retarget(st, run[0], call)
        if container["StartAt"] == run[0]:
            container["StartAt"] = call


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
