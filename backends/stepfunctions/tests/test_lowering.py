"""DAG -> series-parallel lowering for ASL ``Parallel`` states (pipecast_stepfunctions.lowering)."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pipecast_stepfunctions.lowering import (
    SP,
    Par,
    Seq,
    check_respects,
    dag_makespan,
    is_series_parallel,
    level_lowering,
    lower,
    makespan,
)

pytestmark = pytest.mark.stepfunctions

Edges = list[tuple[str, str]]
T = TypeVar("T")


# ---------------------------------------------------------------------------- helpers


def canon(sp: SP) -> str:
    """A canonical text form, built without recursion (deep expressions are legal)."""
    out: list[str] = []
    stack: list[SP | str] = [sp]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, Seq):
            stack.append("]")
            stack.extend(reversed([*item.items[:1], *(x for i in item.items[1:] for x in (",", i))]))
            stack.append("S[")
        else:
            stack.append("]")
            stack.extend(reversed([*item.branches[:1], *(x for b in item.branches[1:] for x in ("|", b))]))
            stack.append("P[")
    return "".join(out)


def sp_dag(rng: random.Random, n: int, transitive: float = 0.0) -> tuple[list[str], Edges]:
    """A random series-parallel DAG (series: every sink of one side -> every source of the other).

    With ``transitive`` > 0, that share of the implied longer-range edges is added too:
    they change no ordering, so the DAG stays series-parallel after transitive reduction.
    """
    count = 0

    def build(k: int) -> tuple[list[str], Edges, list[str], list[str]]:
        nonlocal count
        if k == 1:
            count += 1
            return [f"v{count}"], [], [f"v{count}"], [f"v{count}"]
        a = rng.randint(1, k - 1)
        left, right = build(a), build(k - a)
        nodes = left[0] + right[0]
        if rng.random() < 0.5:
            links = [(u, v) for u in left[3] for v in right[2]]
            if transitive:
                links += [(u, v) for u in left[0] for v in right[0] if rng.random() < transitive]
            return nodes, left[1] + right[1] + links, left[2], right[3]
        return nodes, left[1] + right[1], left[2] + right[2], left[3] + right[3]

    nodes, edges, _, _ = build(n)
    order = nodes[:]
    rng.shuffle(order)  # input order must not matter for exactness
    return order, sorted(set(edges))


def random_dag(rng: random.Random, n: int, degree: float) -> tuple[list[str], Edges]:
    """Random topological order, each forward pair an edge with probability degree * 2 / n."""
    names = [f"n{i}" for i in range(n)]
    order = names[:]
    rng.shuffle(order)
    p = min(1.0, 2 * degree / max(n, 1))
    return names, [(order[i], order[j]) for i in range(n) for j in range(i + 1, n) if rng.random() < p]


def layered_dag(rng: random.Random, layers: int, width: int, parents: int) -> tuple[list[str], Edges]:
    names = [f"n{i}" for i in range(layers * width)]
    edges = []
    for i in range(width, layers * width):
        base = (i // width - 1) * width
        edges += [(f"n{p}", f"n{i}") for p in rng.sample(range(base, base + width), parents)]
    return names, edges


def random_durations(rng: random.Random, nodes: list[str], zeros: bool = False) -> dict[str, float]:
    out = {
        v: rng.choice([rng.uniform(0.1, 10.0), rng.lognormvariate(0, 1), float(rng.randint(1, 5))])
        for v in nodes
    }
    if zeros:
        for v in rng.sample(nodes, len(nodes) // 5):
            out[v] = 0.0
    return out


def cpu_seconds(fn: Callable[..., T], *args: object) -> tuple[T, float]:
    """Result and CPU seconds (wall-clock time would count other processes' load)."""
    start = time.process_time()
    result = fn(*args)
    return result, time.process_time() - start


# ------------------------------------------------------------------------ small shapes


def test_single_node() -> None:
    assert lower(["a"], []) == "a"
    assert makespan("a", {"a": 2.5}) == dag_makespan(["a"], [], {"a": 2.5}) == 2.5


def test_nodes_without_edges_run_in_parallel_in_input_order() -> None:
    assert lower(["c", "a", "b"], []) == Par(("c", "a", "b"))


def test_chain_is_one_sequence() -> None:
    assert lower(["a", "b", "c"], [("b", "c"), ("a", "b")]) == Seq(("a", "b", "c"))


def test_components_become_branches() -> None:
    sp = lower(["a", "x", "b", "y"], [("a", "b"), ("x", "y")])
    assert sp == Par((Seq(("a", "b")), Seq(("x", "y"))))


def test_diamond_and_transitive_edges() -> None:
    nodes = ["a", "b", "c", "d"]
    diamond = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
    expected = Seq(("a", Par(("b", "c")), "d"))
    assert lower(nodes, diamond) == expected
    # An edge implied by a longer path adds no ordering, so nothing changes.
    assert lower(nodes, [*diamond, ("a", "d")]) == expected
    assert is_series_parallel(nodes, [*diamond, ("a", "d")])


def test_duplicate_edges_are_fine() -> None:
    assert lower(["a", "b"], [("a", "b"), ("a", "b")]) == Seq(("a", "b"))


def test_level_lowering_baseline() -> None:
    nodes = ["a", "b", "c", "d"]
    edges = [("a", "c"), ("b", "c"), ("b", "d")]
    assert level_lowering(nodes, edges) == Seq((Par(("a", "b")), Par(("c", "d"))))
    assert level_lowering(["a"], []) == "a"


@pytest.mark.parametrize(
    ("nodes", "edges", "durations", "message"),
    [
        ([], [], None, "no nodes"),
        (["a", "a"], [], None, "duplicate"),
        (["a"], [("a", "b")], None, "unknown"),
        (["a"], [("a", "a")], None, "self-loop"),
        (["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "a")], None, "cycle"),
        (["a", "b"], [("a", "b")], {"a": 1.0}, "no duration"),
        (["a"], [], {"a": -1.0}, "finite and >= 0"),
        (["a"], [], {"a": math.nan}, "finite and >= 0"),
        (["a"], [("a",)], None, "pair"),
    ],
)
def test_invalid_input(
    nodes: list[str], edges: Edges, durations: dict[str, float] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        lower(nodes, edges, durations)


def test_makespan_runs_the_expression_as_a_schedule() -> None:
    d = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}
    assert makespan(Seq(("a", Par(("b", Seq(("c", "d")))))), d) == 8.0
    assert makespan(Par(("a", "b")), d) == 2.0
    with pytest.raises(ValueError, match="no duration"):
        makespan(Seq(("a", "zz")), d)
    with pytest.raises(ValueError, match="empty"):
        makespan(Par(()), d)


# ----------------------------------------------------------------- check_respects


def test_check_respects_accepts_a_valid_lowering() -> None:
    check_respects(Seq(("a", Par(("b", "c")), "d")), ["a", "b", "c", "d"], [("a", "b"), ("c", "d")])


@pytest.mark.parametrize(
    ("sp", "message"),
    [
        (Seq(("a", "b")), "missing"),
        (Seq(("a", "b", "c", "a")), "more than once"),
        (Seq(("a", "b", "c", "z")), "unknown node"),
        (Par(("a", Seq(("b", "c")))), "not respected"),  # a -> b is not ordered
        (Seq(("b", "a", "c")), "not respected"),
        (Seq(("a", Seq(()), "b", "c")), "empty Seq"),
        (Seq(("a", 3, "b", "c")), "not an SP expression"),  # type: ignore[arg-type]
    ],
)
def test_check_respects_rejects(sp: SP, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_respects(sp, ["a", "b", "c"], [("a", "b"), ("b", "c")])


# ----------------------------------------------------------- series-parallel DAGs


@pytest.mark.parametrize("seed", range(40))
def test_series_parallel_dags_lose_no_concurrency(seed: int) -> None:
    rng = random.Random(seed)
    nodes, edges = sp_dag(rng, rng.randint(1, 80), transitive=0.3 if seed % 2 else 0.0)
    assert is_series_parallel(nodes, edges)
    shapes = set()
    for _ in range(3):
        lowered_with = random_durations(rng, nodes, zeros=seed % 3 == 0)
        sp = lower(nodes, edges, lowered_with)
        check_respects(sp, nodes, edges)
        shapes.add(canon(sp))
        # Exactly the longest path -- the same float, not a close one -- under the
        # durations it was lowered with and under any other.
        for durations in (lowered_with, random_durations(rng, nodes)):
            assert makespan(sp, durations) == dag_makespan(nodes, edges, durations)
    assert len(shapes) == 1  # the SP decomposition does not depend on durations


def test_deeply_nested_series_parallel_dag() -> None:
    # a0 -> a1 -> ... with a side step s_i after every a_i nests Seq/Par 10,000 deep.
    n = 5_000
    nodes = [f"a{i}" for i in range(n)] + [f"s{i}" for i in range(n)]
    edges = [(f"a{i}", f"a{i + 1}") for i in range(n - 1)] + [(f"a{i}", f"s{i}") for i in range(n)]
    sp, seconds = cpu_seconds(lower, nodes, edges)
    check_respects(sp, nodes, edges)
    assert makespan(sp, dict.fromkeys(nodes, 1.0)) == n + 1
    assert is_series_parallel(nodes, edges)
    assert seconds < 10.0  # blow-up guard; the speed goal is in benchmarks/asl_fidelity.py


# ------------------------------------------------------------- non-series-parallel


def test_n_shape_beats_level_lowering_with_skewed_durations() -> None:
    nodes = ["a", "b", "c", "d"]
    edges = [("a", "c"), ("b", "c"), ("b", "d")]
    assert not is_series_parallel(nodes, edges)
    skewed = {"a": 10.0, "b": 1.0, "c": 1.0, "d": 10.0}
    sp = lower(nodes, edges, skewed)
    check_respects(sp, nodes, edges)
    ideal = dag_makespan(nodes, edges, skewed)
    level = makespan(level_lowering(nodes, edges), skewed)
    assert (ideal, level) == (11.0, 20.0)
    assert makespan(sp, skewed) / ideal < level / ideal
    assert makespan(sp, skewed) == 12.0  # the best any lowering of an N can do here
    # With unit durations the barrier is already as good as the DAG.
    assert makespan(lower(nodes, edges), dict.fromkeys(nodes, 1.0)) == 2.0


@pytest.mark.parametrize("seed", range(30))
def test_random_dags_are_lowered_validly(seed: int) -> None:
    rng = random.Random(1000 + seed)
    if seed % 2:
        nodes, edges = random_dag(rng, rng.randint(2, 120), rng.uniform(0.5, 3.0))
    else:
        nodes, edges = layered_dag(rng, rng.randint(2, 12), rng.randint(1, 10), 1)
    durations = random_durations(rng, nodes, zeros=seed % 5 == 0)
    sp = lower(nodes, edges, durations)
    check_respects(sp, nodes, edges)
    got = makespan(sp, durations)
    assert dag_makespan(nodes, edges, durations) <= got <= makespan(level_lowering(nodes, edges), durations)


def test_search_beats_level_lowering_on_average() -> None:
    rng = random.Random(7)
    ours, level = [], []
    for _ in range(30):
        nodes, edges = random_dag(rng, rng.randint(20, 80), 2.0)
        durations = random_durations(rng, nodes)
        ideal = dag_makespan(nodes, edges, durations)
        ours.append(makespan(lower(nodes, edges, durations), durations) / ideal)
        level.append(makespan(level_lowering(nodes, edges), durations) / ideal)
    assert sum(ours) / len(ours) < 1.1 < sum(level) / len(level)


def test_mirror_pass_never_hurts_and_sometimes_helps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lowering the reversed DAG too (with the unspent budget) may only improve the result."""
    from pipecast_stepfunctions import lowering

    cases = []
    for seed in range(31, 36):  # seed 33 is one where the mirror wins (30.88 -> 28.15)
        rng = random.Random(seed)
        if seed % 2:
            nodes, edges = random_dag(rng, rng.randint(40, 120), rng.uniform(1.0, 3.0))
        else:
            nodes, edges = layered_dag(rng, rng.randint(4, 12), rng.randint(3, 10), 2)
        cases.append((nodes, edges, random_durations(rng, nodes)))
    with_mirror = [makespan(lower(n, e, d), d) for n, e, d in cases]
    monkeypatch.setattr(lowering, "_MIRROR_MAX", 0)
    without = [makespan(lower(n, e, d), d) for n, e, d in cases]
    assert all(a <= b for a, b in zip(with_mirror, without, strict=True))
    assert any(a < b for a, b in zip(with_mirror, without, strict=True))


def test_reversed_sequences_lower_the_reversed_dag() -> None:
    from pipecast_stepfunctions.lowering import _reverse_seqs

    rng = random.Random(5)
    nodes, edges = random_dag(rng, 60, 2.0)
    sp = lower(nodes, edges, random_durations(rng, nodes))
    check_respects(_reverse_seqs(sp), nodes, [(v, u) for u, v in edges])
    # Deep nesting (a chain with a side step at every link) needs no recursion.
    deep: SP = "x0"
    for i in range(1, 5000):
        deep = Seq((Par((deep, f"s{i}")), f"x{i}"))
    flipped = _reverse_seqs(deep)
    assert isinstance(flipped, Seq) and flipped.items[0] == "x4999"
    assert canon(_reverse_seqs(flipped)) == canon(deep)


# ----------------------------------------------------------------------- determinism

_DETERMINISM_SCRIPT = """
import random, sys
from pipecast_stepfunctions.lowering import lower
rng = random.Random(3)
names = [f"n{i}" for i in range(60)]
edges = [(names[i], names[j]) for i in range(60) for j in range(i + 1, 60) if rng.random() < 0.06]
print(repr(lower(names, edges, {v: rng.uniform(1, 9) for v in names})))
"""


def test_deterministic_across_runs_edge_order_and_hash_seeds() -> None:
    rng = random.Random(11)
    nodes, edges = random_dag(rng, 90, 2.0)
    durations = random_durations(rng, nodes)
    first = canon(lower(nodes, edges, durations))
    assert canon(lower(nodes, edges, durations)) == first
    shuffled = edges[:]
    rng.shuffle(shuffled)
    assert canon(lower(nodes, shuffled, durations)) == first
    src = str(Path(__file__).resolve().parents[1] / "src")
    outputs = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": src}
        run = subprocess.run(
            [sys.executable, "-c", _DETERMINISM_SCRIPT], capture_output=True, text=True, env=env, check=True
        )
        outputs.add(run.stdout)
    assert len(outputs) == 1


# ------------------------------------------------------------------------------ scale


def _check_10k(nodes: list[str], edges: Edges, expected: float | None = None) -> None:
    durations = {v: 1.0 for v in nodes}
    sp, seconds = cpu_seconds(lower, nodes, edges, durations)
    check_respects(sp, nodes, edges)
    if expected is not None:
        assert makespan(sp, durations) == expected
    # A guard against blow-ups (quadratic or worse), ten times the benchmark's goal: the goal
    # itself is measured by benchmarks/asl_fidelity.py, not by a timed unit test.
    assert seconds < 10.0, f"lowering took {seconds:.2f} s of CPU"


def test_10k_chain() -> None:
    nodes = [f"n{i}" for i in range(10_000)]
    _check_10k(nodes, [(nodes[i], nodes[i + 1]) for i in range(9_999)], 10_000.0)


def test_10k_fan_out() -> None:
    nodes = [f"n{i}" for i in range(10_000)]
    _check_10k(nodes, [(nodes[0], v) for v in nodes[1:]], 2.0)


def test_10k_random_layered() -> None:
    nodes, edges = layered_dag(random.Random(5), 100, 100, 2)
    _check_10k(nodes, edges)


def test_200_step_random_dags_lower_fast() -> None:
    rng = random.Random(200)
    seconds = []
    for _ in range(5):
        nodes, edges = random_dag(rng, 200, 2.0)
        durations = random_durations(rng, nodes)
        sp, spent = cpu_seconds(lower, nodes, edges, durations)
        check_respects(sp, nodes, edges)
        seconds.append(spent)
    # Ten times the benchmark's goal (0.1 s): catches blow-ups without being flaky under load.
    assert sum(seconds) / len(seconds) < 1.0


# ------------------------------------------------------------------------- properties


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[str], Edges, dict[str, float]]:
    n = draw(st.integers(1, 14))
    names = [f"s{i}" for i in range(n)]
    order = draw(st.permutations(names))
    pairs = [(order[i], order[j]) for i in range(n) for j in range(i + 1, n)]
    chosen = draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs)))
    edges = [pair for pair, keep in zip(pairs, chosen, strict=True) if keep]
    values = st.one_of(st.integers(0, 9).map(float), st.floats(0.0, 100.0, allow_nan=False))
    durations = dict(zip(names, draw(st.lists(values, min_size=n, max_size=n)), strict=True))
    return names, edges, durations


@pytest.mark.parametrize("told", [True, False], ids=["durations-known", "durations-unknown"])
@settings(max_examples=300, deadline=None)
@given(dags())
def test_property_respects_edges_and_never_loses_to_level_lowering(
    told: bool, dag: tuple[list[str], Edges, dict[str, float]]
) -> None:
    # Unknown is what the compiler has (dag_mode: barriers): the guarantee must then hold
    # for the durations the run turns out to have.
    nodes, edges, durations = dag
    sp = lower(nodes, edges, durations if told else None)
    check_respects(sp, nodes, edges)
    got = makespan(sp, durations)
    assert got <= makespan(level_lowering(nodes, edges), durations)
    ideal = dag_makespan(nodes, edges, durations)
    assert got >= ideal
    if is_series_parallel(nodes, edges):
        assert got == ideal


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 40), st.sampled_from([0.0, 0.5]))
def test_property_series_parallel_is_exact(seed: int, n: int, transitive: float) -> None:
    rng = random.Random(seed)
    nodes, edges = sp_dag(rng, n, transitive)
    durations = random_durations(rng, nodes, zeros=seed % 2 == 0)
    sp = lower(nodes, edges, durations)
    check_respects(sp, nodes, edges)
    assert makespan(sp, durations) == dag_makespan(nodes, edges, durations)


def test_without_durations_no_step_waits_for_an_earlier_level() -> None:
    # Found by search: with unit durations, running n2 after n0 costs nothing, so the search
    # once chose it; with n0 long it delays n5 (16 vs 13 for level lowering).
    nodes = ["n0", "n1", "n2", "n3", "n4", "n5"]
    edges = [("n0", "n1"), ("n0", "n3"), ("n1", "n5"), ("n2", "n5")]
    durations = {"n0": 10.0, "n1": 1.0, "n2": 5.0, "n3": 2.0, "n4": 10.0, "n5": 1.0}
    sp = lower(nodes, edges)
    check_respects(sp, nodes, edges)
    assert makespan(sp, durations) <= makespan(level_lowering(nodes, edges), durations) == 13.0
