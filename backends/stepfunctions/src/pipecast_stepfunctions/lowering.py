"""Lower an arbitrary step DAG into Amazon States Language's nested ``Parallel`` shape.

ASL has no general DAG: a state machine is a sequence of states, and a ``Parallel``
state runs independent branches (each itself a sequence) that all join at its end.
https://docs.aws.amazon.com/step-functions/latest/dg/state-parallel.html

So a DAG has to become a *series-parallel (SP) expression*: ``Seq`` and ``Par`` over the
DAG's nodes, every node exactly once, every edge ``u -> v`` kept (``u`` ends before
``v`` starts). The expression may add ordering; added ordering is what costs
concurrency, and this module tries to add as little as possible.

How ``lower`` works:

1. Exact decomposition. A set of nodes that is not weakly connected is a ``Par`` of
   its components. A connected set is a ``Seq`` at every *series cut*: a down-set
   whose every node precedes every node outside it. Cuts are found in one linear
   scan (see ``_series_cuts``). When every piece decomposes down to single nodes,
   the DAG's order is series-parallel (N-free) and the expression adds no ordering
   at all, whatever the durations.
2. Prime pieces (connected, no series cut: they contain an "N") must get a barrier
   somewhere, and the top of any SP-isation of a connected piece is a ``Seq``, so the
   choice is *which* down-set goes first. For a down-set ``S`` the cost is at least
   ``longest(S) + longest(rest)``, and for each bound the best ``S`` is a threshold
   on earliest finish times, so candidate cuts are the prefixes of a few orders
   (earliest/latest start/finish). The most promising are lowered recursively and
   the cheapest result, measured with the durations, wins; the level-by-level
   lowering of the piece is always a candidate too, so the result is never worse
   than the classic barrier-per-level lowering.

Everything is deterministic (ties go to the input order of ``nodes``) and iterative
(a generator trampoline instead of Python recursion), so 10,000-step chains and deep
nestings are fine.
"""

from __future__ import annotations

import heapq
import math
from itertools import accumulate, repeat
from operator import add
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass

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


# Search knobs (see _Lowerer). Strength by piece size: pilot search up to _MODE_BY_SIZE's
# largest size, greedy beyond it, so a 10,000-step DAG lowers in well under a second.
_FULL = -1
_MODE_BY_SIZE: tuple[tuple[int, int], ...] = ((2000, 1),)
_WORK_PER_NODE = 1000
_WORK_BASE = 0
_HARD_FACTOR = 2
_TOP_BOUNDS = 4
# Cut orders as (alpha, frac): sort key alpha*ASAP start + (1-alpha)*ALAP start + frac*duration.
_GREEDY_ORDERS: tuple[tuple[float, float], ...] = ((1.0, 1.0), (0.0, 0.0))
_SEARCH_ORDERS: tuple[tuple[float, float], ...] = ((1.0, 1.0), (0.0, 0.0), (1.0, 0.0), (0.0, 1.0))
# Cut scores as (weight, kind): kind 0 is bound + weight * imbalance, kind 1 is the
# bound's excess over the longest path per node of the smaller side (to the power weight).
_GREEDY_SCORES: tuple[tuple[float, int], ...] = ((0.3, 0),)
_SEARCH_SCORES: tuple[tuple[float, int], ...] = ((0.0, 0), (0.1, 0), (0.3, 0), (1.0, 0), (1.0, 1))
# Pieces up to this size are memoised (a candidate's halves recur across candidates);
# bigger ones are only ever lowered once, so keeping their keys would waste memory.
_MEMO_MAX = 512


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
            u, v = edge
            iu = self.index.get(u)
            iv = self.index.get(v)
            if iu is None or iv is None:
                raise ValueError(f"edge {u!r} -> {v!r} names an unknown node")
            if iu == iv:
                raise ValueError(f"self-loop on {u!r}")
            succ_sets[iu].add(iv)
        # Sorted adjacency keeps every later traversal independent of set iteration order.
        self.succ: list[list[int]] = [sorted(s) for s in succ_sets]
        self.pred: list[list[int]] = [[] for _ in range(n)]
        for u in range(n):
            for v in self.succ[u]:
                self.pred[v].append(u)
        self.dur: list[float] = _durations(self.names, durations)
        self.topo: list[int] = self._toposort()
        self.rank: list[int] = [0] * n
        for r, v in enumerate(self.topo):
            self.rank[v] = r

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
    return _flat_seq([_flat_par([g.names[v] for v in sorted(level)]) for level in levels])


