"""Simulator speed next to Airflow ``dag.test()`` and ``kfp.local``, measured in the same run.

Usage::

    .venv/bin/python benchmarks/simulator.py [--n 1000] [--baseline-n 50] [--dry-n 10000]
                                             [--skip-airflow] [--skip-kfp]

Pipelines: a chain of N no-op python steps and a fan-out of N no-op python steps (one
``for_each`` over N items), run by ``run_pipeline`` (loading excluded). Airflow
``dag.test()`` and ``kfp.local`` (SubprocessRunner) run the same shapes with
``--baseline-n`` tasks (they cost ~0.1-0.3 s per task, so 1,000 would take many minutes),
each in its own process, timed around ``dag.test()`` / the pipeline call (DAG parsing and
interpreter start-up excluded); every per-task figure is total / tasks (a slope between two
sizes was tried: on a shared machine the noise swamps it). A baseline that fails or
times out shows its error in the table instead of stopping the run. Then ``pipecast run
FILE --dry-run`` end to end in a fresh process on 10,000-step pipelines (chain, fan-out,
random DAG): goal under 2 s.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

NOOP = "def noop(x=0):\n    return x\n"


def _pipeline(kind: str, n: int) -> str:
    if kind == "chain":
        lines = ["pipecast: 1", f"name: chain{n}", "steps:"]
        for i in range(n):
            value = f'"{{{{ steps.s{i - 1}.outputs.output }}}}"' if i else "0"
            lines.append(
                f"  s{i}: {{run: {{python: 'noop:noop'}}, inputs: {{x: {value}}}, outputs: {{output: int}}}}"
            )
        return "\n".join(lines) + "\n"
    return textwrap.dedent(
        f"""
        pipecast: 1
        name: fan{n}
        steps:
          fan:
            for_each: {list(range(n))}
            steps:
              s: {{run: {{python: 'noop:noop'}}, inputs: {{x: "{{{{ item }}}}"}}, outputs: {{output: int}}}}
        """
    )


def bench_pipecast(tmp: Path, kind: str, n: int, max_parallel: int) -> float:
    from pipecast.api import load_checked
    from pipecast.simulator import run_pipeline

    path = tmp / f"{kind}{n}.yaml"
    path.write_text(_pipeline(kind, n))
    loaded = load_checked(path)
    t0 = time.perf_counter()
    rec = run_pipeline(loaded, run_dir=tmp / "runs", max_parallel=max_parallel, no_cache=True)
    elapsed = time.perf_counter() - t0
    assert rec["status"] == "succeeded", rec["status"]
    return elapsed


def big_pipeline(kind: str, n: int) -> str:
    """A ``n``-step pipeline: ``chain``, ``fan-out`` (one producer, n-1 readers) or ``dag``
    (each step reads up to 3 random earlier steps among the previous 50; seeded)."""
    rng = random.Random(7)
    lines = ["pipecast: 1", f"name: {kind.replace('-', '')}{n}", "steps:"]
    for i in range(n):
        if kind == "chain":
            deps = [i - 1] if i else []
        elif kind == "fan-out":
            deps = [0] if i else []
        else:
            deps = rng.sample(range(max(0, i - 50), i), min(i, rng.randint(0, 3)))
        inputs = {f"x{j}": f'"{{{{ steps.s{d}.outputs.output }}}}"' for j, d in enumerate(deps)} or {
            "x0": "0"
        }
        ins = ", ".join(f"{k}: {v}" for k, v in inputs.items())
        lines.append(f"  s{i}: {{run: {{python: 'noop:noop'}}, inputs: {{{ins}}}, outputs: {{output: int}}}}")
    return "\n".join(lines) + "\n"


def bench_fan_out(tmp: Path, n: int, max_parallel: int, dry: bool) -> float:
    """One ``for_each`` over ``n`` items of a no-op step, by ``run_pipeline`` (loading
    excluded): a real run, or a dry run (virtual time)."""
    from pipecast.api import load_checked
    from pipecast.simulator import run_pipeline

    path = tmp / f"fan-scale{n}.yaml"
    path.write_text(_pipeline("fan", n))
    loaded = load_checked(path)
    t0 = time.perf_counter()
    rec = run_pipeline(loaded, run_dir=tmp / "runs", max_parallel=max_parallel, no_cache=True, dry_run=dry)
    elapsed = time.perf_counter() - t0
    assert rec["status"] == "succeeded", rec["status"]
    return elapsed


def bench_dry_cli(tmp: Path, kind: str, n: int, repeat: int = 3) -> tuple[float, float]:
    """``pipecast run FILE --dry-run`` end to end in a fresh process (start-up, load,
    validation, the dry run, printing): best wall time and its CPU time over ``repeat`` runs."""
    path = tmp / f"dry-{kind}.yaml"
    path.write_text(big_pipeline(kind, n))
    (tmp / "noopkw.py").write_text("def noop(**kw):\n    return 0\n")
    path.write_text(path.read_text().replace("'noop:noop'", "'noopkw:noop'"))
    # Measure what an installed pipecast does: bytecode cached (this sandbox sets
    # PYTHONDONTWRITEBYTECODE, which would recompile every module on every start).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cmd = [sys.executable, "-m", "pipecast", "run", str(path), "--dry-run", "--run-dir", str(tmp / "runs")]
    best = (math.inf, 0.0)
    for i in range(repeat + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        res = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if res.returncode != 0:
            raise RuntimeError(f"pipecast run --dry-run failed: {res.stderr[-500:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if i and wall < best[0]:  # run 0 warms the bytecode cache
            best = (wall, cpu)
    return best


AIRFLOW_DAG = """
from airflow.sdk import DAG, task
import pendulum

