"""Keeping every definition under the size and history limits with child state machines.

https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html
https://docs.aws.amazon.com/step-functions/latest/dg/connect-stepfunctions.html

The emitter builds every structural piece (an item of a sequence, a ``Parallel`` branch, a
``Map`` iteration, a ``when`` branch, the whole body) as a :class:`Unit`: its own ``States``
object with one entry state and a list of exit states (states that ``End``), plus its size
and history-event estimate, both computed once when its states are added (a container's
size is the sum of its parts, never re-serialised, so the work is linear in the output).
A unit is linked into its parent by turning its exits' ``End`` into ``Next``.

When the pieces at one level are over budget, they are *outlined*: moved into a child state
machine and replaced by one ``Task`` that runs it with ``states:startExecution.sync:2``,
passes the whole state as input and continues with the child's output, so the state
layout is identical on both sides. The rules, applied bottom-up:

* a sequence over budget is cut into consecutive runs that fit; each run becomes a child;
* a ``Parallel`` over budget groups its branches into runs that fit; each group becomes a
  child running a ``Parallel`` of just those branches (a single big branch becomes a child
  by itself), so even a 10,000-wide fan-out ends up as a tree of small machines;
* a ``Map`` iteration or a ``when`` branch over budget becomes a child by itself;
* when the stubs themselves are too many, they are grouped again (one more level).

What cannot be split: a *single state* over the limit (a task whose literal inputs or
environment are huge, a ``Choice`` with an enormous condition). ``compile`` reports the
file, the state and its size, with the hint to move large literals out of the pipeline.
Child executions write their own history, so outlining also keeps each execution under the
25,000-event limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

START_SYNC = "arn:aws:states:::states:startExecution.sync:2"
#: Entered, Scheduled, Started, Submitted, Succeeded, Exited of a startExecution.sync task.
STUB_EVENTS = 6

Events = tuple[int, int]  # (expected, worst case)


def compact(value: Any) -> str:
    """The compact JSON form big definitions are written in (sizes are measured on it)."""
    return asl_json(value, None)


def plain_float(value: float) -> str:
    """A float in positional notation, always with a fraction (``1e-06`` → ``0.000001``,
    ``1e+20`` → ``100000000000000000000.0``): the Step Functions parser rejects exponents
    in a definition (issue 14; moto's ASL grammar, which follows the service's, does too)."""
    from decimal import Decimal

    text = format(Decimal(repr(value)), "f")
    return text if "." in text else text + ".0"


class KeepOrder(dict[str, Any]):
    """A mapping of user data (a literal input, a loop's literal items) written with its keys
    in their stored order (SPEC §22): :func:`asl_json` sorts every other object's keys."""


def asl_json(value: Any, indent: int | None, *, sort_keys: bool = True) -> str:
    """Deterministic JSON of a definition (sorted keys, except inside :class:`KeepOrder`,
    which is written compact in its own order) with every float in positional form."""
    pieces: list[str] = []

    def mark(v: Any) -> Any:
        if isinstance(v, float) and "e" in repr(v):
            pieces.append(plain_float(v))
            return f"\x00pipecast-piece-{len(pieces) - 1}\x00"
        if isinstance(v, KeepOrder) and sort_keys:
            pieces.append(asl_json(dict(v), None, sort_keys=False))
            return f"\x00pipecast-piece-{len(pieces) - 1}\x00"
        if isinstance(v, dict):
            return {k: mark(x) for k, x in v.items()}
        if isinstance(v, list):
            return [mark(x) for x in v]
        return v

    marked = mark(value)
    separators = (",", ":") if indent is None else (",", ": ")
    text = json.dumps(marked, sort_keys=sort_keys, separators=separators, indent=indent, ensure_ascii=False)
    for i, piece in enumerate(pieces):
        text = text.replace(f'"\\u0000pipecast-piece-{i}\\u0000"', piece, 1)
    return text


def size_of(value: Any) -> int:
    """Length of :func:`compact` (key order does not change it, so no sorting)."""
    return len(_measure(value))


_measure = json.JSONEncoder(separators=(",", ":")).encode


@dataclass
class Frame:
    """One ``States`` object being filled, and what the state holds there.

    Attributes:
        states: state name → state.
        loops: the enclosing ``for_each`` groups (outermost first).
        keys: the top-level keys of the state payload at this level.
        size: compact JSON size of ``states`` (bytes, ASCII-escaped: an upper bound).
        exits: states added with ``End`` (linked to the next piece by :meth:`Outliner.place`).
    """

    states: dict[str, dict[str, Any]]
    loops: tuple[Any, ...] = ()
    keys: tuple[str, ...] = ()
    size: int = 0
    exits: list[str] = field(default_factory=list)

    def child(self) -> Frame:
        return Frame({}, self.loops, self.keys)


@dataclass
class Unit:
    """A self-contained piece: entry ``start``, its states in ``frame``, its events."""

    start: str
    frame: Frame
    events: Events
    stub: bool = False
    leaves: tuple[str, ...] = ()


@dataclass
class Child:
    name: str
    definition: dict[str, Any]
    events: Events


class Outliner:
    """Unit bookkeeping and outlining, mixed into the emitter (which provides ``names``)."""

    names: Any
    budget_bytes: int
    budget_events: int
    base_name: str
    children: list[Child]
    _inner: dict[int, tuple[dict[str, Any], int]]
    arn_of: Callable[[str], str]

    # ------------------------------------------------------------------ states and sizes

    def add(self, frame: Frame, name: str, state: dict[str, Any], nxt: str | None) -> None:
        """Add a state to a frame: ``Next`` (or ``End``), and its size."""
        if state["Type"] not in ("Choice", "Succeed", "Fail"):
            if nxt is None:
                state["End"] = True
                frame.exits.append(name)
            else:
                state["Next"] = nxt
        frame.states[name] = state
        frame.size += len(name) + 4 + self._state_size(state)

    def _state_size(self, state: dict[str, Any]) -> int:
        if "Branches" not in state and "ItemProcessor" not in state:
            return size_of(state)
        stub = dict(state)
        inner = 0
        if "Branches" in state:
            stub["Branches"] = [{**b, "States": {}} for b in state["Branches"]]
            inner += sum(self._sealed_size(b["States"]) for b in state["Branches"])
        if "ItemProcessor" in state:
            stub["ItemProcessor"] = {**state["ItemProcessor"], "States": {}}
            inner += self._sealed_size(state["ItemProcessor"]["States"])
        return size_of(stub) + inner

    def _sealed_size(self, states: dict[str, Any]) -> int:
        found = self._inner.pop(id(states), None)
        return size_of(states) if found is None else found[1]

    def seal(self, unit: Unit) -> dict[str, Any]:
        """``{"StartAt", "States"}`` of a unit, for a ``Branches`` entry or an ``ItemProcessor``."""
        # The entry keeps the dict alive, so its id cannot be reused while it is recorded.
        self._inner[id(unit.frame.states)] = (unit.frame.states, unit.frame.size)
        return {"StartAt": unit.start, "States": unit.frame.states}

    # ------------------------------------------------------------------ units

    def unit(self, parent: Frame, emit: Callable[[Frame], tuple[str, Events]]) -> Unit:
        """Emit a piece into a fresh frame (same loops/keys as ``parent``) with no successor."""
        sub = parent.child()
        start, events = emit(sub)
        return Unit(start, sub, events)

    def place(self, unit: Unit, frame: Frame, nxt: str | None) -> str:
        """Link a unit's exits to ``nxt`` (or keep them as exits) and move it into ``frame``."""
        states = unit.frame.states
        if nxt is None:
            frame.exits.extend(unit.frame.exits)
        else:
            for name in unit.frame.exits:
                del states[name]["End"]
                states[name]["Next"] = nxt
            frame.size += len(unit.frame.exits) * (len(nxt) - 1)
        frame.states.update(states)
        frame.size += unit.frame.size
        return unit.start

    def fits(self, units: list[Unit], *, events: bool = True, branch: bool = False) -> bool:
        weigh = branch_weight if branch else _size
        if sum(weigh(u) for u in units) > self.budget_bytes:
            return False
        return not events or sum(u.events[0] for u in units) <= self.budget_events

    def runs(self, units: list[Unit], *, branch: bool = False) -> list[list[Unit]]:
        """Consecutive units grouped greedily so that each group fits the budgets."""
        weigh = branch_weight if branch else _size
        out: list[list[Unit]] = []
        run: list[Unit] = []
        size = events = 0
        for u in units:
            w = weigh(u)
            if run and (size + w > self.budget_bytes or events + u.events[0] > self.budget_events):
                out.append(run)
                run, size, events = [], 0, 0
            run.append(u)
            size += w
            events += u.events[0]
        if run:
            out.append(run)
        return out

    def link_sequence(self, units: list[Unit], frame: Frame, nxt: str | None) -> tuple[str, Events]:
        total: Events = (0, 0)
        for u in reversed(units):
            nxt = self.place(u, frame, nxt)
            total = (total[0] + u.events[0], total[1] + u.events[1])
        assert nxt is not None
        return nxt, total

    def fit_sequence(self, units: list[Unit], parent: Frame) -> list[Unit]:
        """Outline runs of a sequence until it fits (see the module docstring)."""
        while not self.fits(units):
            new: list[Unit] = []
            for run in self.runs(units):
                if len(run) == 1 and run[0].stub:
                    new.append(run[0])
                    continue
                merged = run[0]
                if len(run) > 1:
                    sub = parent.child()
                    start, events = self.link_sequence(run, sub, None)
                    merged = Unit(start, sub, events)
                new.append(self.outline(merged, parent))
            if len(new) == len(units) and all(u.stub for u in units):
                break
            units = new
        return units

    def outline(self, unit: Unit, parent: Frame) -> Unit:
        """Move a unit into a child state machine; return the stub that runs it."""
        i = len(self.children) + 1
        name = self._child_name(i)
        definition = {
            "Comment": f"part {i} of {self.base_name} (pipecast child state machine)",
            "StartAt": unit.start,
            "States": unit.frame.states,
        }
        self.children.append(Child(name, definition, (unit.events[0] + 2, unit.events[1] + 2)))
        stub = parent.child()
        state_name = self.names.new(f"Run part {i}", "part")
        self.add(
            stub,
            state_name,
            {
                "Type": "Task",
                "Resource": START_SYNC,
                "Parameters": {"StateMachineArn": self.arn_of(name), "Input.$": "$"},
                # The child's output is the state after its last state (same layout).
                "OutputPath": "$.Output",
            },
            None,
        )
        return Unit(state_name, stub, (STUB_EVENTS, STUB_EVENTS), stub=True, leaves=unit.leaves)

    def _child_name(self, i: int) -> str:
        from .names import MAX_NAME, aws_name

        return aws_name(f"{self.base_name}-part-{i}", MAX_NAME)


def _size(unit: Unit) -> int:
    return unit.frame.size


def branch_weight(unit: Unit) -> int:
    """A ``Parallel`` branch's size plus what it adds around it: its ``Branches`` entry, its
    share of the join ``Pass`` states (a ``States.JsonMerge`` term and 1/8 of a join's
    carried keys) and its step entries in a group's final ``Pass``."""
    return unit.frame.size + len(unit.start) + 200 + sum(2 * len(n) + 16 for n in unit.leaves)


def biggest_states(definition: dict[str, Any], top: int = 1) -> list[tuple[str, int]]:
    """The largest top-level states of a definition (for the error when splitting cannot help)."""
    sizes = [(name, len(compact(st))) for name, st in definition["States"].items()]
    return sorted(sizes, key=lambda x: (-x[1], x[0]))[:top]
