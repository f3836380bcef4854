"""Lower an arbitrary step DAG into Amazon States Language's nested ``Parallel`` shape.

ASL has no general DAG: a state machine is a sequence of states, and a ``Parallel``
state runs independent branches (each itself a sequence) that all join at its end.
https://docs.aws.amazon.com/step-functions/latest/dg/state-parallel.html

So a DAG has to become a *series-parallel (SP) expression*: ``Seq`` and ``Par`` over the
DAG's nodes, every node exactly once, every edge ``u -> v`` kept (``u`` ends before
``v`` starts). The expression may add ordering; added ordering is what costs
concurrency, and this module tries to add as little as possible.

How ``lower`` works:

1. Reductions. After a transitive reduction, series modules (``u``'s only successor is
   ``v`` and ``v``'s only predecessor is ``u``) and parallel modules (same
   predecessors, same successors) are collapsed with a work queue. They add no
   ordering, and they reduce any series-parallel DAG to one node in near-linear time
   whatever its nesting depth.
2. Exact decomposition of what is left. A set of nodes that is not weakly connected
   is a ``Par`` of its components; a connected set is a ``Seq`` at every *series
   cut* (a down-set whose every node precedes every node outside it), found in one
   linear scan (``_series_cuts``). Series-parallel (N-free) DAGs therefore come out
   with no added ordering at all, whatever the durations.
3. Prime pieces (connected, no series cut: they contain an "N") need a barrier, and
   the top of any lowering of a connected piece is a ``Seq``, so the choice is *which*
   down-set ``S`` runs first. That costs at least ``longest(S) + longest(rest)``, and
   prefixes of orders that grow along every edge (earliest/latest start/finish) are
   down-sets whose bounds one pass computes. A pilot search lowers the sides of the
   most promising cuts greedily, keeps the cheapest by makespan under the durations,
   and recurses into it; the level-by-level lowering of the piece is always a
   candidate, so no piece, and no DAG, comes out worse than that classic lowering.
4. Mirror pass. The search is not symmetric, so when the first pass misses the ideal
   and left enough of its work budget unspent, the DAG with every edge reversed is
   lowered with what is left, its sequences are reversed back, and the faster of the
   two lowerings wins.

The search effort is a fixed budget of work per node (see the knobs below), so
200-step DAGs get a thorough search and 10,000-step DAGs a fast greedy one.
Everything is deterministic (ties go to the input order of ``nodes``) and iterative
(a generator trampoline instead of Python recursion), so 10,000-step chains and deep
nestings are fine. ``benchmarks/asl_fidelity.py`` measures the result.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise, repeat
from operator import add, sub, truediv

__all__ = [
    "SP",
    "Par",
    "Seq",
    "check_respects",
    "dag_makespan",
    "is_series_parallel",
    "level_lowering",
    "lower",
    "makespan",
]


@dataclass(frozen=True)
class Seq:
    """Run ``items`` one after the other (an ASL state sequence).

    Attributes:
        items: The parts, in execution order.
    """

    items: tuple[SP, ...]


@dataclass(frozen=True)
class Par:
    """Run ``branches`` concurrently and join at the end (an ASL ``Parallel`` state).

    Attributes:
        branches: The independent branches.
    """

    branches: tuple[SP, ...]


SP = str | Seq | Par
"""A series-parallel expression; a ``str`` is a node name."""


# Search knobs (see _Lowerer), tuned with the generators of benchmarks/asl_fidelity.py
# (on another seed than the one it reports).
#
# Work is counted in nodes of prime pieces processed. A DAG may spend up to
# _WORK_PER_NODE per node (at most _WORK_CAP) on pilot search; a piece is searched only
# if its estimated cost (_PILOT_FACTOR * n * log2 n) still fits, otherwise it is cut
# greedily. A 200-step DAG thus gets a full search and a 10,000-step one a fast greedy
# pass. Counting work rather than time keeps the result deterministic.
_WORK_PER_NODE = 50
_WORK_CAP = 12_000
_PILOT_FACTOR = 2.0
# Candidate cuts of a searched piece: the best of each scorer, plus the `top` lowest
# lower bounds (_TOP_SMALL for pieces up to _TOP_SIZE nodes, _TOP_LARGE above).
_TOP_SMALL = 8
_TOP_LARGE = 3
_TOP_SIZE = 100
# Cut orders as (alpha, frac): sort key alpha * ASAP start + (1 - alpha) * ALAP start
# + frac * duration. (1, 1) is earliest finish, (0, 0) latest start.
# The midway orders (alpha 0.5) cut through the middle of nodes' slack windows, which
# the extreme orders never do; adding them took the tuning seed's mean from 1.0317 to
# 1.0283 at about the same time (the search budget, not the candidate count, bounds it).
_GREEDY_ORDERS: tuple[tuple[float, float], ...] = ((1.0, 1.0), (0.0, 0.0), (0.5, 0.5))
_SEARCH_ORDERS: tuple[tuple[float, float], ...] = (
    (1.0, 1.0),
    (0.0, 0.0),
    (1.0, 0.0),
    (0.0, 1.0),
    (0.5, 0.5),
    (0.5, 0.0),
    (0.5, 1.0),
)
# Cut scorers as (kind, weight): "balance" is bound + weight * longest * imbalance,
# "rate" is (bound - longest) / (nodes on the smaller side) ** weight.
_GREEDY_SCORERS: tuple[tuple[str, float], ...] = (("rate", 1.0),)
_SEARCH_SCORERS: tuple[tuple[str, float], ...] = (
    ("balance", 0.0),
    ("balance", 0.1),
    ("balance", 0.3),
    ("balance", 1.0),
    ("rate", 1.0),
)
# Greedy pieces bigger than this are cut _MULTI_WAYS ways at once (see _multi_cut).
_MULTI_MIN = 400
_MULTI_WAYS = 4
# DAGs up to _MIRROR_MAX nodes also lower their mirror image (see lower) when the
# first pass left at least this share of its work budget unspent; below that share
# the mirror's fixed costs would push 200-step DAGs past their time limit.
_MIRROR_MAX = 2_000
_MIRROR_MIN_SHARE = 0.3
# Pieces up to this size are memoised (a candidate's halves recur across candidates);
# bigger ones are only ever lowered once, so keeping their keys would waste memory.
_MEMO_MAX = 512
# Transitive reduction (bitsets: memory ~ n^2 / 8 bytes) only up to this many nodes.
_REDUCE_MAX = 20_000


# --------------------------------------------------------------------------- graph


class _Graph:
    """Validated, integer-indexed DAG with a stable topological order."""

    def __init__(
        self,
        nodes: Sequence[str],
        edges: Iterable[tuple[str, str]],
        durations: Mapping[str, float] | None,
    ) -> None:
        self.names: list[str] = list(nodes)
        if not self.names:
            raise ValueError("the DAG has no nodes")
        self.index: dict[str, int] = {}
        for i, name in enumerate(self.names):
            if not isinstance(name, str):
                raise ValueError(f"node names must be strings, got {name!r}")
            if name in self.index:
                raise ValueError(f"duplicate node {name!r}")
            self.index[name] = i
        n = len(self.names)
        succ_sets: list[set[int]] = [set() for _ in range(n)]
        for edge in edges:
            try:
                src, dst = edge
            except (TypeError, ValueError):
                raise ValueError(f"an edge must be a (from, to) pair, got {edge!r}") from None
            iu = self.index.get(src)
            iv = self.index.get(dst)
            if iu is None or iv is None:
                raise ValueError(f"edge {src!r} -> {dst!r} names an unknown node")
            if iu == iv:
                raise ValueError(f"self-loop on {src!r}")
            succ_sets[iu].add(iv)
        self.exprs: list[SP] = list(self.names)
        self.dur: list[float] = _durations(self.names, durations)
        self._link([sorted(s) for s in succ_sets])

    @classmethod
    def from_parts(cls, exprs: list[SP], dur: list[float], succ: list[list[int]]) -> _Graph:
        """A graph whose nodes stand for already-lowered sub-expressions."""
        g = cls.__new__(cls)
        g.names = [_first_leaf(e) for e in exprs]
        g.index = {}
        g.exprs = exprs
        g.dur = dur
        g._link(succ)
        return g

    def _link(self, succ: list[list[int]]) -> None:
        # Sorted adjacency keeps every later traversal independent of set iteration order.
        self.succ = succ
        self.pred: list[list[int]] = [[] for _ in succ]
        for u, out in enumerate(succ):
            for v in out:
                self.pred[v].append(u)
        self.topo: list[int] = self._toposort()

    def _toposort(self) -> list[int]:
        # Kahn with a heap: among ready nodes the earliest in input order goes first, so
        # the order (and everything built on it) is a function of the input alone.
        indeg = [len(p) for p in self.pred]
        ready = [v for v in range(len(indeg)) if indeg[v] == 0]
        heapq.heapify(ready)
        order: list[int] = []
        while ready:
            v = heapq.heappop(ready)
            order.append(v)
            for w in self.succ[v]:
                indeg[w] -= 1
                if indeg[w] == 0:
                    heapq.heappush(ready, w)
        if len(order) != len(indeg):
            stuck = next(v for v in range(len(indeg)) if indeg[v] > 0)
            raise ValueError(f"the graph has a cycle through {self.names[stuck]!r}")
        return order


def _durations(names: Sequence[str], durations: Mapping[str, float] | None) -> list[float]:
    if durations is None:
        return [1.0] * len(names)
    out: list[float] = []
    for name in names:
        if name not in durations:
            raise ValueError(f"no duration for node {name!r}")
        d = float(durations[name])
        if not math.isfinite(d) or d < 0:
            raise ValueError(f"duration of {name!r} must be finite and >= 0, got {d!r}")
        out.append(d)
    return out


# ---------------------------------------------------------------------- reductions


def _first_leaf(sp: SP) -> str:
    while not isinstance(sp, str):
        sp = sp.items[0] if isinstance(sp, Seq) else sp.branches[0]
    return sp


def _transitive_reduction(g: _Graph) -> list[list[int]]:
    """Successor lists without edges implied by longer paths (bitset reachability).

    Transitive edges change no ordering, but they hide the series and parallel
    modules that the reductions below collapse in linear time.
    """
    n = len(g.names)
    below = [0] * n  # bitset of strict descendants
    for v in reversed(g.topo):
        mask = 0
        for w in g.succ[v]:
            mask |= below[w] | (1 << w)
        below[v] = mask
    out: list[list[int]] = []
    for v in range(n):
        succ = g.succ[v]
        if len(succ) < 2:
            out.append(succ)
            continue
        covered = 0
        for w in succ:
            covered |= below[w]
        out.append([w for w in succ if not covered >> w & 1])
    return out


# A module under construction: a node name or ("seq" | "par", first, second). Binary
# nodes make every merge O(1); _finish flattens them once at the end.
_Build = str | tuple[str, "_Build", "_Build"]


def _finish(root: _Build) -> SP:
    """Turn a module tree into a flattened SP expression, without recursion."""

    def members(b: tuple[str, _Build, _Build]) -> list[_Build]:
        # The children of the maximal same-kind subtree under b, in order.
        out: list[_Build] = []
        stack: list[_Build] = [b]
        while stack:
            x = stack.pop()
            if isinstance(x, tuple) and x[0] == b[0]:
                stack.append(x[2])
                stack.append(x[1])
            else:
                out.append(x)
        return out

    if isinstance(root, str):
        return root
    frames: list[tuple[tuple[str, _Build, _Build], list[_Build], list[SP]]] = [(root, members(root), [])]
    while True:
        b, todo, done = frames[-1]
        if len(done) < len(todo):
            x = todo[len(done)]
            if isinstance(x, str):
                done.append(x)
            else:
                frames.append((x, members(x), []))
            continue
        frames.pop()
        expr: SP = Seq(tuple(done)) if b[0] == "seq" else Par(tuple(done))
        if not frames:
            return expr
        frames[-1][2].append(expr)


def _reduce(g: _Graph) -> _Graph:
    """Collapse series and parallel modules; what is left needs the general lowering.

    Series: ``u``'s only successor is ``v`` and ``v``'s only predecessor is ``u``.
    Parallel: two nodes with the same predecessors and the same successors. Both are
    exact (they add no ordering), and after a transitive reduction they collapse a
    series-parallel DAG to a single node in near-linear time, whatever its nesting
    depth; the recursive decomposition alone would take time proportional to size
    times depth (a 10,000-step chain with a side step at every link, say).
    A merged node keeps the smaller id, so input order still breaks ties.
    """
    r = _Reducer(g)
    r.run()
    return r.result(g)


class _Reducer:
    """:func:`_reduce`'s state: the graph as it collapses, and the work queue."""

    def __init__(self, g: _Graph) -> None:
        n = self.n = len(g.names)
        out = _transitive_reduction(g) if n <= _REDUCE_MAX else g.succ
        self.succ = [set(o) for o in out]
        self.pred: list[set[int]] = [set() for _ in range(n)]
        for u in range(n):
            for v in self.succ[u]:
                self.pred[v].add(u)
        self.build: list[_Build] = list(g.names)
        self.cost = list(g.dur)
        self.alive = [True] * n
        self.queued = [True] * n
        self.queue = deque(g.topo)
        self.twins: dict[tuple[frozenset[int], frozenset[int]], int] = {}

    def push(self, xs: Iterable[int]) -> None:
        for x in xs:
            if not self.queued[x]:
                self.queued[x] = True
                self.queue.append(x)

    def run(self) -> None:
        while self.queue:
            u = self.queue.popleft()
            self.queued[u] = False
            if self.alive[u] and not self.series(u):
                self.parallel(u)

    def series(self, u: int) -> bool:
        """Merge ``u`` with its only successor or predecessor when that is a series module."""
        succ, pred = self.succ, self.pred
        pair = None
        if len(succ[u]) == 1:
            (v,) = succ[u]
            if len(pred[v]) == 1:
                pair = (u, v)
        if pair is None and len(pred[u]) == 1:
            (p,) = pred[u]
            if len(succ[p]) == 1:
                pair = (p, u)
        if pair is None:
            return False
        first, second = pair
        keep, gone = min(pair), max(pair)
        ins, outs = pred[first], succ[second]
        _rename(first, keep, succ, ins)
        _rename(second, keep, pred, outs)
        self.build[keep] = ("seq", self.build[first], self.build[second])
        self.cost[keep] = self.cost[first] + self.cost[second]
        pred[keep], succ[keep] = ins, outs
        self.alive[gone] = False
        pred[gone], succ[gone] = set(), set()
        self.push([keep, *ins, *outs])
        return True

    def parallel(self, u: int) -> None:
        """Merge ``u`` with a twin (same predecessors, same successors), if one is known."""
        succ, pred, twins = self.succ, self.pred, self.twins
        key = (frozenset(pred[u]), frozenset(succ[u]))
        other = twins.get(key)
        if other is None or other == u or not self.alive[other]:
            twins[key] = u
            return
        if pred[other] != pred[u] or succ[other] != succ[u]:
            twins[key] = u  # stale entry: `other` has changed since
            return
        keep, gone = min(u, other), max(u, other)
        for x in pred[gone]:
            succ[x].discard(gone)
        for x in succ[gone]:
            pred[x].discard(gone)
        self.build[keep] = ("par", self.build[keep], self.build[gone])
        self.cost[keep] = max(self.cost[keep], self.cost[gone])
        self.alive[gone] = False
        twins[key] = keep
        self.push([keep, *pred[keep], *succ[keep]])
        pred[gone], succ[gone] = set(), set()

    def result(self, g: _Graph) -> _Graph:
        """What is left, as a graph of SP expressions."""
        n, alive, build, cost, succ = self.n, self.alive, self.build, self.cost, self.succ

        ids = [u for u in range(n) if alive[u]]
        if len(ids) == 1:
            return _Graph.from_parts([_finish(build[ids[0]])], [cost[ids[0]]], [[]])
        # A series module is kept as the chain of its top-level items: a barrier may
        # well belong between two of them (a long chain beside the rest), and an atomic
        # block would have to straddle it.
        times = dict(zip(g.names, g.dur, strict=True))
        exprs: list[SP] = []
        costs: list[float] = []
        starts: dict[int, int] = {}
        ends: dict[int, int] = {}
        for u in ids:
            expr = _finish(build[u])
            starts[u] = len(exprs)
            if isinstance(expr, Seq):
                for item in expr.items:
                    exprs.append(item)
                    costs.append(times[item] if isinstance(item, str) else makespan(item, times))
            else:
                exprs.append(expr)
                costs.append(cost[u])
            ends[u] = len(exprs) - 1
        links: list[list[int]] = [[i + 1] for i in range(len(exprs))]
        for u in ids:
            links[ends[u]] = sorted(starts[v] for v in succ[u])
        return _Graph.from_parts(exprs, costs, links)