@task
def noop(x=0):
    return x

with DAG("{name}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False) as dag:
    if "{kind}" == "chain":
        prev = noop(0)
        for _ in range({n} - 1):
            prev = noop(prev)
    else:
        noop.expand(x=list(range({n})))
"""

AIRFLOW_RUNNER = """
import sys, time
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
dag = bag.get_dag(sys.argv[2])
t0 = time.perf_counter()
dag.test()
print(time.perf_counter() - t0)
"""


def bench_airflow(tmp: Path, kind: str, n: int) -> float | str:
    home = tmp / "airflow"
    dags = home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    name = f"{kind}{n}"
    (dags / f"{name}.py").write_text(AIRFLOW_DAG.format(name=name, kind=kind, n=n))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
    }
    if not (home / "airflow.db").exists():
        try:
            subprocess.run(
                [sys.executable, "-m", "airflow", "db", "migrate"],
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
                check=True,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            return f"error: airflow db migrate: {str(exc)[:60]}"
    return _run_timed([sys.executable, "-c", AIRFLOW_RUNNER, str(dags), name], env=env)


def _run_timed(cmd: list[str], timeout: float = 900, **kwargs: Any) -> float | str:
    """Run a baseline in its own process; its last stdout line is the seconds it measured.
    A failure or a timeout becomes a short message for the table instead of a crash."""
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    except subprocess.TimeoutExpired:
        return f"error: timed out after {timeout:g}s"
    lines = res.stdout.strip().splitlines()
    if res.returncode != 0 or not lines:
        return "error: " + (res.stderr.strip().splitlines() or ["?"])[-1][:80]
    try:
        return float(lines[-1])
    except ValueError:
        return "error: unexpected output " + lines[-1][:60]


KFP_RUNNER = """
import sys, time
from kfp import dsl, local

local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[3])

@dsl.component(install_kfp_package=False)
def noop(x: int = 0) -> int:
    return x

kind, n = sys.argv[1], int(sys.argv[2])

@dsl.pipeline
def chain():
    prev = noop(x=0)
    for _ in range(n - 1):
        prev = noop(x=prev.output)

@dsl.pipeline
def fan():
    with dsl.ParallelFor(items=list(range(n))) as item:
        noop(x=item)

