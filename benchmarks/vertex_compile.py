"""Vertex compile time and spec size: pipecast vs the kfp SDK (define + compile).

Run: ``.venv/bin/python benchmarks/vertex_compile.py [--quick]``.

The pipeline is a chain of 10-step layers of python steps (each reads one output of a step
in the previous layer). pipecast compiles 1,000, 3,000 and 10,000 steps (``compile_pipeline``:
feature check + PipelineSpec build + YAML text; validation is the core's and not timed); the
kfp SDK defines and compiles the equivalent 1,000- and 3,000-step pipelines of lightweight
components. ``--quick`` skips kfp at 3,000 steps (about a minute). Goal: pipecast 10,000
steps < 3 s, linear, and no more spec bytes per step than kfp.
"""

import argparse
import tempfile
import time
from pathlib import Path

from pipecast.api import compile_pipeline
from pipecast.diagnostics import SourceMap
from pipecast.ir.models import Pipeline
from pipecast.loader import Loaded


def pipecast_pipeline(n: int) -> Pipeline:
    steps = {}
    for i in range(n):
        step = {"run": {"python": "bench:work"}, "inputs": {"i": i}, "outputs": {"output": "int"}}
        if i >= 10:
            step["inputs"]["up"] = f"{{{{ steps.s{i - 10}.outputs.output }}}}"
        steps[f"s{i}"] = step
    return Pipeline.model_validate(
        {"pipecast": 1, "name": "bench", "defaults": {"image": "img:1"}, "steps": steps}
    )


def time_pipecast(n: int, repeat: int) -> tuple[float, int]:
    p = pipecast_pipeline(n)
    best, size = float("inf"), 0
    for _ in range(repeat):
        loaded = Loaded(pipeline=p, path=Path("bench.yaml"), source=SourceMap())
        t = time.perf_counter()
        result = compile_pipeline(loaded, "vertex", {})
        best = min(best, time.perf_counter() - t)
        size = len(result.files["bench.yaml"].encode())
    return best, size


def time_kfp(n: int) -> tuple[float, int]:
    from kfp import compiler, dsl

    @dsl.component(base_image="img:1")
    def work(i: int, up: int = 0) -> int:
        return i + up

    t = time.perf_counter()

    @dsl.pipeline(name="bench")
    def bench() -> None:
        tasks = []
        for i in range(n):
            task = work(i=i, up=tasks[i - 10].output) if i >= 10 else work(i=i)
            tasks.append(task)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        compiler.Compiler().compile(bench, str(path))
        elapsed = time.perf_counter() - t
        return elapsed, path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip kfp at 3,000 steps")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'tool':<9} {'steps':>7} {'seconds':>8} {'s/1k steps':>10} {'bytes/step':>10}")
    for n in (1000, 3000, 10000):
        seconds, size = time_pipecast(n, args.repeat)
        print(
            f"{'pipecast':<9} {n:>7} {seconds:>8.2f} {seconds / n * 1000:>10.3f} {size / n:>10.0f}",
            flush=True,
        )
    for n in (1000,) if args.quick else (1000, 3000):
        seconds, size = time_kfp(n)
        print(f"{'kfp':<9} {n:>7} {seconds:>8.2f} {seconds / n * 1000:>10.3f} {size / n:>10.0f}", flush=True)


if __name__ == "__main__":
    main()
