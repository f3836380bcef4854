"""Compile time of every target and the simulator's dry runs at 10,000 steps, as one JSON line
(``{"<target or dry-<shape>>": [wall s, CPU s], ...}``), for comparing two commits.

Run it with each commit's Python, alternating, and keep the best CPU time of 3 runs each (the
README's "commit against commit" table)::

    <old checkout>/.venv/bin/python benchmarks/all_targets_10k.py
    .venv/bin/python benchmarks/all_targets_10k.py

Step Functions compiles ``stepfunctions_compile.py``'s pipeline (``compile_pipeline``, as every
other target, and ``stepfunctions-emit``: the backend's ``emit`` alone); the other targets the layered
pipeline of ``vertex_compile.py``; the dry runs are ``simulator.py``'s (``pipecast run
--dry-run`` in a fresh process). Each target first compiles a 10-step pipeline untimed, so its
imports (the kfp SDK's 1,300 modules for Kubeflow and Vertex, seconds without a bytecode cache)
are not counted in whichever target happens to import them first. ``--no-dry`` skips the dry
runs; ``--only T ...`` times only the named targets.

Measured for issue 16 (CPU s, best of 3 interleaved, load average 5-9; README has the table),
a9ab23e -> main after the compile-speed work (gc pause, effective settings once, no second
index in guard_readers): Step Functions 2.92 -> 2.76, its emit alone 2.68 -> 2.47, Vertex AI
2.42 -> 1.84, Kubeflow 2.44 -> 1.85, Azure ML 1.71 -> 1.11, Airflow 1.80 -> 1.15; dry runs
chain 1.88 -> 1.85, fan-out 1.80 -> 1.69, DAG 1.94 -> 2.03. Before that work main was +25%
(Vertex AI), +27% (Kubeflow), +14% (Airflow), +4% (Azure ML) against a9ab23e.
"""

from __future__ import annotations

import argparse
import gc
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


WARM = 10


def _timed(compile_n: Callable[[int], object]) -> tuple[float, float]:
    """Wall and CPU seconds of ``compile_n(N)``, after an untimed ``compile_n(WARM)``."""
    compile_n(WARM)
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    compile_n(N)
    return round(time.perf_counter() - wall, 3), round(time.process_time() - cpu, 3)


SFN_SETTINGS = {"compute": "callback", "max_history_events": 25_000, "map_mode": "auto"}


def _stepfunctions_emit() -> Callable[[int], object]:
    """The backend's ``emit`` alone (this table's Step Functions row before the gc pause)."""
    from pipecast_stepfunctions.backend import StepFunctionsBackend

    backend = StepFunctionsBackend()
    settings = backend.settings_model.model_validate(SFN_SETTINGS)
    pipelines = {n: sfb.make_pipeline(n) for n in (WARM, N)}  # built outside the timing

    def compile_n(n: int) -> object:
        return backend.emit(pipelines[n], PipelineIndex(pipelines[n]), settings)

    return compile_n


def _stepfunctions() -> Callable[[int], object]:
    """What ``pipecast compile`` spends after loading: lowering, check and emit."""
    pipelines = {n: sfb.make_pipeline(n) for n in (WARM, N)}

    def compile_n(n: int) -> object:
        loaded = Loaded(pipeline=pipelines[n], path=Path("bench.yaml"), source=SourceMap())
        return compile_pipeline(loaded, "stepfunctions", SFN_SETTINGS)

    return compile_n


def _layered(target: str) -> Callable[[int], object]:
    pipelines = {n: vb.pipecast_pipeline(n) for n in (WARM, N)}  # built outside the timing

    def compile_n(n: int) -> object:
        loaded = Loaded(pipeline=pipelines[n], path=Path("bench.yaml"), source=SourceMap())
        return compile_pipeline(loaded, target, {})

    return compile_n


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-dry", action="store_true", help="skip the dry runs")
    parser.add_argument("--only", nargs="*", default=None, help="time only these targets")
    args = parser.parse_args()
    wanted = set(args.only) if args.only is not None else None
    out: dict[str, tuple[float, float]] = {}
    if wanted is None or "stepfunctions" in wanted:
        out["stepfunctions"] = _timed(_stepfunctions())
        out["stepfunctions-emit"] = _timed(_stepfunctions_emit())
    for target in registry.available():
        if target in ("local", "stepfunctions") or (wanted is not None and target not in wanted):
            continue
        out[target] = _timed(_layered(target))
    if not args.no_dry:
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