def _rename(old: int, new: int, sets: list[set[int]], where: Iterable[int]) -> None:
    if old != new:
        for x in where:
            sets[x].discard(old)
            sets[x].add(new)


# ------------------------------------------------------------------- decomposition


class _Piece:
    """A node subset (in topological order) with its induced adjacency by position."""

    __slots__ = ("nodes", "preds", "succs")

    def __init__(self, g: _Graph, nodes: list[int]) -> None:
        self.nodes = nodes
        get = {v: i for i, v in enumerate(nodes)}.get
        self.succs: list[list[int]] = []
        self.preds: list[list[int]] = [[] for _ in nodes]
        preds = self.preds
        for i, v in enumerate(nodes):
            out = []
            for w in g.succ[v]:
                j = get(w)
                if j is not None:
                    out.append(j)
                    preds[j].append(i)
            self.succs.append(out)


def _components(piece: _Piece) -> list[list[int]]:
    """Weakly connected components, as position lists in topological order."""
    n = len(piece.nodes)
    comp = [-1] * n
    count = 0
    succs, preds = piece.succs, piece.preds
    for start in range(n):
        if comp[start] >= 0:
            continue
        comp[start] = count
        todo = [start]
        while todo:
            i = todo.pop()
            for j in succs[i]:
                if comp[j] < 0:
                    comp[j] = count
                    todo.append(j)
            for j in preds[i]:
                if comp[j] < 0:
                    comp[j] = count
                    todo.append(j)
        count += 1
    groups: list[list[int]] = [[] for _ in range(count)]
    for i in range(n):
        groups[comp[i]].append(i)
    return groups