# A lowering step asks for sub-results by yielding (node list, mode) and receiving
# (cost, expression); the driver runs these generators on an explicit stack, so deep
# decompositions never touch Python's recursion limit.
_Result = tuple[float, SP]
_Request = tuple[list[int], int]
_Step = Generator[_Request, _Result, _Result]


def _trampoline(first: _Step, make: Callable[[list[int], int], _Step]) -> _Result:
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

    ``mode`` is the search strength for a piece: 0 is greedy (one cut, chosen by its
    lower bound with a balance bonus); ``m > 0`` is a pilot search that scores several
    candidate cuts by lowering their sides with strength ``m - 1`` and then lowers
    the winner with strength ``m``. ``_FULL`` asks for the strength the piece's size
    and the remaining work budget allow.
    """

    def __init__(self, g: _Graph, *, exact_only: bool = False) -> None:
        self.g = g
        self.memo: dict[tuple[int, tuple[int, ...]], _Result] = {}
        # exact_only: stop at the first prime piece (used by is_series_parallel).
        self.exact_only = exact_only
        self.found_prime = False
        # Search effort is counted in nodes of prime pieces processed; past the budget
        # everything left is lowered greedily. Counting work, not time, keeps the
        # result deterministic.
        self.work = 0
        self.budget = _WORK_PER_NODE * len(g.names) + _WORK_BASE

    def run(self) -> _Result:
        return _trampoline(self.solve(list(self.g.topo), _FULL), self.solve)

    def leaf(self, v: int) -> _Result:
        return (self.g.dur[v], self.g.names[v])

    def solve(self, nodes: list[int], mode: int) -> _Step:
        g = self.g
        n = len(nodes)
        if n == 1:
            return self.leaf(nodes[0])
        full = mode == _FULL
        if full:
            mode = 0
            for size, strength in _MODE_BY_SIZE:
                if n <= size:
                    mode = strength
                    break
        if mode > 1 and self.work > self.budget:
            mode = 1
        if mode and self.work > _HARD_FACTOR * self.budget:
            mode = 0
        key = (mode, tuple(nodes)) if n <= _MEMO_MAX else None
        if key is not None:
            hit = self.memo.get(key)
            if hit is not None:
                return hit
        sub_mode = _FULL if full else mode
        piece = _Piece(g, nodes)
        result: _Result
        groups = _components(piece)
        if len(groups) > 1:
            # Branch order: by the earliest (in input order) node they contain.
            subsets = sorted(([nodes[i] for i in grp] for grp in groups), key=min)
            results: list[_Result] = []
            for sub in subsets:
                results.append(self.leaf(sub[0]) if len(sub) == 1 else (yield sub, 0))
            if mode:
                # Only the longest branches decide a Parallel's makespan: search those,
                # longest first, and stop once the rest already fit under the maximum.
                longest = 0.0
                for i in sorted(range(len(results)), key=lambda j: -results[j][0]):
                    if results[i][0] <= longest:
                        break
                    if len(subsets[i]) > 2:
                        better = yield subsets[i], sub_mode
                        if better[0] < results[i][0]:
                            results[i] = better
                    longest = max(longest, results[i][0])
            result = (max(r[0] for r in results), _flat_par([r[1] for r in results]))
        else:
            cuts = _series_cuts(piece)
            if cuts:
                total = 0.0
                exprs: list[SP] = []
                bounds = [0, *cuts, n]
                for a, b in zip(bounds, bounds[1:], strict=False):
                    c, e = self.leaf(nodes[a]) if b - a == 1 else (yield nodes[a:b], sub_mode)
                    total += c
                    exprs.append(e)
                result = (total, _flat_seq(exprs))
            elif self.exact_only:
                self.found_prime = True
                result = (math.inf, g.names[nodes[0]])
            else:
                result = yield from self.solve_prime(piece, mode, sub_mode)
        if key is not None:
            self.memo[key] = result
        return result

    def solve_prime(self, piece: _Piece, mode: int, sub_mode: int) -> _Step:
        """Lower a connected piece that has no series cut (it contains an N)."""
        g = self.g
        nodes = piece.nodes
        self.work += len(nodes)
        dur = [g.dur[v] for v in nodes]
        lp, cands = self.candidates(piece, dur, mode)
        best_expr: SP | None = None
        if mode == 0:
            cut = cands[0]
            lc, le = yield cut.left, 0
            rc, re = yield cut.right, 0
            return (lc + rc, _flat_seq([le, re]))
        # The level-by-level lowering of the piece is always a candidate: it seeds the
        # bound that prunes cuts, and keeps the piece no worse than the baseline.
        best_cost, depth = _level_cost(piece, dur)
        # Pilot search: score each candidate by lowering its sides one strength lower,
        # keep the best, then lower that one at full strength. A candidate whose lower
        # bound cannot beat the best score so far is skipped.
        pick: _Cut | None = None
        pick_cost = math.inf
        for cut in cands:
            if cut.bound >= best_cost or best_cost <= lp:
                break
            lc, le = yield cut.left, mode - 1
            if lc + cut.right_bound >= best_cost:
                continue  # the right side cannot make up for it
            rc, re = yield cut.right, mode - 1
            if lc + rc < best_cost:
                best_cost, best_expr = lc + rc, _flat_seq([le, re])
            if lc + rc < pick_cost:
                pick, pick_cost = cut, lc + rc
        if pick is not None and pick.bound < pick_cost:
            lc, le = yield pick.left, sub_mode
            rc, re = yield pick.right, sub_mode
            if lc + rc < best_cost:
                best_cost, best_expr = lc + rc, _flat_seq([le, re])
        if best_expr is None:
            best_expr = _level_expr(g, nodes, depth)
        return (best_cost, best_expr)

    def candidates(self, piece: _Piece, dur: list[float], mode: int) -> tuple[float, list[_Cut]]:
        """Candidate barrier cuts of a prime piece, best lower bound first.

        Returns:
            The piece's longest path and the candidate cuts.
        """
        nodes = piece.nodes
        n = len(nodes)
        preds, succs = piece.preds, piece.succs
        head = [0.0] * n  # longest path ending with i, i included: earliest finish
        for i in range(n):
            best = 0.0
            for p in preds[i]:
                if head[p] > best:
                    best = head[p]
            head[i] = best + dur[i]
        tail = [0.0] * n  # longest path starting with i, i included
        for i in range(n - 1, -1, -1):
            best = 0.0
            for s in succs[i]:
                if tail[s] > best:
                    best = tail[s]
            tail[i] = best + dur[i]
        lp = max(head)
        early = [h - d for h, d in zip(head, dur, strict=True)]  # earliest start
        late = [lp - t for t in tail]  # latest start

        # Every prefix of an order that is monotone along edges is a down-set, i.e. a
        # valid "runs first" side. For prefix S, max(head in S) + max(tail outside S)
        # is a lower bound on any lowering that puts S first (both are exact inside a
        # down-set and its complement), so one pass per order scores all its cuts.
        # The bound alone favours peeling one short node off an end, which makes no
        # progress; a bonus for balanced cuts (in node count) steers away from that.
        spans = range(1, n)
        imbalance = [lp * abs(2 * k - n) / n for k in spans]
        smaller = [min(k, n - k) for k in spans]
        scorers: list[list[float] | tuple[float, list[int]]] = []
        for weight, kind in _GREEDY_SCORES if mode == 0 else _SEARCH_SCORES:
            if kind == 0:
                scorers.append([weight * x for x in imbalance])
            else:
                scorers.append((weight, smaller))
        best: list[tuple[float, float, int, int]] = [(math.inf, 0.0, 0, 0)] * len(scorers)
        orders: list[list[int]] = []
        top = 0 if mode == 0 else _TOP_BOUNDS
        pool: list[tuple[float, int, int]] = []
        for oid, (alpha, frac) in enumerate(_GREEDY_ORDERS if mode == 0 else _SEARCH_ORDERS):
            # A start time between ASAP (alpha=1) and ALAP (alpha=0), plus a fraction
            # of the duration: monotone along edges, and the stable sort keeps
            # topological order among ties.
            keys = [
                alpha * e + (1.0 - alpha) * la + frac * d
                for e, la, d in zip(early, late, dur, strict=True)
            ]
            order = sorted(range(n), key=keys.__getitem__)
            orders.append(order)
            pre = list(accumulate((head[i] for i in order), max))
            suf = list(accumulate((tail[i] for i in reversed(order)), max))
            bounds = list(map(add, pre[:-1], reversed(suf[:-1])))  # cut after k = 1..n-1
            if top:
                pool.extend(heapq.nsmallest(top, zip(bounds, repeat(oid), spans)))
            for si, scorer in enumerate(scorers):
                if isinstance(scorer, list):
                    scores = list(map(add, bounds, scorer))
                else:
                    power, small = scorer
                    scores = [(b - lp) / m**power for b, m in zip(bounds, small, strict=True)]
                j = min(range(n - 1), key=scores.__getitem__)
                if scores[j] < best[si][0]:
                    best[si] = (scores[j], bounds[j], oid, j + 1)
        chosen = [(bound, oid, k) for _score, bound, oid, k in best]
        quota = len(chosen) + top
        if top:
            # Pool entries repeat across orders; take enough to find `top` distinct ones.
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
            cands.append(
                _Cut(
                    bound,
                    bound - max(head[i] for i in first),
                    [nodes[i] for i in first],
                    [nodes[i] for i in range(n) if not inside[i]],
                )
            )
            if len(seen) >= quota:
                break
        cands.sort(key=lambda c: c.bound)  # stable: ties keep the scorer order
        return lp, cands


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
    g = _Graph(nodes, edges, durations)
    _cost, expr = _Lowerer(g).run()
    # Prime pieces already weigh level lowering; comparing on the whole DAG as well
    # makes "never worse than level lowering" hold by construction.
    piece = _Piece(g, list(g.topo))
    _level, depth = _level_cost(piece, g.dur)
    level = _level_expr(g, piece.nodes, depth)
    times = dict(zip(g.names, g.dur, strict=True))
    return level if makespan(level, times) < makespan(expr, times) else expr


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
    lowerer = _Lowerer(_Graph(nodes, edges, None), exact_only=True)
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


def _walk(sp: SP) -> Iterable[tuple[SP, int]]:
    """Post-order over an expression without recursion: (item, number of children)."""
    stack: list[tuple[SP, int]] = [(sp, -1)]
    while stack:
        item, count = stack.pop()
        if isinstance(item, str):
            yield item, 0
            continue
        if count >= 0:
            yield item, count
            continue
        if isinstance(item, Seq):
            children = item.items
        elif isinstance(item, Par):
            children = item.branches
        else:
            raise ValueError(f"not an SP expression: {item!r}")
        if not children:
            raise ValueError(f"empty {type(item).__name__}")
        stack.append((item, len(children)))
        stack.extend((c, -1) for c in reversed(children))


def makespan(sp: SP, durations: Mapping[str, float]) -> float:
    """Makespan of an SP expression with unlimited concurrency.

    ``Seq`` adds its items' makespans and ``Par`` takes the longest branch.

    Args:
        sp: The expression.
        durations: Duration per node name; every node in ``sp`` must have one.

    Returns:
        The makespan.

    Raises:
        ValueError: On a malformed expression or a missing duration.
    """
    values: list[float] = []
    for item, count in _walk(sp):
        if isinstance(item, str):
            if item not in durations:
                raise ValueError(f"no duration for node {item!r}")
            values.append(float(durations[item]))
            continue
        children = values[-count:]
        del values[-count:]
        values.append(sum(children) if isinstance(item, Seq) else max(children))
    return values[0]


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
                if not item.items:
                    raise ValueError("empty Seq")
                stack.extend(reversed(item.items))
            elif isinstance(item, Par):
                if not item.branches:
                    raise ValueError("empty Par")
                stack.extend(item.branches if flip else reversed(item.branches))
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
