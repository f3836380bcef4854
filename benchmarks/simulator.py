"""Simulator speed next to Airflow ``dag.test()`` and ``kfp.local``, measured in the same run.

Usage::

    .venv/bin/python benchmarks/simulator.py [--n 1000] [--baseline-n 50] [--skip-airflow] [--skip-kfp]

Pipelines: a chain of N no-op python steps and a fan-out of N no-op python steps (one
``for_each`` over N items). The baselines run the same shapes with ``--baseline-n`` tasks
(they cost ~0.1-0.2 s per task, so 1,000 would take minutes); the table reports per-task
overhead for each, which is what the comparison is about. Plus a dry run of a 10,000-step
pipeline (goal: under 2 s).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

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


def bench_dry(tmp: Path, n: int) -> tuple[float, float]:
    from pipecast.loader import load
    from pipecast.simulator import run_pipeline

    lines = ["pipecast: 1", f"name: dry{n}", "steps:"]
    for i in range(n):
        value = f'"{{{{ steps.s{i - 1}.outputs.output }}}}"' if i % 100 else "0"
        lines.append(
            f"  s{i}: {{run: {{python: 'noop:noop'}}, inputs: {{x: {value}}}, outputs: {{output: int}}}}"
        )
    path = tmp / "dry.yaml"
    path.write_text("\n".join(lines) + "\n")
    t0 = time.perf_counter()
    loaded = load(path)
    loaded.index.deps(loaded.index.root)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    rec = run_pipeline(loaded, dry_run=True, max_parallel=100, run_dir=tmp / "runs")
    assert rec["status"] == "succeeded"
    return time.perf_counter() - t0, t_load


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
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], env=env, capture_output=True, check=True
        )
    res = subprocess.run(
        [sys.executable, "-c", AIRFLOW_RUNNER, str(dags), name], env=env, capture_output=True, text=True
    )
    if res.returncode != 0:
        return "error: " + (res.stderr.strip().splitlines() or ["?"])[-1][:80]
    return float(res.stdout.strip().splitlines()[-1])


KFP_RUNNER = """
import sys, time
from kfp import dsl, local

local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[3])

@dsl.component
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
    res = subprocess.run(
        [sys.executable, str(runner), kind, str(n), str(tmp / "kfp-root")],
        capture_output=True,
        text=True,
        cwd=tmp,
    )
    if res.returncode != 0:
        return "error: " + (res.stderr.strip().splitlines() or ["?"])[-1][:80]
    return float(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--baseline-n", type=int, default=50)
    ap.add_argument("--max-parallel", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--skip-airflow", action="store_true")
    ap.add_argument("--skip-kfp", action="store_true")
    args = ap.parse_args()

    rows: list[tuple[str, str, int, str, str, str]] = []

    def add(tool: str, kind: str, n: int, secs: float | str) -> None:
        if isinstance(secs, str):
            rows.append((tool, kind, n, secs, "", ""))
        else:
            rows.append((tool, kind, n, f"{secs:.2f}", f"{n / secs:,.0f}", f"{secs / n * 1000:.2f}"))

    with tempfile.TemporaryDirectory(prefix="pipecast-bench-") as d:
        tmp = Path(d)
        (tmp / "noop.py").write_text(NOOP)
        sys.path.insert(0, str(tmp))
        for kind in ("chain", "fan-out"):
            add("pipecast run", kind, args.n, bench_pipecast(tmp, kind, args.n, args.max_parallel))
            if not args.skip_airflow:
                add("airflow dag.test()", kind, args.baseline_n, bench_airflow(tmp, kind, args.baseline_n))
            if not args.skip_kfp:
                add("kfp.local (subprocess)", kind, args.baseline_n, bench_kfp(tmp, kind, args.baseline_n))
        dry, load = bench_dry(tmp, 10_000)

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, --max-parallel {args.max_parallel}")
    header = ("tool", "pipeline", "tasks", "seconds", "tasks/s", "ms/task")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(6)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    print(fmt.format(*header))
    print(fmt.format(*("-" * w for w in widths)))
    for r in rows:
        print(fmt.format(*r))
    print(
        f"dry run of a 10,000-step pipeline: {dry:.2f} s (goal < 2 s; loading+analysis {load:.2f} s not included)"
    )
    ours = {r[1]: float(r[5]) for r in rows if r[0] == "pipecast run" and r[5]}
    for r in rows:
        if r[0].startswith("airflow") and r[5]:
            print(f"per-task overhead vs Airflow dag.test() ({r[1]}): {float(r[5]) / ours[r[1]]:.0f}x lower")


if __name__ == "__main__":
    main()
