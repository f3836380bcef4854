"""Exact lowering of any DAG: a series-parallel skeleton plus cross-branch waits.

:mod:`.lowering` turns a DAG into nested ``Parallel`` states, which is exact for
series-parallel DAGs but has to add ordering (barriers) to any DAG containing an "N"
(``a->c, b->c, b->d``). How much that costs depends on step durations nobody knows at
compile time, so the Step Functions backend by default does not add ordering at all:

1. Keep a subset of the edges that is series-parallel: the transitive reduction if it
   already is, else one incoming edge per step (an out-forest, always series-parallel),
   plus as many of the other edges as a small, size-bounded greedy pass can add back.
2. Lower that subset exactly (:func:`.lowering.lower` adds no ordering to it).
3. Every edge the skeleton does not order becomes a *wait*: before ``v`` starts, its
   branch waits until ``u`` has finished. The emitter implements a wait with the
   producer writing its state entry to S3 when it ends and the waiter reading it back
   (``aws-sdk:s3:getObject`` retried on ``NoSuchKey``: 1 s, doubling, at most 30 s apart), see
   docs/targets/stepfunctions.md.

The result orders steps exactly as the DAG does, so with instant polling its makespan
is the DAG's longest path for any durations; :func:`plan_makespan` also models the
polling delay.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise, takewhile

from .lowering import (
    SP,
    Par,
    Seq,
    _Graph,
    _linear_extensions,
    _transitive_reduction,
    is_series_parallel,
    lower,
)

__all__ = ["WaitPlan", "lower_with_waits", "plan_makespan", "poll_delay", "polls_within"]

# The add-back pass checks one candidate edge per series-parallel test (linear in the
# DAG), so it gets a work budget in node visits; 20 steps get every edge tried, 200
# steps about 20 edges, 10,000 steps none. On random DAGs it saves ~3% of the waits;
# on real pipelines (mostly series-parallel with a few crossings) usually all of them.
_ADD_BACK_WORK = 4_000

# Poll schedule of a wait (the emitted Retry): 1 s, then doubling, at most 30 s apart.
# benchmarks/asl_fidelity.py weighs it: with steps of minutes it costs ~0.7% of the
# makespan on average; a 60 s cap would halve the polls of long waits but double that.
# History events per poll are 3 (TaskScheduled, TaskStarted, TaskFailed).
POLL_FIRST_S = 1
POLL_BACKOFF = 2.0
POLL_MAX_S = 30
# A wait's history must not grow with the length of the producer (ML steps run for hours or
# days; an execution has 25,000 events): after POLL_FAST_WINDOW_S of fast polls the wait state
# gives up (Catch) into a second state that polls every POLL_SLOW_S, 144 polls (432 events) a
# day instead of 2,880. A 48-hour producer costs ~1,200 events, not ~17,000.
# https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html
POLL_FAST_WINDOW_S = 3600
POLL_SLOW_S = 600
# Fast polls: how many the first hour holds; slow polls cover a year (the longest a
# standard execution runs) in 52,704.
POLL_MAX_ATTEMPTS = 53_000


@dataclass(frozen=True)
class WaitPlan:
    """An SP skeleton and the waits that complete it to the DAG's exact order.

    Attributes:
        sp: The skeleton; every node appears once and its order is a subset of the DAG's.
        waits: Node → the predecessors it waits for before starting (edges of the DAG's
            transitive reduction that ``sp`` does not order), in input order.
    """

    sp: SP
    waits: dict[str, tuple[str, ...]]


def lower_with_waits(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> WaitPlan:
    """Lower a DAG exactly: an SP skeleton from its edges plus waits for the rest.

    Series-parallel DAGs get no waits (the skeleton is :func:`.lowering.lower`'s output).
    Everything is deterministic: ties go to the input order of ``nodes``.

    Raises:
        ValueError: On invalid input, as for :func:`.lowering.lower`.
    """
    edges = list(edges)
    if is_series_parallel(nodes, edges):
        return WaitPlan(lower(nodes, edges), {})
    g = _Graph(nodes, edges, None)
    names = g.names
    n = len(names)
    succ = _transitive_reduction(g)
    pred: list[list[int]] = [[] for _ in range(n)]
    for u in range(n):
        for v in succ[u]:
            pred[v].append(u)
    # Keep the predecessor most likely to finish last (deepest, then latest in order):
    # the waits for the others then usually find them done at the first poll.
    pos = {v: i for i, v in enumerate(g.topo)}
    depth = [0] * n
    for v in g.topo:
        depth[v] = max((depth[p] + 1 for p in pred[v]), default=0)
    kept: list[tuple[str, str]] = []
    rest: list[tuple[int, int]] = []
    for v in g.topo:
        if pred[v]:
            keep = max(pred[v], key=lambda u: (depth[u], pos[u]))
            kept.append((names[keep], names[v]))
            rest += [(u, v) for u in sorted(pred[v], key=pos.__getitem__) if u != keep]
    # An edge rejected early can fit once later ones are in, so passes repeat while they
    # add something and the budget lasts.
    tries = _ADD_BACK_WORK // (n + len(kept))
    while rest and tries > 0:
        rejected: list[tuple[int, int]] = []
        for u, v in rest:
            if tries <= 0:
                break
            tries -= 1
            candidate = [*kept, (names[u], names[v])]
            if is_series_parallel(names, candidate):
                kept = candidate
            else:
                rejected.append((u, v))
        if len(rejected) == len(rest):
            break
        rest = rejected
    sp = lower(names, kept)
    first, second = _linear_extensions(sp)
    pos1 = {x: i for i, x in enumerate(first)}
    pos2 = {x: i for i, x in enumerate(second)}
    # Every edge the skeleton does not order becomes a wait, transitive ones included: a
    # step's state holds only the entries of steps the skeleton orders before it and of
    # those it waited for, so ``e`` reading ``a`` where only ``c`` (a -> c -> e) waited for
    # ``a`` would find no ``a`` (issue 14's N). Such a wait finds its producer done at once.
    waits: dict[str, list[str]] = {}
    for v in range(n):  # input order, so the emitted waits are stable
        for u in sorted(g.pred[v]):
            a, b = names[u], names[v]
            if not (pos1[a] < pos1[b] and pos2[a] < pos2[b]):
                waits.setdefault(b, []).append(a)
    return WaitPlan(sp, {k: tuple(v) for k, v in waits.items()})


def _poll_times(ready: float) -> Iterator[float]:
    """The times a wait that starts at ``ready`` polls at (the emitted schedule), forever."""
    t, interval = ready, float(POLL_FIRST_S)
    while t - ready < POLL_FAST_WINDOW_S:
        yield t
        t += interval
        interval = min(interval * POLL_BACKOFF, POLL_MAX_S)
    while True:  # the slow state: its first poll when the fast one gives up, then every 600 s
        yield t
        t += POLL_SLOW_S


def fast_polls() -> int:
    """Polls of the first (fast) wait state: its retries are this minus one."""
    return polls_within(POLL_FAST_WINDOW_S)


def poll_delay(ready: float, done: float) -> float:
    """When a wait that starts polling at ``ready`` sees a producer that ended at ``done``."""
    return next(t for t in _poll_times(ready) if t >= done)


def polls_within(seconds: float) -> int:
    """How many polls a wait makes while its producer runs for ``seconds``."""
    return sum(1 for _ in takewhile(lambda t: t < seconds, _poll_times(0.0)))


def plan_makespan(
    plan: WaitPlan,
    durations: Mapping[str, float],
    poll: Callable[[float, float], float] | None = None,
) -> float:
    """Makespan of a plan with unlimited concurrency.

    Args:
        plan: The plan.
        durations: Duration per node.
        poll: ``poll(ready, done)`` → when a wait that starts at ``ready`` sees a
            producer that finished at ``done``; ``None`` means instantly
            (``max(ready, done)``). Waits of a node run one after another, in order.

    Returns:
        The finish time of the last node.
    """
    see = poll or max
    if not isinstance(plan.sp, str | Seq | Par):
        raise ValueError(f"not an SP expression: {plan.sp!r}")
    g = _Events()
    root_start, root_end = g.build(plan.sp)
    index = {name: s for s, name in g.leaf_of.items()}
    waited_by: dict[int, list[int]] = {}
    for v, us in plan.waits.items():
        for u in us:
            waited_by.setdefault(g.ends[index[u]], []).append(index[v])
    indeg = [0] * len(g.links)
    for out in g.links:
        for w in out:
            indeg[w] += 1
    for v, us in plan.waits.items():
        indeg[index[v]] += len(us)
    ready = [0.0] * len(g.links)
    finish: dict[str, float] = {}
    time = [0.0] * len(g.links)
    queue = deque([root_start])
    while queue:
        x = queue.popleft()
        t = ready[x]
        name = g.leaf_of.get(x)
        if name is not None:
            for u in plan.waits.get(name, ()):
                t = see(t, finish[u])
            finish[name] = t + float(durations[name])
            t = finish[name]
        time[x] = t
        for w in g.links[x]:
            ready[w] = max(ready[w], t)
            indeg[w] -= 1
            if indeg[w] == 0:
                queue.append(w)
        for w in waited_by.get(x, ()):
            indeg[w] -= 1
            if indeg[w] == 0:
                queue.append(w)
    if len(finish) != len(g.leaf_of):
        raise ValueError("the waits and the skeleton form a cycle")
    return time[root_end]


class _Events:
    """The event graph of an SP expression: 2 events per item (its start and end); a leaf is
    "start -> run -> end"."""

    def __init__(self) -> None:
        self.ends: dict[int, int] = {}  # a leaf's start event -> its end event
        self.links: list[list[int]] = []
        self.leaf_of: dict[int, str] = {}

    def new(self) -> int:
        self.links.append([])
        return len(self.links) - 1

    def build(self, item: SP) -> tuple[int, int]:
        links = self.links
        s, e = self.new(), self.new()
        if isinstance(item, str):
            self.leaf_of[s] = item
            self.ends[s] = e
            links[s].append(e)
            return s, e
        parts = [self.build(child) for child in (item.items if isinstance(item, Seq) else item.branches)]
        if isinstance(item, Seq):
            links[s].append(parts[0][0])
            for (_, end), (start, _) in pairwise(parts):
                links[end].append(start)
            links[parts[-1][1]].append(e)
        else:
            for start, end in parts:
                links[s].append(start)
                links[end].append(e)
        return s, e
