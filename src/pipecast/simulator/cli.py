"""``pipecast run``, ``pipecast runs`` and ``pipecast show``. Nothing heavy is imported until
a handler runs (the CLI's start-up stays fast).

Exit codes of ``run``: 0 the run succeeded, 1 it failed (or a target profile found a
violation that would fail on the target, or the input was wrong), 2 usage.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the simulator's sub-commands to the ``pipecast`` parser."""
    from pipecast.cli import number_option

    p = subparsers.add_parser("run", help="run a pipeline locally (the reference semantics)")
    p.add_argument("file", metavar="FILE", help="pipeline file (.yaml/.json/.py)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="parameter value (repeatable)")
    p.add_argument("--run-dir", metavar="DIR", help="runs root (default .pipecast/runs)")
    p.add_argument("--run-id", metavar="ID", help="fix the run id")
    p.add_argument(
        "--max-parallel",
        type=number_option("--max-parallel", minimum=1),
        metavar="N",
        help="concurrent attempts (default: CPU count)",
    )
    p.add_argument("--json", action="store_true", help="print only the run record (JSON) on stdout")
    p.add_argument("--containers", choices=("docker", "podman", "host"), help="how container steps run")
    p.add_argument(
        "--fail", action="append", metavar="STEP[:N]", help="fail STEP's first N attempts (all if no N)"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="run nothing: virtual time, outputs from types or --mock"
    )
    p.add_argument("--mock", metavar="FILE", help="dry-run outputs/durations per step (YAML/JSON)")
    p.add_argument(
        "--profile",
        metavar="TARGET",
        help="also check that target's run-time limits (see 'pipecast targets')",
    )
    p.add_argument("--secrets", metavar="FILE", help="dotenv file of secret-name=value")
    p.add_argument("--no-cache", action="store_true", help="ignore cache: true")
    p.add_argument("--resume", metavar="RUN_ID", help="finish an earlier run: reuse its succeeded steps")
    p.add_argument("--seed", type=number_option("--seed", example="7"), help="seed for retry jitter")
    p.add_argument("--report", action="store_true", help="write an HTML report of the run and print its path")
    p.set_defaults(func=cmd_run)

    p = subparsers.add_parser("runs", help="list local runs")
    p.add_argument("--run-dir", metavar="DIR", help="runs root (default .pipecast/runs)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)

    p = subparsers.add_parser("show", help="show one local run as a table")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--run-dir", metavar="DIR", help="runs root (default .pipecast/runs)")
    p.add_argument("--json", action="store_true", help="print the run record")
    p.set_defaults(func=cmd_show)


def _params(items: list[str] | None) -> dict[str, str]:
    from pipecast.cli import _key_values

    return _key_values(items, "--param")


def cmd_run(args: argparse.Namespace) -> int:
    from pipecast.api import load_checked
    from pipecast.simulator.run import run_pipeline

    if args.dry_run:
        # A dry run builds many small objects it keeps to the end and then exits: the cyclic
        # collector's passes would only cost time (a third of a 10,000-step dry run).
        gc.disable()
    loaded = load_checked(args.file)
    hooks = []
    progress = None
    if not args.json and not args.dry_run and sys.stderr.isatty():
        from pipecast.simulator.progress import LiveProgress

        progress = LiveProgress(loaded.index)
        hooks.append(progress)
    try:
        if progress:
            progress.start()
        record = run_pipeline(
            loaded,
            params=_params(args.param),
            run_dir=args.run_dir,
            run_id=args.run_id,
            max_parallel=args.max_parallel,
            containers=args.containers,
            fail=args.fail,
            dry_run=args.dry_run,
            mock=args.mock,
            profile=args.profile,
            secrets=args.secrets,
            no_cache=args.no_cache,
            resume=args.resume,
            seed=args.seed,
            hooks=hooks,
        )
    finally:
        if progress:
            progress.stop()
    for warning in record.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        sys.stdout.write(json.dumps(record, indent=2, sort_keys=True) + "\n")
    else:
        from pipecast.simulator.progress import print_summary

        print_summary(record)
        if args.dry_run:
            from pipecast.simulator.timeline import render_timeline

            print(render_timeline(record["timeline"]))
    if getattr(args, "report", False) and not args.dry_run:
        from pipecast.simulator.run import DEFAULT_RUNS
        from pipecast.viz.report import write_report

        root = Path(args.run_dir) if args.run_dir else DEFAULT_RUNS
        print(
            f"report: {write_report(root / record['run_id'])}", file=sys.stderr if args.json else sys.stdout
        )
    violations = (record.get("profile") or {}).get("violations", [])
    if record["status"] != "succeeded" or any(v["severity"] == "error" for v in violations):
        return 1
    return 0


def _root(args: argparse.Namespace) -> Path:
    from pipecast.simulator.run import DEFAULT_RUNS

    return Path(args.run_dir) if args.run_dir else DEFAULT_RUNS


def cmd_runs(args: argparse.Namespace) -> int:
    from pipecast.simulator.run import RECORD, is_live

    root = _root(args)
    rows = []
    for folder in sorted(root.glob("*/")) if root.is_dir() else []:
        try:
            rec = json.loads((folder / RECORD).read_text())
        except (OSError, ValueError):
            continue
        steps = rec.get("steps", {})
        rows.append(
            {
                "run_id": rec.get("run_id", folder.name),
                "pipeline": rec.get("pipeline"),
                "status": "interrupted"
                if rec.get("status") == "running" and not is_live(folder)
                else rec.get("status"),
                "started": rec.get("started"),
                "steps": len(steps),
                "failed": sum(1 for e in steps.values() if e.get("status") == "failed"),
            }
        )
    rows.sort(key=lambda r: (r["started"] or "", r["run_id"]))
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
        return 0
    if not rows:
        print(f"no runs in {root}")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("pipeline", "status", "started", "steps", "failed")
    # The run id is what users copy into 'show' / '--resume': never cut it short.
    table.add_column("run id", no_wrap=True)
    for r in rows:
        started = (r["started"] or "").replace("T", " ").split(".")[0]
        table.add_row(r["pipeline"], r["status"], started, str(r["steps"]), str(r["failed"]), r["run_id"])
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 200))  # a pipe: no reason to wrap
    console.print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from pipecast.simulator.progress import print_summary
    from pipecast.simulator.run import read_record, run_folder

    record = read_record(run_folder(_root(args), args.run_id, "show"))
    if args.json:
        print(json.dumps(record, indent=2, sort_keys=True))
    else:
        print_summary(record)
    return 0