def _series_cuts(piece: _Piece) -> list[int]:
    """Positions ``k`` where ``nodes[:k]`` precedes every node of ``nodes[k:]``.

    Every such down-set is a prefix of any topological order, so scanning one order
    finds them all. The prefix ``P`` precedes the suffix ``Q`` exactly when every
    maximal node of ``P`` has a direct edge to every minimal node of ``Q`` (a path
    between them would need a node that is either in ``P`` above a maximal one or in
    ``Q`` below a minimal one). So the scan keeps the maximal set ``M``, the minimal
    set ``N`` and the number ``e`` of edges from ``M`` to ``N``, and a cut is where
    ``e == |M| * |N|``. Each node enters and leaves ``M`` and ``N`` once and each
    visit walks its adjacency once: ``O(nodes + edges)`` overall.
    """
    succs, preds = piece.succs, piece.preds
    n = len(succs)
    in_m = [False] * n
    in_n = [False] * n
    waiting = [len(p) for p in preds]  # predecessors still in the suffix
    size_m = 0
    size_n = 0
    for i in range(n):
        if waiting[i] == 0:
            in_n[i] = True
            size_n += 1
    e = 0
    cuts: list[int] = []
    for x in range(n - 1):
        # x is the first suffix node; all its predecessors are in the prefix, so x is
        # minimal there. Move it across.
        in_n[x] = False
        size_n -= 1
        for p in preds[x]:
            if in_m[p]:
                e -= 1
        for p in preds[x]:
            if in_m[p]:
                # p now has a successor (x) inside the prefix: no longer maximal.
                in_m[p] = False
                size_m -= 1
                for s in succs[p]:
                    if in_n[s]:
                        e -= 1
        in_m[x] = True  # nothing after x is in the prefix yet
        size_m += 1
        for s in succs[x]:
            waiting[s] -= 1
            if waiting[s] == 0:
                in_n[s] = True
                size_n += 1
                for p in preds[s]:
                    if in_m[p]:
                        e += 1
        if e == size_m * size_n:
            cuts.append(x + 1)
    return cuts


