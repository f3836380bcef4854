"""Compile time of the Step Functions backend on 1,000 / 3,000 / 10,000-step pipelines.

Each pipeline mixes chains, fan-outs (for_each groups) and a seeded random DAG, so the
lowering, the emitter and the limit checks all do real work. Goal: < 3 s for 10,000 steps,
growing linearly. Run: ``.venv/bin/python benchmarks/stepfunctions_compile.py``.
"""

from __future__ import annotations

import random
import sys
import time
from typing import Any

from pipecast.ir.models import Pipeline
from pipecast.passes.analysis import PipelineIndex
from pipecast_stepfunctions.backend import StepFunctionsBackend
from pipecast_stepfunctions.settings import StepFunctionsSettings


def _task(inputs: dict[str, Any] | None = None, after: list[str] | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {"run": {"image": "alpine", "command": ["echo"]}, "outputs": {"v": "int"}}
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
        steps[f"g{g}"] = {"for_each": [1, 2, 3], "steps": inner}
        made += 10
        g += 1
    # 3. a random DAG (edges to up to 3 of the previous 20 nodes: mostly not series-parallel)
    rest = n - third - made
    for i in range(rest):
        preds = sorted({rng.randrange(max(0, i - 20), i) for _ in range(rng.randint(0, 3))}) if i else []
        steps[f"r{i}"] = _task(after=[f"r{p}" for p in preds])
    return Pipeline.model_validate({"pipecast": 1, "name": "bench", "steps": steps})


def main() -> int:
    backend = StepFunctionsBackend()
    settings = StepFunctionsSettings(compute="callback", max_history_events=25_000, map_mode="auto")
    print(f"{'steps':>8} {'seconds':>8} {'s/1k steps':>11} {'states':>8} {'MB':>6} {'parts':>6}")
    for n in (1_000, 3_000, 10_000):
        pipeline = make_pipeline(n)
        start = time.perf_counter()
        index = PipelineIndex(pipeline)
        result = backend.emit(pipeline, index, settings)
        took = time.perf_counter() - start
        size = sum(len(t.encode()) for k, t in result.files.items() if k.endswith(".asl.json")) / 1e6
        print(
            f"{n:>8} {took:>8.2f} {took / n * 1000:>11.3f} {result.summary['states']:>8} {size:>6.2f} "
            f"{result.summary['child_state_machines']:>6}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
