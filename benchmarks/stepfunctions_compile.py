"""Compile time of the Step Functions backend on 1,000 / 3,000 / 10,000-step pipelines.

Each pipeline mixes chains, fan-outs (for_each groups) and a seeded random DAG, so the
lowering, the emitter, the splitting into child state machines (every definition under
1 MB) and the limit checks all do real work. The three parts run one after the other and the
DAG steps declare no outputs (they only order), so the top level is one sequence whose
``$.steps`` entries are pruned as it goes and the state stays under Step Functions' 256 KiB
payload quota (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html); three
independent parts with an output on every step would put all 10,000 entries in one state,
which the compiler rightly rejects. Goal: < 3 s for 10,000 steps, growing
linearly (the ms/step column stays flat). CPU time is printed next to wall-clock time
because a loaded machine inflates the latter. Run: ``.venv/bin/python benchmarks/stepfunctions_compile.py``.
"""

from __future__ import annotations

import random
import sys
import time
from typing import Any

from pipecast_stepfunctions.backend import StepFunctionsBackend
from pipecast_stepfunctions.settings import StepFunctionsSettings

from pipecast.ir.models import Pipeline
from pipecast.passes.analysis import PipelineIndex


def _task(
    inputs: dict[str, Any] | None = None, after: list[str] | None = None, *, output: bool = True
) -> dict[str, Any]:
    step: dict[str, Any] = {"run": {"image": "alpine", "command": ["echo"]}}
    if output:
        step["outputs"] = {"v": "int"}
    if inputs:
        step["inputs"] = inputs
    if after:
        step["after"] = after
    return step


def make_pipeline(n: int, seed: int = 7) -> Pipeline:
    rng = random.Random(seed)
    steps: dict[str, Any] = {}
    third = n // 3
    # 1. a chain
    for i in range(third):
        steps[f"c{i}"] = _task({"x": f"{{{{ steps.c{i - 1}.outputs.v }}}}"} if i else None)
    # 2. fan-outs of 10 inner steps each
    made = 0
    g = 0
    while made < third:
        inner = {f"g{g}_s{j}": _task() for j in range(9)}
        # each fan-out starts after the previous part, so the top level is one sequence
        steps[f"g{g}"] = {
            "for_each": [1, 2, 3],
            "steps": inner,
            "after": [f"g{g - 1}" if g else f"c{third - 1}"],
        }
        made += 10
        g += 1
    # 3. a random DAG (edges to up to 3 of the previous 20 nodes: mostly not series-parallel)
    rest = n - third - made
    for i in range(rest):
        preds = sorted({rng.randrange(max(0, i - 20), i) for _ in range(rng.randint(0, 3))}) if i else []
        after = [f"r{p}" for p in preds] if preds else [f"g{g - 1}"]
        steps[f"r{i}"] = _task(after=after, output=False)
    return Pipeline.model_validate({"pipecast": 1, "name": "bench", "steps": steps})


def main() -> int:
    backend = StepFunctionsBackend()
    settings = StepFunctionsSettings(compute="callback", max_history_events=25_000, map_mode="auto")
    repeats = 3
    print(f"compile time: best of {repeats} (wall clock and CPU time of this process)")
    print(
        f"{'steps':>7} {'wall s':>7} {'cpu s':>6} {'ms/step':>8} {'states':>7} {'ASL MB':>7} "
        f"{'machines':>8} {'largest KB':>10} {'spec files':>10}"
    )
    for n in (1_000, 3_000, 10_000):
        pipeline = make_pipeline(n)
        best_wall = best_cpu = float("inf")
        for _ in range(repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            index = PipelineIndex(pipeline)
            result = backend.emit(pipeline, index, settings)
            best_wall = min(best_wall, time.perf_counter() - wall)
            best_cpu = min(best_cpu, time.process_time() - cpu)
        sizes = [len(t.encode()) for k, t in result.files.items() if k.endswith(".asl.json")]
        specs = sum(1 for k in result.files if k.startswith("specs/"))
        print(
            f"{n:>7} {best_wall:>7.2f} {best_cpu:>6.2f} {best_cpu / n * 1000:>8.3f} "
            f"{result.summary['states']:>7} {sum(sizes) / 1e6:>7.2f} {len(sizes):>8} "
            f"{max(sizes) / 1e3:>10.0f} {specs:>10}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
