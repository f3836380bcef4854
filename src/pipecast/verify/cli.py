"""``pipecast verify``: nothing heavy is imported until the handler runs.

Exit codes: 0 the simulator and the target's local engine agree, 1 they differ (or the
input was wrong, an engine is missing, or the engine did not finish in time), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``verify`` to the ``pipecast`` parser."""
    from pipecast.cli import number_option

    p = subparsers.add_parser(
        "verify",
        help="run the compiled pipeline on the target's own local engine and compare with the simulator",
    )
    p.add_argument("file", metavar="PIPELINE", help="pipeline file (.yaml/.json/.py)")
    p.add_argument(
        "--target", "-t", required=True, help="an installed target ('pipecast targets' lists them)"
    )
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="parameter value (repeatable)")
    p.add_argument(
        "--fail",
        action="append",
        metavar="STEP[:N]",
        help="in both runs, fail STEP's first N attempts (all if no N); repeatable",
    )
    p.add_argument("--json", action="store_true", help="print the comparison as JSON (no progress display)")
    p.add_argument(
        "--report",
        nargs="?",
        const="",
        metavar="FILE",
        help="write an HTML page with both runs' timelines (default: verify-<pipeline>-<target>.html)",
    )
    p.add_argument(
        "--timeout",
        type=number_option("--timeout", float, minimum=1, example="900"),
        default=600.0,
        metavar="SECONDS",
        help="give up after this long (default 600)",
    )
    p.add_argument("--settings", metavar="FILE", help="target settings file (YAML or TOML)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="one target setting; repeatable")
    p.add_argument("--secrets", metavar="FILE", help="dotenv file of secret-name=value for both runs")
    p.add_argument("--lenient", action="store_true", help="accept approximations of unsupported features")
    p.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    from pipecast import api, registry
    from pipecast.cli import _key_values, print_diagnostics
    from pipecast.verify.run import verify

    params = _key_values(args.param, "--param")
    loaded = api.load_checked(args.file)
    if not args.json:
        print_diagnostics(loaded.warnings)
    backend = registry.get(args.target)
    settings: dict[str, Any] = {}
    if args.settings or args.set:
        model = api.load_settings(backend, Path(args.settings) if args.settings else None, args.set or [])
        settings = model.model_dump(exclude_unset=True)
    secrets = None
    if args.secrets:
        from pipecast.simulator.secrets import read_dotenv

        secrets = read_dotenv(Path(args.secrets))
    with _progress(args) as progress:
        result = verify(
            loaded,
            args.target,
            params=params,
            fail=args.fail,
            settings=settings,
            secrets=secrets,
            timeout=args.timeout,
            lenient=args.lenient,
            progress=progress,
        )
    report = None
    if args.report is not None:
        from pipecast.io import atomic_write
        from pipecast.verify.report import render

        report = Path(args.report or f"verify-{result.pipeline}-{result.target}.html")
        atomic_write(report, render(result))
    if args.json:
        data = result.to_dict()
        if report is not None:
            data["report"] = str(report)
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        print_comparison(result)
        if report is not None:
            print(f"report: {report}")
    return 0 if result.agree else 1


class _progress:
    """A rich status line on a terminal (stderr); nothing with --json or when piped."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.live = not args.json and sys.stderr.isatty()
        self.status: Any = None

    def __enter__(self) -> Any:
        if not self.live:
            return lambda _msg: None
        from rich.console import Console

        self.status = Console(stderr=True).status("verify: starting")
        self.status.start()
        return lambda msg: self.status.update(f"verify: {msg}")

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.stop()


def print_comparison(result: Any) -> None:
    """The side-by-side table, differences highlighted, then the verdict."""
    from rich.console import Console
    from rich.table import Table

    from pipecast.verify.records import MISSING, show

    console = Console(highlight=False, soft_wrap=True)
    bad = {(d.where, d.field) for d in result.differences}
    console.print(f"verify {result.pipeline} on {result.target}: {result.engine}")
    for note in result.notes:
        console.print(f"  note: {note}")
    table = Table(show_edge=False, pad_edge=False, box=None)
    table.add_column("")
    table.add_column("field")
    table.add_column(f"simulator ({result.simulator.seconds:.1f} s)")
    table.add_column(f"{result.target} ({result.local.seconds:.1f} s)")
    sim, got = result.simulator.record, result.local.record

    def row(where: str, field: str, a: Any, b: Any, label: str = "") -> None:
        differs = (where, field) in bad
        style = "bold red" if differs else None
        mark = "≠" if differs else ""
        if field in ("status", "attempts"):
            a, b = (MISSING if v == MISSING else v for v in (a, b))
            table.add_row(mark, f"{label} {field}", str(a), str(b), style=style)
            return
        table.add_row(mark, f"{label} {field}", show(a), show(b), style=style)

    if sim.get("status") is not None or got.get("status") is not None:
        row("pipeline", "status", sim.get("status"), got.get("status"), "pipeline")
    so, go = sim.get("outputs") or {}, got.get("outputs") or {}
    for name in sorted(set(so) | set(go)):
        row("pipeline", f"output {name}", so.get(name, MISSING), go.get(name, MISSING), "pipeline")
    from pipecast.verify.records import _key_order

    ss, gs = sim.get("steps") or {}, got.get("steps") or {}
    for key in sorted(set(ss) | set(gs), key=_key_order):
        a, b = ss.get(key) or {}, gs.get(key) or {}
        where = f"step {key}"
        row(where, "status", a.get("status", MISSING), b.get("status", MISSING), key)
        if "attempts" in a or "attempts" in b:
            row(where, "attempts", a.get("attempts", MISSING), b.get("attempts", MISSING), key)
        ao, bo = a.get("outputs") or {}, b.get("outputs") or {}
        unknown = "<not reported>" if b.get("derived") else MISSING
        for name in sorted(set(ao) | set(bo)):
            row(where, f"output {name}", ao.get(name, MISSING), bo.get(name, unknown), key)
    console.print(table)
    if result.agree:
        console.print(f"[green]agree[/green]: {result.target} did what the simulator did")
    else:
        n = len(result.differences)
        console.print(f"[bold red]differ[/bold red]: {n} difference{'s' if n != 1 else ''}")
        for d in result.differences:
            console.print("  " + d.render(result.target), markup=False)
