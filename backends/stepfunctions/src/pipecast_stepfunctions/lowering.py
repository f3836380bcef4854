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
from collections.abc import Generator, Iterable, Mapping, Sequence
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


# How many prime-piece cut candidates to lower fully, by piece size. Trying more than
# one costs time (each is a recursive lowering) but lets a cut whose lower bound is a
# little worse win when its halves lower better; small pieces can afford it.
_TRY_LIMITS: tuple[tuple[int, int], ...] = ((24, 6), (64, 4), (256, 2))
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
        pos = {v: i for i, v in enumerate(nodes)}
        get = pos.get
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


# A lowering step asks for sub-results by yielding a node list and receiving
# (cost, expression); the driver runs these generators on an explicit stack.
_Result = tuple[float, SP]
_Step = Generator[list[int], _Result, _Result]


def _trampoline(first: _Step, make: object) -> _Result:
    """Run a generator-based recursion without using the Python call stack."""
    assert callable(make)
    stack: list[_Step] = [first]
    value: _Result | None = None
    while True:
        gen = stack[-1]
        try:
            request = gen.send(value) if value is not None else next(gen)
        except StopIteration as stop:
            stack.pop()
            if not stack:
                result: _Result = stop.value
                return result
            value = stop.value
            continue
        stack.append(make(request))
        value = None


class _Lowerer:
    def __init__(self, g: _Graph, *, exact_only: bool = False) -> None:
        self.g = g
        self.memo: dict[tuple[int, ...], _Result] = {}
        # exact_only: stop at the first prime piece (used by is_series_parallel).
        self.exact_only = exact_only
        self.found_prime = False

    def run(self) -> _Result:
        return _trampoline(self.solve(list(self.g.topo)), self.solve)

    def solve(self, nodes: list[int]) -> _Step:
        g = self.g
        if len(nodes) == 1:
            v = nodes[0]
            return (g.dur[v], g.names[v])
        key = tuple(nodes) if len(nodes) <= _MEMO_MAX else None
        if key is not None and key in self.memo:
            return self.memo[key]
        piece = _Piece(g, nodes)
        result: _Result
        groups = _components(piece)
        if len(groups) > 1:
            # Branch order: by the earliest (in input order) node they contain.
            subsets = sorted(([nodes[i] for i in grp] for grp in groups), key=min)
            costs: list[float] = []
            exprs: list[SP] = []
            for sub in subsets:
                c, e = yield sub
                costs.append(c)
                exprs.append(e)
            result = (max(costs), _flat_par(exprs))
        else:
            cuts = _series_cuts(piece)
            if cuts:
                total = 0.0
                exprs = []
                bounds = [0, *cuts, len(nodes)]
                for a, b in zip(bounds, bounds[1:], strict=False):
                    c, e = yield nodes[a:b]
                    total += c
                    exprs.append(e)
                result = (total, _flat_seq(exprs))
            elif self.exact_only:
                self.found_prime = True
                result = (math.inf, g.names[nodes[0]])
            else:
                result = yield from self.solve_prime(piece)
        if key is not None:
            self.memo[key] = result
        return result

    def solve_prime(self, piece: _Piece) -> _Step:
        """Lower a connected piece that has no series cut (it contains an N)."""
        g = self.g
        nodes = piece.nodes
        n = len(nodes)
        dur = [g.dur[v] for v in nodes]
        preds, succs = piece.preds, piece.succs
        head = [0.0] * n  # longest path ending with i, i included (earliest finish)
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

        # Orders whose every prefix is a down-set (ties broken by topological position,
        # which keeps u before v when u -> v). For a prefix S the cost of putting S
        # first is at least max(head in S) + max(tail outside S): both are exact
        # inside a down-set and its complement, so one pass per order scores all cuts.
        orders = (
            sorted(range(n), key=lambda i: (head[i], i)),  # earliest finish
            sorted(range(n), key=lambda i: (-tail[i], i)),  # latest start
            sorted(range(n), key=lambda i: (head[i] - dur[i], i)),  # earliest start
            sorted(range(n), key=lambda i: (dur[i] - tail[i], i)),  # latest finish
        )
        scored: list[tuple[float, int, int]] = []
        for oid, order in enumerate(orders):
            suffix = [0.0] * (n + 1)
            for k in range(n - 1, -1, -1):
                t = tail[order[k]]
                suffix[k] = t if t > suffix[k + 1] else suffix[k + 1]
            pmax = 0.0
            for k in range(1, n):
                h = head[order[k - 1]]
                if h > pmax:
                    pmax = h
                scored.append((pmax + suffix[k], oid, k))
        scored.sort()

        tries = 1
        for size, count in _TRY_LIMITS:
            if n <= size:
                tries = count
                break
        seen: set[frozenset[int]] = set()
        best_cost = math.inf
        best_expr: SP | None = None
        for _bound, oid, k in scored:
            if len(seen) >= tries:
                break
            order = orders[oid]
            first = frozenset(order[:k])
            if first in seen:
                continue
            seen.add(first)
            left = [nodes[i] for i in range(n) if i in first]
            right = [nodes[i] for i in range(n) if i not in first]
            lc, le = yield left
            rc, re = yield right
            if lc + rc < best_cost:
                best_cost = lc + rc
                best_expr = _flat_seq([le, re])

        level_cost, level_expr = _level_piece(g, piece)
        if best_expr is None or level_cost < best_cost:
            return (level_cost, level_expr)
        return (best_cost, best_expr)


def _level_piece(g: _Graph, piece: _Piece) -> _Result:
    """Level-by-level lowering of a piece: a barrier after each unit-depth level."""
    n = len(piece.nodes)
    depth = [0] * n
    for i in range(n):
        for p in piece.preds[i]:
            if depth[p] + 1 > depth[i]:
                depth[i] = depth[p] + 1
    levels: list[list[int]] = [[] for _ in range(max(depth) + 1 if n else 0)]
    for i in range(n):
        levels[depth[i]].append(piece.nodes[i])
    cost = 0.0
    parts: list[SP] = []
    for level in levels:
        level.sort()  # input order inside a Parallel
        cost += max(g.dur[v] for v in level)
        parts.append(_flat_par([g.names[v] for v in level]))
    return (cost, _flat_seq(parts))


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
    cost, expr = _Lowerer(g).run()
    # The decomposition already tries level lowering on every prime piece; comparing
    # on the whole DAG as well makes "never worse than level lowering" hold by
    # construction rather than by argument.
    level_cost, level_expr = _level_piece(g, _Piece(g, list(g.topo)))
    return level_expr if level_cost < cost else expr


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
    return _level_piece(g, _Piece(g, list(g.topo)))[1]


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