def _flat_seq(parts: list[SP]) -> SP:
    items: list[SP] = []
    for p in parts:
        if isinstance(p, Seq):
            items.extend(p.items)
        else:
            items.append(p)
    return items[0] if len(items) == 1 else Seq(tuple(items))


def _flat_par(branches: list[SP]) -> SP:
    out: list[SP] = []
    for b in branches:
        if isinstance(b, Par):
            out.extend(b.branches)
        else:
            out.append(b)
    return out[0] if len(out) == 1 else Par(tuple(out))


def _level_cost(piece: _Piece, dur: list[float]) -> tuple[float, list[int]]:
    """Makespan of the level-by-level lowering of a piece, and each node's level."""
    n = len(dur)
    depth = [0] * n
    preds = piece.preds
    for i in range(n):
        best = -1
        for p in preds[i]:
            if depth[p] > best:
                best = depth[p]
        depth[i] = best + 1
    longest = [0.0] * (max(depth) + 1)
    for i in range(n):
        if dur[i] > longest[depth[i]]:
            longest[depth[i]] = dur[i]
    return sum(longest), depth


def _level_expr(g: _Graph, nodes: list[int], depth: list[int]) -> SP:
    levels: list[list[int]] = [[] for _ in range(max(depth) + 1)]
    for i, v in enumerate(nodes):
        levels[depth[i]].append(v)
    # Input order inside each Parallel.
    return _flat_seq([_flat_par([g.exprs[v] for v in sorted(level)]) for level in levels])


# A lowering step asks for sub-results by yielding (node list, mode) and receiving
# (cost, expression); the driver runs these generators on an explicit stack, so deep
# decompositions never touch Python's recursion limit.
_Result = tuple[float, SP]
_Request = tuple[list[int], int, int]
# What a requester already knows about the piece it asks for, so it is not re-checked.
_CONNECTED = 1
_NO_SERIES = 2
# Mode meaning "as strong as the work budget allows" (see _Lowerer).
_FULL = -1
_Step = Generator[_Request, _Result, _Result]


def _trampoline(first: _Step, make: Callable[[list[int], int, int], _Step]) -> _Result:
    """Run a generator-based recursion without using the Python call stack."""
    stack: list[_Step] = [first]
    value: _Result | None = None
    while True:
        gen = stack[-1]
        try:
            request = next(gen) if value is None else gen.send(value)
        except StopIteration as stop:
            stack.pop()
            if not stack:
                result: _Result = stop.value
                return result
            value = stop.value
            continue
        stack.append(make(*request))
        value = None


def _head_tail(piece: _Piece, dur: list[float]) -> tuple[list[float], list[float], float]:
    """Longest paths ending / starting at each position (itself included), and overall."""
    n = len(dur)
    preds, succs = piece.preds, piece.succs
    head = [0.0] * n  # earliest finish
    for i in range(n):
        best = 0.0
        for p in preds[i]:
            if head[p] > best:
                best = head[p]
        head[i] = best + dur[i]
    tail = [0.0] * n  # longest path to the end: the latest start is longest - tail
    for i in range(n - 1, -1, -1):
        best = 0.0
        for s in succs[i]:
            if tail[s] > best:
                best = tail[s]
        tail[i] = best + dur[i]
    return head, tail, max(head)


