"""How much concurrency the Step Functions lowering costs (Amazon States Language fidelity).

ASL has no general DAG, only sequences and ``Parallel`` states whose branches join at the
end, so pipecast lowers every DAG to a series-parallel expression
(``pipecast_stepfunctions.lowering.lower``). Extra ordering delays steps. This benchmark
lowers a fixed, seeded suite of 250 random DAGs (10-200 steps: random layered DAGs, random
sparse DAGs, series-parallel DAGs; random durations) and prints, for pipecast and for the
level-by-level baseline (a barrier after every topological level), the ratio

    makespan of the lowered expression / makespan of the DAG itself (its longest path)

with unlimited concurrency: 1.0 means no step waits longer than the DAG requires.

Goals: mean <= 1.02, p95 <= 1.10, exactly 1.0 on every series-parallel DAG, never worse than
level-by-level on any DAG, under 0.1 s for a 200-step DAG and under 1 s for 10,000 steps.
The script exits 1 if a goal is missed. Times are CPU seconds of this process (best of 3
where noted), since a loaded machine inflates wall-clock time; everything else printed is
deterministic.

The search knobs in ``lowering.py`` were tuned on these generators with another seed
(20261); ``SEED`` below is held out. A reference section solves small DAGs exactly
(exhaustive search over barriers) to show how much of the gap to the ideal no lowering can
avoid.

Run: ``.venv/bin/python benchmarks/asl_fidelity.py``
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

try:
    from pipecast_stepfunctions import lowering, waits
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backends/stepfunctions/src"))
    from pipecast_stepfunctions import lowering, waits

SEED = 20_261_120
SUITE_SIZE = 250
Dag = tuple[list[str], list[tuple[str, str]]]

GOAL_MEAN = 1.02
GOAL_P95 = 1.10
GOAL_200_STEPS_S = 0.1
GOAL_10K_STEPS_S = 1.0


# ------------------------------------------------------------------------- generators


def layered_dag(rng: random.Random, n: int) -> Dag:
    """Random layers; each node gets 1-3 parents, 80% from the layer just above."""
    count = rng.randint(3, max(3, n // 3))
    sizes = [1] * count
    for _ in range(n - count):
        sizes[rng.randrange(count)] += 1
    layers: list[list[str]] = []
    k = 0
    for size in sizes:
        layers.append([f"n{k + i}" for i in range(size)])
        k += size
    edges: set[tuple[str, str]] = set()
    for li in range(1, count):
        for v in layers[li]:
            for _ in range(rng.randint(1, 3)):
                source = li - 1 if rng.random() < 0.8 else rng.randrange(li)
                edges.add((rng.choice(layers[source]), v))
    return [v for layer in layers for v in layer], sorted(edges)


def sparse_dag(rng: random.Random, n: int) -> Dag:
    """A random topological order; each forward pair is an edge with probability 2c/n.

    That gives c edges per node on average, c uniform in [1, 3].
    """
    names = [f"n{i}" for i in range(n)]
    order = names[:]
    rng.shuffle(order)
    p = min(1.0, 2 * rng.uniform(1.0, 3.0) / n)
    edges = [(order[i], order[j]) for i in range(n) for j in range(i + 1, n) if rng.random() < p]
    return names, edges


def sp_dag(rng: random.Random, n: int) -> Dag:
    """A random nesting of series and parallel compositions (series: all sinks -> all sources)."""
    counter = 0  # recursion depth is at most n, far below the limit for n <= 200

    def build(k: int) -> tuple[list[str], list[tuple[str, str]], list[str], list[str]]:
        nonlocal counter
        if k == 1:
            counter += 1
            v = f"n{counter}"
            return [v], [], [v], [v]
        a = rng.randint(1, k - 1)
        left, right = build(a), build(k - a)
        nodes = left[0] + right[0]
        if rng.random() < 0.5:
            links = [(u, v) for u in left[3] for v in right[2]]
            return nodes, left[1] + right[1] + links, left[2], right[3]
        return nodes, left[1] + right[1], left[2] + right[2], left[3] + right[3]

    nodes, edges, _, _ = build(n)
    return nodes, edges


def durations(rng: random.Random, names: list[str], kind: str) -> dict[str, float]:
    if kind == "uniform":
        return {v: round(rng.uniform(1, 10), 3) for v in names}
    if kind == "lognormal":  # heavy-tailed, like real step durations
        return {v: round(rng.lognormvariate(0, 1), 3) for v in names}
    return {v: float(rng.randint(1, 5)) for v in names}


SHAPES: dict[str, Callable[[random.Random, int], Dag]] = {
    "layered": layered_dag,
    "sparse": sparse_dag,
    "series-parallel": sp_dag,
}


def suite(
    seed: int = SEED, count: int = SUITE_SIZE
) -> list[tuple[str, list[str], list[tuple[str, str]], dict[str, float]]]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        n = rng.randint(10, 200)
        shape = ("layered", "sparse", "layered", "sparse", "series-parallel")[i % 5]
        nodes, edges = SHAPES[shape](rng, n)
        out.append((shape, nodes, edges, durations(rng, nodes, rng.choice(["uniform", "lognormal", "int"]))))
    return out


# ------------------------------------------------------------------ exact reference


def best_lowering(nodes: list[str], edges: list[tuple[str, str]], dur: dict[str, float]) -> float:
    """Makespan of the best possible SP lowering, by exhaustive search (small DAGs only).

    Every lowering of a connected set starts with a barrier after some down-set S, so
    best(X) = min over S of best(S) + best(X - S); disconnected sets run in parallel.
    Branch and bound on longest paths keeps ~16 nodes to a fraction of a second.
    """
    search = _Search(nodes, edges, dur)
    return search.best((1 << len(nodes)) - 1)


class _Search:
    """:func:`best_lowering` over bit masks of node sets."""

    def __init__(self, nodes: list[str], edges: list[tuple[str, str]], dur: dict[str, float]) -> None:
        n = self.n = len(nodes)
        index = {v: i for i, v in enumerate(nodes)}
        self.preds = [0] * n
        self.near = [0] * n
        for src, dst in edges:
            a, b = index[src], index[dst]
            self.preds[b] |= 1 << a
            self.near[a] |= 1 << b
            self.near[b] |= 1 << a
        self.order = [index[v] for v in _topo(nodes, edges)]
        self.ancestors = [0] * n
        for v in self.order:
            mask = self.preds[v]
            for u in range(n):
                if self.preds[v] >> u & 1:
                    mask |= self.ancestors[u]
            self.ancestors[v] = mask
        self.weight = [dur[v] for v in nodes]
        self._longest: dict[int, float] = {}
        self._best: dict[int, float] = {}

    def longest(self, mask: int) -> float:
        if mask not in self._longest:
            finish = [0.0] * self.n
            for v in self.order:
                if mask >> v & 1:
                    start = max(
                        (finish[u] for u in range(self.n) if self.preds[v] >> u & 1 and mask >> u & 1),
                        default=0.0,
                    )
                    finish[v] = start + self.weight[v]
            self._longest[mask] = max(finish)
        return self._longest[mask]

    def component(self, mask: int) -> int:
        """The nodes of ``mask`` connected to its lowest one."""
        low = mask & -mask
        comp, frontier = low, low
        while frontier:
            grown = 0
            for v in range(self.n):
                if frontier >> v & 1:
                    grown |= self.near[v]
            frontier = grown & mask & ~comp
            comp |= frontier
        return comp

    def best(self, mask: int) -> float:
        if mask not in self._best:
            self._best[mask] = self._solve(mask)
        return self._best[mask]

    def _solve(self, mask: int) -> float:
        if mask & (mask - 1) == 0:
            return self.weight[mask.bit_length() - 1]
        comp = self.component(mask)
        if comp != mask:
            return max(self.best(comp), self.best(mask & ~comp))
        members = [v for v in self.order if mask >> v & 1]
        return self._extend(mask, members, 0, 0, float("inf"))

    def _extend(self, mask: int, members: list[int], i: int, first: int, result: float) -> float:
        """The best makespan of ``mask`` over the down-sets that extend ``first`` with members
        from ``i`` on, bounded by ``result`` (the best found so far)."""
        if result <= self.longest(mask):
            return result
        if i == len(members):
            if first and first != mask:
                rest = mask & ~first
                if self.longest(first) + self.longest(rest) < result:
                    head = self.best(first)
                    if head + self.longest(rest) < result:
                        result = min(result, head + self.best(rest))
            return result
        v = members[i]
        if self.ancestors[v] & mask & ~first == 0:
            result = self._extend(mask, members, i + 1, first | 1 << v, result)
        return self._extend(mask, members, i + 1, first, result)


def _topo(nodes: list[str], edges: list[tuple[str, str]]) -> list[str]:
    indegree = dict.fromkeys(nodes, 0)
    children: dict[str, list[str]] = {v: [] for v in nodes}
    for u, v in edges:
        indegree[v] += 1
        children[u].append(v)
    ready = [v for v in nodes if indegree[v] == 0]
    out = []
    while ready:
        v = ready.pop()
        out.append(v)
        for w in children[v]:
            indegree[w] -= 1
            if indegree[w] == 0:
                ready.append(w)
    return out


# ------------------------------------------------------------------------------ run


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def cpu(fn: Callable[[], object], repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def scale_cases(rng: random.Random) -> dict[str, Dag]:
    n = 10_000
    names = [f"n{i}" for i in range(n)]
    layered: list[tuple[str, str]] = []
    for i in range(100, n):  # 100 layers of 100, two parents each from the layer above
        base = (i // 100 - 1) * 100
        layered += [(f"n{p}", f"n{i}") for p in rng.sample(range(base, base + 100), 2)]
    side = [f"s{i}" for i in range(n // 2)]
    return {
        "chain": (names, [(f"n{i}", f"n{i + 1}") for i in range(n - 1)]),
        "fan-out": (names, [("n0", f"n{i}") for i in range(1, n)]),
        "random layered": (names, layered),
        "chain with side steps": (
            names[: n // 2] + side,
            [(f"n{i}", f"n{i + 1}") for i in range(n // 2 - 1)] + [(f"n{i}", f"s{i}") for i in range(n // 2)],
        ),
    }


def summary(ratios: list[float]) -> str:
    exact = sum(r == 1.0 for r in ratios)
    return (
        f"{statistics.mean(ratios):>8.4f}{p95(ratios):>8.4f}{max(ratios):>8.4f}{f'{exact}/{len(ratios)}':>13}"
    )


def main() -> int:
    cases = suite()
    exact: list[float] = []  # default compile (dag_mode: waits), structure only
    polled: list[float] = []  # ... with the S3 polling delay, durations read as minutes
    barriers: list[float] = []  # dag_mode: barriers, as compiled (durations unknown)
    informed: list[float] = []  # barrier search given the true durations (reference)
    level: list[float] = []
    level_polled: list[float] = []
    sp_ratios: list[float] = []
    waits_per_step: list[float] = []
    worse = {"exact": 0, "polled": 0, "barriers": 0, "informed": 0}
    polled_excess = 0.0
    times: list[float] = []
    big_times: list[float] = []
    for _shape, nodes, edges, dur in cases:
        ideal = lowering.dag_makespan(nodes, edges, dur)
        made: list[waits.WaitPlan] = []
        times.append(cpu(lambda: made.append(waits.lower_with_waits(nodes, edges))))  # noqa: B023
        plan = made[0]
        if len(nodes) >= 180:
            big_times.append(cpu(lambda: waits.lower_with_waits(nodes, edges), repeats=3))  # noqa: B023
        base = lowering.makespan(lowering.level_lowering(nodes, edges), dur)
        mine = waits.plan_makespan(plan, dur)
        seconds = {v: d * 60 for v, d in dur.items()}
        ideal_s = lowering.dag_makespan(nodes, edges, seconds)
        mine_s = waits.plan_makespan(plan, seconds, waits.poll_delay)
        base_s = lowering.makespan(lowering.level_lowering(nodes, edges), seconds)
        oblivious = lowering.makespan(lowering.lower(nodes, edges), dur)
        aware = lowering.makespan(lowering.lower(nodes, edges, dur), dur)
        exact.append(mine / ideal)
        polled.append(mine_s / ideal_s)
        barriers.append(oblivious / ideal)
        informed.append(aware / ideal)
        level.append(base / ideal)
        level_polled.append(base_s / ideal_s)
        for key, value in (("exact", mine), ("barriers", oblivious), ("informed", aware)):
            worse[key] += value > base
        if mine_s > base_s:
            worse["polled"] += 1
            polled_excess = max(polled_excess, mine_s - base_s)
        if lowering.is_series_parallel(nodes, edges):
            sp_ratios.append(mine_s / ideal_s)
        else:
            waits_per_step.append(sum(map(len, plan.waits.values())) / len(nodes))

    print("ASL fidelity: makespan of the compiled state machine / ideal DAG makespan (longest path)")
    counts = ", ".join(f"{sum(c[0] == k for c in cases)} {k}" for k in SHAPES)
    print(f"suite: {len(cases)} seeded random DAGs of 10-200 steps ({counts}); seed {SEED}")
    print("durations: uniform 1-10, lognormal(0, 1) or integer 1-5, one kind per DAG\n")
    print(f"{'lowering':<52}{'mean':>8}{'p95':>8}{'max':>8}{'exactly 1.0':>13}")
    rows = (
        ("pipecast (dag_mode: waits, the default)", exact),
        ("  + S3 polling delay, durations in minutes", polled),
        ("pipecast dag_mode: barriers (durations unknown)", barriers),
        ("  barrier search told the true durations (ref.)", informed),
        ("level-by-level (barrier after each level)", level),
    )
    for name, ratios in rows:
        print(f"{name:<52}{summary(ratios)}")
    print(
        f"\nwaits: {statistics.mean(waits_per_step):.2f} per step on the non-series-parallel DAGs, "
        f"none on series-parallel ones; polls 1 s, doubling, at most 30 s apart"
    )
    sp_exact = all(r == 1.0 for r in sp_ratios)
    print(
        f"series-parallel DAGs (is_series_parallel): {len(sp_ratios)}, "
        f"all exactly 1.0 (polling included): {'yes' if sp_exact else 'NO'}"
    )
    print(
        f"DAGs slower than level-by-level: waits {worse['exact']}, with polling {worse['polled']} "
        f"(at most {polled_excess:.0f} s), barriers {worse['barriers']}, barriers told the durations "
        f"{worse['informed']}"
    )
    print(
        f"lowering time (CPU): mean {statistics.mean(times) * 1e3:.1f} ms, max {max(times) * 1e3:.1f} ms; "
        f"DAGs of 180-200 steps (best of 3): mean {statistics.mean(big_times) * 1e3:.1f} ms, "
        f"max {max(big_times) * 1e3:.1f} ms"
    )

    rng = random.Random(SEED)
    scale: dict[str, float] = {}
    for name, (nodes, edges) in scale_cases(rng).items():
        scale[name] = cpu(lambda: waits.lower_with_waits(nodes, edges), repeats=3)  # noqa: B023
    print("10,000 steps (CPU, best of 3): " + ", ".join(f"{k} {v:.2f} s" for k, v in scale.items()))

    small_optimum: list[float] = []
    small_ours: list[float] = []
    for i in range(24):
        n = rng.randint(12, 16)
        nodes, edges = (layered_dag, sparse_dag)[i % 2](rng, n)
        dur = durations(rng, nodes, "uniform")
        ideal = lowering.dag_makespan(nodes, edges, dur)
        small_optimum.append(best_lowering(nodes, edges, dur) / ideal)
        small_ours.append(lowering.makespan(lowering.lower(nodes, edges, dur), dur) / ideal)
    optimal = sum(abs(a - b) < 1e-9 for a, b in zip(small_ours, small_optimum, strict=True))
    print(
        f"\nwhy waits: on 24 random DAGs of 12-16 steps solved exactly, the best possible barrier "
        f"lowering, even knowing every duration, averages {statistics.mean(small_optimum):.4f} "
        f"(max {max(small_optimum):.4f}); the barrier search finds it on {optimal}/24"
    )

    goals = [
        (
            f"mean ratio <= {GOAL_MEAN:.2f} (polling included)",
            statistics.mean(polled) <= GOAL_MEAN,
            f"{statistics.mean(polled):.4f}",
        ),
        (f"p95 ratio <= {GOAL_P95:.2f} (polling included)", p95(polled) <= GOAL_P95, f"{p95(polled):.4f}"),
        ("every series-parallel DAG exactly 1.0", sp_exact, f"{len(sp_ratios)} DAGs"),
        ("never worse than level-by-level (lowering)", worse["exact"] == 0, f"{worse['exact']} worse"),
        (
            f"200-step DAGs < {GOAL_200_STEPS_S} s",
            max(big_times) < GOAL_200_STEPS_S,
            f"max {max(big_times) * 1e3:.0f} ms",
        ),
        (
            f"10,000 steps < {GOAL_10K_STEPS_S} s",
            max(scale.values()) < GOAL_10K_STEPS_S,
            f"max {max(scale.values()):.2f} s",
        ),
    ]
    print("\ngoals")
    for label, ok, value in goals:
        print(f"  [{'ok' if ok else 'MISSED'}] {label}: {value}")
    missed = [label for label, ok, _ in goals if not ok]
    if missed:
        print(f"\n{len(missed)} goal(s) missed: {'; '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
