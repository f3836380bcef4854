"""Azure ML compile time for large pipelines (goal: 10,000 steps in under 3 s).

Run: ``.venv/bin/python benchmarks/azureml_compile.py [--sizes 1000 3000 10000]``.

Each pipeline is a chain of 10-step layers of python steps (every step reads one output of a
step in the previous layer), built in memory, validated once, then compiled by
``compile_pipeline`` (feature check + structural dry run + emit + YAML text). The time shown
is the compile only (loading and validation are the core's), best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pipecast.api import compile_pipeline
from pipecast.diagnostics import SourceMap
from pipecast.ir.models import Pipeline
from pipecast.loader import Loaded


def pipeline(n: int) -> Pipeline:
    steps = {}
    for i in range(n):
        step = {"run": {"python": "bench:work"}, "inputs": {"i": i}, "outputs": {"output": "int"}}
        if i >= 10:
            step["inputs"]["up"] = f"{{{{ steps.s{i - 10}.outputs.output }}}}"
        steps[f"s{i}"] = step
    return Pipeline.model_validate(
        {"pipecast": 1, "name": "bench", "defaults": {"image": "img:1"}, "steps": steps}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'steps':>7}  {'compile s':>9}  {'MB':>6}")
    for n in args.sizes:
        p = pipeline(n)
        best = float("inf")
        size = 0
        for _ in range(args.repeat):
            loaded = Loaded(pipeline=p, path=Path("bench.yaml"), source=SourceMap())  # fresh index caches
            t = time.perf_counter()
            result = compile_pipeline(loaded, "azureml", {})
            best = min(best, time.perf_counter() - t)
            size = sum(len(v) for v in result.files.values())
        print(f"{n:>7}  {best:>9.2f}  {size / 1e6:>6.1f}")


if __name__ == "__main__":
    main()