def _multi_cut(nodes: list[int], head: list[float], tail: list[float], ways: int) -> list[list[int]]:
    """Split a piece at up to ``ways - 1`` nested barriers taken from one order.

    Each barrier is the cheapest (by lower bound) within its share of the order, so
    the parts stay balanced in size; the earliest-finish and the latest-start orders
    are both tried and the one whose barriers lose less in total wins.
    """
    n = len(nodes)
    lp = max(head)
    best: tuple[float, list[int], list[int]] | None = None
    for key in (head, [-t for t in tail]):
        order = sorted(range(n), key=key.__getitem__)
        pre = list(accumulate((head[i] for i in order), max))
        suf = list(accumulate((tail[i] for i in reversed(order)), max))
        bounds = list(map(add, pre[:-1], reversed(suf[:-1])))  # index k-1: cut after k
        cuts = [0]
        loss = 0.0
        for j in range(1, ways):
            lo = max(cuts[-1] + 1, (2 * j - 1) * n // (2 * ways))
            hi = min(n - 1, (2 * j + 1) * n // (2 * ways))
            if lo > hi:
                continue
            k = min(range(lo, hi + 1), key=lambda k: bounds[k - 1])
            loss += bounds[k - 1] - lp
            cuts.append(k)
        cuts.append(n)
        if best is None or loss < best[0]:
            best = (loss, order, cuts)
    assert best is not None
    _loss, order, cuts = best
    return [[nodes[i] for i in sorted(order[a:b])] for a, b in pairwise(cuts)]


class _Cut:
    """A candidate barrier: ``left`` (a down-set) runs before ``right``."""

    __slots__ = ("bound", "left", "right", "right_bound")

    def __init__(self, bound: float, right_bound: float, left: list[int], right: list[int]):
        self.bound = bound  # longest(left) + longest(right): no lowering through it is faster
        self.right_bound = right_bound  # longest(right)
        self.left = left
        self.right = right


class _Lowerer:
    """Decompose exactly, and search barrier cuts where the DAG is not series-parallel.

    ``mode`` is the search strength asked for a piece: 0 is greedy (one cut per prime
    piece); ``m > 0`` is a pilot search that scores several candidate cuts by lowering
    their sides with strength ``m - 1``, then lowers the winner with strength ``m``.
    ``_FULL`` asks for pilot search if the work budget allows it, for this piece and
    (independently) for each piece below it.
    """

    def __init__(
        self, g: _Graph, *, exact_only: bool = False, size: int = 0, budget: int | None = None
    ) -> None:
        self.g = g
        self.memo: dict[tuple[int, bool, tuple[int, ...]], _Result] = {}
        # exact_only: note prime pieces instead of lowering them (is_series_parallel).
        self.exact_only = exact_only
        self.found_prime = False
        self.work = 0
        self.budget = _budget(max(size, len(g.names))) if budget is None else budget

    def run(self) -> _Result:
        mode = 0 if self.exact_only else _FULL
        return _trampoline(self.solve(list(self.g.topo), mode), self.solve)

    def leaf(self, v: int) -> _Result:
        return (self.g.dur[v], self.g.exprs[v])

    def solve(self, nodes: list[int], mode: int, known: int = 0) -> _Step:
        g = self.g
        n = len(nodes)
        if n == 1:
            return self.leaf(nodes[0])
        full = mode == _FULL
        if full:
            affordable = self.work + _PILOT_FACTOR * n * math.log2(n) <= self.budget
            mode = 1 if affordable else 0
        # A greedy rollout and a budget-limited full lowering differ below the top, so
        # `full` is part of the key.
        key = (mode, full, tuple(nodes)) if n <= _MEMO_MAX else None
        if key is not None:
            hit = self.memo.get(key)
            if hit is not None:
                return hit
        sub_mode = _FULL if full else mode
        piece = _Piece(g, nodes)
        result: _Result
        groups = None if known & _CONNECTED else _components(piece)
        if groups is not None and len(groups) > 1:
            # Branch order: by the earliest (in input order) node they contain.
            subsets = sorted(([nodes[i] for i in grp] for grp in groups), key=min)
            result = yield from self.solve_parallel(subsets, mode, sub_mode)
        else:
            cuts = [] if known & _NO_SERIES else _series_cuts(piece)
            if cuts:
                result = yield from self.solve_series(nodes, cuts, sub_mode)
            elif self.exact_only:
                self.found_prime = True
                result = (math.inf, g.exprs[nodes[0]])
            else:
                result = yield from self.solve_prime(piece, mode, sub_mode)
        if key is not None:
            self.memo[key] = result
        return result

    def solve_parallel(self, subsets: list[list[int]], mode: int, sub_mode: int) -> _Step:
        """Lower unconnected pieces as the branches of a ``Parallel``."""
        results: list[_Result] = []
        first = 0 if mode else sub_mode
        for branch in subsets:
            results.append(self.leaf(branch[0]) if len(branch) == 1 else (yield branch, first, _CONNECTED))
        if mode:
            # Only the longest branches decide a Parallel's makespan: search those,
            # longest first, and stop once the rest already fit under the maximum.
            longest = 0.0
            for i in sorted(range(len(results)), key=lambda j: -results[j][0]):
                if results[i][0] <= longest:
                    break
                if len(subsets[i]) > 2:
                    better = yield subsets[i], sub_mode, _CONNECTED
                    if better[0] < results[i][0]:
                        results[i] = better
                longest = max(longest, results[i][0])
        return (max(r[0] for r in results), _flat_par([r[1] for r in results]))

    def solve_series(self, nodes: list[int], cuts: list[int], sub_mode: int) -> _Step:
        """Lower a piece with series cuts as the sequence of its parts."""
        total = 0.0
        exprs: list[SP] = []
        for a, b in pairwise([0, *cuts, len(nodes)]):
            part = nodes[a:b]
            c, e = self.leaf(part[0]) if b - a == 1 else (yield part, sub_mode, _NO_SERIES)
            total += c
            exprs.append(e)
        return (total, _flat_seq(exprs))

    def solve_prime(self, piece: _Piece, mode: int, sub_mode: int) -> _Step:
        """Lower a connected piece that has no series cut (it contains an N)."""
        g = self.g
        nodes = piece.nodes
        n = len(nodes)
        self.work += n
        dur = [g.dur[v] for v in nodes]
        head, tail, lp = _head_tail(piece, dur)
        if mode == 0:
            if n > _MULTI_MIN:
                # Several barriers in one pass keep huge decompositions shallow (log
                # base _MULTI_WAYS), which keeps 10,000 steps well under a second.
                parts = _multi_cut(nodes, head, tail, _MULTI_WAYS)
            else:
                cut = self.candidates(piece, dur, head, tail, lp, 0)[0]
                parts = [cut.left, cut.right]
            total = 0.0
            exprs: list[SP] = []
            for part in parts:
                c, e = self.leaf(part[0]) if len(part) == 1 else (yield part, sub_mode, 0)
                total += c
                exprs.append(e)
            return (total, _flat_seq(exprs))

        # The level-by-level lowering of the piece is always a candidate: it seeds the
        # bound that prunes cuts, and keeps the piece no worse than the baseline.
        best_cost, depth = _level_cost(piece, dur)
        best_expr: SP | None = None
        # Pilot search: score each candidate by lowering its sides one strength lower,
        # keep the best, then lower that one at full strength. Candidates come in
        # lower-bound order, so the first whose bound cannot beat the best so far ends
        # the scan, and so does reaching the piece's longest path (nothing is faster).
        pick: _Cut | None = None
        pick_cost = math.inf
        for cut in self.candidates(piece, dur, head, tail, lp, mode):
            if cut.bound >= best_cost or best_cost <= lp:
                break
            lc, le = yield cut.left, mode - 1, 0
            if lc + cut.right_bound >= best_cost:
                continue  # the right side cannot make up for it
            rc, re = yield cut.right, mode - 1, 0
            if lc + rc < best_cost:
                best_cost, best_expr = lc + rc, _flat_seq([le, re])
            if lc + rc < pick_cost:
                pick, pick_cost = cut, lc + rc
        if pick is not None and pick.bound < pick_cost:
            lc, le = yield pick.left, sub_mode, 0
            rc, re = yield pick.right, sub_mode, 0
            if lc + rc < best_cost:
                best_cost, best_expr = lc + rc, _flat_seq([le, re])
        if best_expr is None:
            best_expr = _level_expr(g, nodes, depth)
        return (best_cost, best_expr)

    def candidates(
        self,
        piece: _Piece,
        dur: list[float],
        head: list[float],
        tail: list[float],
        lp: float,
        mode: int,
    ) -> list[_Cut]:
        """Candidate barrier cuts of a prime piece, lowest lower bound first."""
        nodes = piece.nodes
        n = len(nodes)
        early = [h - d for h, d in zip(head, dur, strict=True)]  # earliest start
        late = [lp - t for t in tail]  # latest start

        # Every prefix of an order that is monotone along edges is a down-set, i.e. a
        # valid "runs first" side. For a prefix S, max(head in S) + max(tail outside
        # S) is a lower bound on any lowering that puts S first (both are exact inside
        # a down-set and its complement), so one pass per order bounds all its cuts.
        # The bound alone favours peeling a short node off either end, which makes
        # little progress; the scorers also reward balanced cuts.
        spans = range(1, n)
        imbalance = [lp * abs(2 * k - n) / n for k in spans]
        smaller = [min(k, n - k) for k in spans]
        scorers = _GREEDY_SCORERS if mode == 0 else _SEARCH_SCORERS
        # Per-cut terms that do not depend on the order, computed once (in C via map).
        factors = [
            [weight * m for m in imbalance] if kind == "balance" else [m**weight for m in smaller]
            for kind, weight in scorers
        ]
        best: list[tuple[float, float, int, int]] = [(math.inf, 0.0, 0, 0)] * len(scorers)
        top = 0 if mode == 0 else _TOP_SMALL if n <= _TOP_SIZE else _TOP_LARGE
        pool: list[tuple[float, int, int]] = []
        orders: list[list[int]] = []
        for oid, (alpha, frac) in enumerate(_GREEDY_ORDERS if mode == 0 else _SEARCH_ORDERS):
            # A start time between ASAP (alpha=1) and ALAP (alpha=0), plus a fraction
            # of the duration, grows along every edge; the stable sort keeps
            # topological order among ties.
            keys = [
                alpha * e + (1.0 - alpha) * la + frac * d for e, la, d in zip(early, late, dur, strict=True)
            ]
            order = sorted(range(n), key=keys.__getitem__)
            orders.append(order)
            pre = list(accumulate((head[i] for i in order), max))
            suf = list(accumulate((tail[i] for i in reversed(order)), max))
            bounds = list(map(add, pre[:-1], reversed(suf[:-1])))  # cut after k = 1..n-1
            if top:
                pool.extend(heapq.nsmallest(top, zip(bounds, repeat(oid), spans)))
            for si, (kind, _weight) in enumerate(scorers):
                if kind == "balance":
                    scores = list(map(add, bounds, factors[si]))
                else:
                    scores = list(map(truediv, map(sub, bounds, repeat(lp)), factors[si]))
                # First minimum: ties go to the earlier order and the smaller prefix,
                # the cut that commits to the least.
                j = scores.index(min(scores))
                if scores[j] < best[si][0]:
                    best[si] = (scores[j], bounds[j], oid, j + 1)
        chosen = [(bound, oid, k) for _score, bound, oid, k in best]
        quota = len(chosen) + top
        # The same prefix shows up in several orders; take enough to find `top` new ones.
        chosen.extend(heapq.nsmallest(top * len(orders), pool))
        seen: set[tuple[int, ...]] = set()
        cands: list[_Cut] = []
        for bound, oid, k in chosen:
            first = sorted(orders[oid][:k])
            key = tuple(first)
            if key in seen:
                continue
            seen.add(key)
            inside = bytearray(n)
            for i in first:
                inside[i] = 1
            left_lp = max(head[i] for i in first)
            right = [nodes[i] for i in range(n) if not inside[i]]
            cands.append(_Cut(bound, bound - left_lp, [nodes[i] for i in first], right))
            if len(seen) >= quota:
                break
        cands.sort(key=lambda c: c.bound)  # stable: ties keep the scorers' order
        return cands


# ----------------------------------------------------------------------- public API


def lower(
    nodes: Sequence[str],
    edges: Iterable[tuple[str, str]],
    durations: Mapping[str, float] | None = None,
) -> SP:
    """Lower a DAG to a series-parallel expression that keeps every edge.

    Series-parallel DAGs (after transitive reduction) come out exactly, so their
    makespan is the DAG's longest path for any durations. Other DAGs get the fewest
    barriers the heuristic search finds, judged by makespan under ``durations``;
    the result is never slower than :func:`level_lowering`.

    Args:
        nodes: Node names, unique. Their order breaks every tie, so the same input
            always gives the same expression.
        edges: ``(u, v)`` pairs meaning ``u`` must finish before ``v`` starts.
            Duplicates and transitive edges are fine.
        durations: Expected duration per node (finite, >= 0); every node must have
            one. ``None`` means 1.0 each.

    Returns:
        A node name (single node), or a :class:`Seq` / :class:`Par` tree in which
        every node appears exactly once. ``Seq`` never directly contains a ``Seq``
        and ``Par`` never directly contains a ``Par``.

    Raises:
        ValueError: On an empty node list, duplicate or unknown nodes, a cycle, or
            a missing or invalid duration.
    """
    edges = list(edges)
    g = _Graph(nodes, edges, durations)
    n = len(g.names)
    # The search budget follows the DAG's size, not the reduced graph's.
    lowerer = _Lowerer(_reduce(g), size=n)
    expr = lowerer.run()[1]
    times = dict(zip(g.names, g.dur, strict=True))
    cost = makespan(expr, times)
    piece = _Piece(g, list(g.topo))
    _head, _tail, ideal = _head_tail(piece, g.dur)
    leftover = lowerer.budget - lowerer.work
    if cost > ideal and leftover >= _MIRROR_MIN_SHARE * lowerer.budget and n <= _MIRROR_MAX:
        # The search is not symmetric (cut orders, tie-breaks, which side is lowered
        # first), so the same DAG with every edge reversed often lowers differently;
        # reversing that expression's sequences gives a lowering of the original DAG.
        # It gets only the work the first pass left over, so the worst case costs no
        # more search than before.
        mirror = _Graph(nodes, [(dst, src) for src, dst in edges], durations)
        other = _reverse_seqs(_Lowerer(_reduce(mirror), budget=leftover).run()[1])
        other_cost = makespan(other, times)
        if other_cost < cost:
            expr, cost = other, other_cost
    # Prime pieces already weigh level lowering; comparing on the whole DAG as well
    # makes "never worse than level lowering" hold by construction.
    _level, depth = _level_cost(piece, g.dur)
    level = _level_expr(g, piece.nodes, depth)
    if durations is None:
        # Durations unknown (what a compiler has): "never worse than level lowering" must
        # then hold for *any* durations, i.e. the expression may only order pairs that
        # level lowering orders too; otherwise level lowering it is.
        levels = {g.names[v]: float(d) for v, d in zip(piece.nodes, depth, strict=True)}
        return expr if _within_levels(expr, levels) else level
    return level if makespan(level, times) < cost else expr


def _within_levels(sp: SP, level: Mapping[str, float]) -> bool:
    """Whether every pair ``sp`` orders is in increasing level order (iteratively: a
    ``Seq`` item's nodes follow every node of the items before it)."""
    top: dict[int, float] = {}  # id(item) -> highest level inside
    post: list[SP] = []
    stack: list[SP] = [sp]
    while stack:
        item = stack.pop()
        post.append(item)
        if not isinstance(item, str):
            stack.extend(_children(item))
    for item in reversed(post):
        top[id(item)] = level[item] if isinstance(item, str) else max(top[id(c)] for c in _children(item))
    todo: list[tuple[SP, float]] = [(sp, -math.inf)]
    while todo:
        item, before = todo.pop()
        if isinstance(item, str):
            if before >= level[item]:
                return False
        elif isinstance(item, Par):
            todo.extend((branch, before) for branch in item.branches)
        else:
            for child in item.items:
                todo.append((child, before))
                before = max(before, top[id(child)])
    return True


def _budget(size: int) -> int:
    return min(_WORK_PER_NODE * size, _WORK_CAP)


def _reverse_seqs(sp: SP) -> SP:
    """The expression with every ``Seq`` reversed: a lowering of the reversed DAG."""
    # Iterative post-order, so deep nestings are fine.
    done: dict[int, SP] = {}
    stack: list[tuple[SP, bool]] = [(sp, False)]
    while stack:
        item, expanded = stack.pop()
        if isinstance(item, str):
            continue
        children = item.items if isinstance(item, Seq) else item.branches
        if not expanded:
            stack.append((item, True))
            stack.extend((c, False) for c in children)
            continue
        new = [c if isinstance(c, str) else done.pop(id(c)) for c in children]
        done[id(item)] = Seq(tuple(reversed(new))) if isinstance(item, Seq) else Par(tuple(new))
    return sp if isinstance(sp, str) else done[id(sp)]


def level_lowering(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> SP:
    """Baseline lowering: topological levels with a barrier after each level.

    A node's level is the length (in edges) of the longest path reaching it; each
    level is one ``Parallel`` and levels run in sequence.

    Args:
        nodes: Node names, unique; they order the branches of each level.
        edges: ``(u, v)`` dependency pairs.

    Returns:
        The level-by-level expression.

    Raises:
        ValueError: On invalid input, as for :func:`lower`.
    """
    g = _Graph(nodes, edges, None)
    piece = _Piece(g, list(g.topo))
    return _level_expr(g, piece.nodes, _level_cost(piece, g.dur)[1])


def is_series_parallel(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> bool:
    """Whether the DAG's transitive reduction is vertex series-parallel.

    Equivalently, its reachability order has no induced "N" (``a->c, b->c, b->d``
    with ``a`` and ``d`` unrelated), and :func:`lower` adds no ordering to it.

    Args:
        nodes: Node names, unique.
        edges: ``(u, v)`` dependency pairs.

    Returns:
        True when the DAG decomposes into series and parallel parts exactly.

    Raises:
        ValueError: On invalid input, as for :func:`lower`.
    """
    reduced = _reduce(_Graph(nodes, edges, None))
    if len(reduced.names) == 1:
        return True
    lowerer = _Lowerer(reduced, exact_only=True)
    lowerer.run()
    return not lowerer.found_prime


def dag_makespan(
    nodes: Sequence[str],
    edges: Iterable[tuple[str, str]],
    durations: Mapping[str, float] | None = None,
) -> float:
    """Ideal makespan of the DAG with unlimited concurrency: its longest path.

    Args:
        nodes: Node names, unique.
        edges: ``(u, v)`` dependency pairs.
        durations: Duration per node; ``None`` means 1.0 each.

    Returns:
        The longest duration-weighted path.

    Raises:
        ValueError: On invalid input, as for :func:`lower`.
    """
    g = _Graph(nodes, edges, durations)
    finish = [0.0] * len(g.names)
    for v in g.topo:
        start = max((finish[p] for p in g.pred[v]), default=0.0)
        finish[v] = start + g.dur[v]
    return max(finish)


def _children(item: Seq | Par) -> tuple[SP, ...]:
    children = item.items if isinstance(item, Seq) else item.branches
    if not children:
        raise ValueError(f"empty {type(item).__name__}")
    return children


def makespan(sp: SP, durations: Mapping[str, float]) -> float:
    """Makespan of an SP expression with unlimited concurrency.

    The expression is run as a schedule: a ``Seq`` item starts when the previous one
    ends, ``Par`` branches start together and the ``Par`` ends with the last one. Each
    node's finish time is its start plus its duration, added in the same order as
    :func:`dag_makespan` adds them, so a lowering that adds no ordering gives exactly
    the same float, not just a close one.

    Args:
        sp: The expression.
        durations: Duration per node name; every node in ``sp`` must have one.

    Returns:
        The makespan.

    Raises:
        ValueError: On a malformed expression or a missing duration.
    """
    # Explicit stack of [item, start, next child, time so far] so deep nesting is fine.
    stack: list[list[object]] = [[sp, 0.0, 0, 0.0]]
    finished = 0.0  # finish time of the item just completed
    while stack:
        frame = stack[-1]
        item, start, index, now = frame
        assert isinstance(start, float) and isinstance(index, int) and isinstance(now, float)
        if isinstance(item, str):
            if item not in durations:
                raise ValueError(f"no duration for node {item!r}")
            finished = start + float(durations[item])
            stack.pop()
            continue
        if not isinstance(item, Seq | Par):
            raise ValueError(f"not an SP expression: {item!r}")
        children = _children(item)
        if index == 0:
            now = start
        elif isinstance(item, Seq) or finished > now:
            now = finished
        if index == len(children):
            finished = now
            stack.pop()
            continue
        frame[2] = index + 1
        frame[3] = now
        stack.append([children[index], now if isinstance(item, Seq) else start, 0, 0.0])
    return finished


def _linear_extensions(sp: SP) -> tuple[list[str], list[str]]:
    """The two linear orders whose intersection is the SP order.

    Series-parallel orders have dimension at most two: list the leaves once with
    ``Par`` branches left to right and once right to left (``Seq`` always in order);
    ``u`` precedes ``v`` in the expression exactly when it does in both lists.
    """
    out: tuple[list[str], list[str]] = ([], [])
    for flip, leaves in enumerate(out):
        stack: list[SP] = [sp]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                leaves.append(item)
            elif isinstance(item, Seq):
                stack.extend(reversed(_children(item)))
            elif isinstance(item, Par):
                branches = _children(item)
                stack.extend(branches if flip else reversed(branches))
            else:
                raise ValueError(f"not an SP expression: {item!r}")
    return out


def check_respects(sp: SP, nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> None:
    """Check that an SP expression is a valid lowering of a DAG.

    Args:
        sp: The expression.
        nodes: The DAG's node names.
        edges: The DAG's ``(u, v)`` dependency pairs.

    Raises:
        ValueError: If a node is missing, duplicated or unknown, the expression is
            malformed, or some edge ``u -> v`` does not have ``u`` finish before ``v``.
    """
    first, second = _linear_extensions(sp)
    wanted = set(nodes)
    pos1: dict[str, int] = {}
    for i, name in enumerate(first):
        if name in pos1:
            raise ValueError(f"node {name!r} appears more than once")
        if name not in wanted:
            raise ValueError(f"unknown node {name!r}")
        pos1[name] = i
    missing = [name for name in nodes if name not in pos1]
    if missing:
        raise ValueError(f"missing node(s): {', '.join(map(repr, missing))}")
    pos2 = {name: i for i, name in enumerate(second)}
    for u, v in edges:
        if u not in pos1 or v not in pos1:
            raise ValueError(f"edge {u!r} -> {v!r} names an unknown node")
        if not (pos1[u] < pos1[v] and pos2[u] < pos2[v]):
            raise ValueError(f"edge {u!r} -> {v!r} is not respected")
