"""Compile time of every target and the simulator's dry runs at 10,000 steps, as one JSON line
(``{"<target or dry-<shape>>": [wall s, CPU s], ...}``), for comparing two commits.

Run it with each commit's Python, alternating, and keep the best CPU time of 3 runs each (the
README's "commit against commit" table)::

    <old checkout>/.venv/bin/python benchmarks/all_targets_10k.py
    .venv/bin/python benchmarks/all_targets_10k.py

Step Functions compiles ``stepfunctions_compile.py``'s pipeline; the other targets the layered
pipeline of ``vertex_compile.py``; the dry runs are ``simulator.py``'s (``pipecast run
--dry-run`` in a fresh process).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import simulator as simb
import stepfunctions_compile as sfb
import vertex_compile as vb

from pipecast import registry
from pipecast.api import compile_pipeline
from pipecast.diagnostics import SourceMap
from pipecast.loader import Loaded
from pipecast.passes.analysis import PipelineIndex

N = 10_000


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return round(time.perf_counter() - wall, 3), round(time.process_time() - cpu, 3)


def main() -> int:
    from pipecast_stepfunctions.backend import StepFunctionsBackend
    from pipecast_stepfunctions.settings import StepFunctionsSettings

    out: dict[str, tuple[float, float]] = {}
    p = sfb.make_pipeline(N)
    settings = StepFunctionsSettings(compute="callback", max_history_events=25_000, map_mode="auto")
    out["stepfunctions"] = _timed(lambda: StepFunctionsBackend().emit(p, PipelineIndex(p), settings))
    layered = vb.pipecast_pipeline(N)
    for target in registry.available():
        if target in ("local", "stepfunctions"):
            continue
        loaded = Loaded(pipeline=layered, path=Path("bench.yaml"), source=SourceMap())
        out[target] = _timed(lambda loaded=loaded, target=target: compile_pipeline(loaded, target, {}))
    with tempfile.TemporaryDirectory(prefix="pipecast-bench-") as d:
        tmp = Path(d)
        (tmp / "noop.py").write_text(simb.NOOP)
        for kind in ("chain", "fan-out", "dag"):
            wall, cpu = simb.bench_dry_cli(tmp, kind, N, repeat=1)
            out[f"dry-{kind}"] = (round(wall, 3), round(cpu, 3))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