t0 = time.perf_counter()
(chain if kind == "chain" else fan)()
print(time.perf_counter() - t0)
"""


def bench_kfp(tmp: Path, kind: str, n: int) -> float | str:
    runner = tmp / "kfp_runner.py"  # kfp reads component source: it cannot come from -c
    runner.write_text(KFP_RUNNER)
    return _run_timed([sys.executable, str(runner), kind, str(n), str(tmp / "kfp-root")], cwd=tmp)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="tasks per pipecast pipeline")
    ap.add_argument("--baseline-n", type=int, default=50, help="tasks per baseline pipeline")
    ap.add_argument("--dry-n", type=int, default=10_000, help="steps of the dry-run pipelines")
    ap.add_argument("--max-parallel", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--skip-airflow", action="store_true")
    ap.add_argument("--skip-kfp", action="store_true")
    ap.add_argument(
        "--fan-sizes", default="1000,2000,4000,10000", help="items of the real fan-out scaling runs"
    )
    ap.add_argument("--dry-fan", type=int, default=100_000, help="items of the dry-run fan-out")
    ap.add_argument("--fan-out-only", action="store_true", help="only the fan-out scaling table")
    args = ap.parse_args()
    if args.fan_out_only:
        fan_out_table(args)
        return

    rows: list[list[str]] = []
    ours: dict[str, float] = {}

    def add(tool: str, kind: str, n: int, total: float | str, per: float | str, note: str) -> None:
        if isinstance(per, str) or isinstance(total, str):
            rows.append([tool, kind, str(n), "", "", "", "", str(per if isinstance(per, str) else total)])
            return
        ratio = f"{per / ours[kind]:,.0f}x" if kind in ours and tool != "pipecast run" else ""
        rows.append(
            [
                tool,
                kind,
                str(n),
                f"{total:.2f}",
                f"{1 / per:,.0f}" if per else "inf",
                f"{per * 1000:.2f}",
                ratio,
                note,
            ]
        )

    with tempfile.TemporaryDirectory(prefix="pipecast-bench-") as d:
        tmp = Path(d)
        (tmp / "noop.py").write_text(NOOP)
        sys.path.insert(0, str(tmp))
        for kind in ("chain", "fan-out"):
            total = bench_pipecast(tmp, kind, args.n, args.max_parallel)
            ours[kind] = total / args.n
            add("pipecast run", kind, args.n, total, total / args.n, "total / tasks")
            note = "total / tasks"
            if not args.skip_airflow:
                a = bench_airflow(tmp, kind, args.baseline_n)
                add(
                    "airflow dag.test()",
                    kind,
                    args.baseline_n,
                    a,
                    a if isinstance(a, str) else a / args.baseline_n,
                    note,
                )
            if not args.skip_kfp:
                k = bench_kfp(tmp, kind, args.baseline_n)
                add(
                    "kfp.local subprocess",
                    kind,
                    args.baseline_n,
                    k,
                    k if isinstance(k, str) else k / args.baseline_n,
                    note,
                )
        dry = {kind: bench_dry_cli(tmp, kind, args.dry_n) for kind in ("chain", "fan-out", "dag")}

    load = os.getloadavg()[0]
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs (load average {load:.1f}), "
        f"--max-parallel {args.max_parallel}; no-op python steps"
    )
    header = ["tool", "pipeline", "tasks", "seconds", "tasks/s", "ms/task", "vs pipecast", "per task from"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(f"{{:<{w}}}" for w in widths) + " |"
    print(line.format(*header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line.format(*r))
    print()
    print(
        f"| `pipecast run FILE --dry-run`, {args.dry_n:,} steps (fresh process: start-up, load, validation, run, output) | wall s | CPU s |"
    )
    print("|---|---|---|")
    for kind, (wall, cpu) in dry.items():
        print(f"| {kind} | {wall:.2f} | {cpu:.2f} |")
    print()
    fan_out_table(args)


def fan_out_table(args: argparse.Namespace) -> None:
    """Fan-out scaling: one for_each of no-op steps, real runs at several sizes and one dry
    run; the time per item stays flat when the simulator is linear (issue 15)."""
    sizes = [int(x) for x in args.fan_sizes.split(",") if x.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="pipecast-fan-") as d:
        tmp = Path(d)
        (tmp / "noop.py").write_text(NOOP)
        sys.path.insert(0, str(tmp))
        for n in sizes:
            rows.append(("run", n, bench_fan_out(tmp, n, args.max_parallel, dry=False)))
        rows.append(
            ("run --dry-run", args.dry_fan, bench_fan_out(tmp, args.dry_fan, args.max_parallel, True))
        )
    print(f"| fan-out (one for_each, --max-parallel {args.max_parallel}) | items | seconds | ms/item |")
    print("|---|---|---|---|")
    for mode, n, secs in rows:
        print(f"| {mode} | {n:,} | {secs:.2f} | {secs / n * 1000:.2f} |")


if __name__ == "__main__":
    main()
