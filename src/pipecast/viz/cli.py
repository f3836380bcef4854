"""``pipecast graph``, ``pipecast report``, ``pipecast init`` and ``pipecast completion``.

Registered through ``register(subparsers)`` (see :mod:`pipecast.cli`); nothing heavy is
imported until a handler runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

FORMATS = ("mermaid", "dot", "html")
SUFFIX_FORMATS = {
    ".mmd": "mermaid",
    ".mermaid": "mermaid",
    ".md": "mermaid",
    ".dot": "dot",
    ".gv": "dot",
    ".html": "html",
    ".htm": "html",
}


def register(subparsers: Any) -> None:
    """Add the picture, scaffold and completion commands to the ``pipecast`` parser."""
    p = subparsers.add_parser("graph", help="draw a pipeline: Mermaid, Graphviz DOT or an HTML page")
    p.add_argument("file", metavar="FILE", help="pipeline file (.yaml/.yml/.json/.py)")
    p.add_argument(
        "--format",
        "-f",
        choices=FORMATS,
        help="output format (default: from the -o suffix, else mermaid)",
    )
    p.add_argument("-o", "--output", metavar="OUT", help="write to a file (default: stdout)")
    p.set_defaults(func=cmd_graph)

    p = subparsers.add_parser("report", help="write an HTML report of a local run")
    p.add_argument("run_id", metavar="RUN_ID", help="a run id (see 'pipecast runs') or a run folder")
    p.add_argument("--run-dir", metavar="DIR", help="runs root (default .pipecast/runs)")
    p.add_argument(
        "-o", "--output", metavar="FILE", help="where to write it (default: <run folder>/report.html)"
    )
    p.set_defaults(func=cmd_report)

    p = subparsers.add_parser("init", help="create a new project: pipeline, step code, tests, settings")
    p.add_argument("name", metavar="NAME", help="project (and pipeline) name, e.g. churn-model")
    p.add_argument(
        "--example",
        choices=("churn", "sweep", "containers"),
        default="churn",
        help="which example to start from (default: churn)",
    )
    p.add_argument("--dir", metavar="DIR", help="target folder (default: ./NAME)")
    p.set_defaults(func=cmd_init)

    p = subparsers.add_parser("completion", help="print a shell completion script")
    p.add_argument("shell", choices=("bash", "zsh", "fish"))
    p.set_defaults(func=cmd_completion)


def _write(text: str, output: str | None, what: str) -> None:
    if output and output != "-":
        from pipecast.io import atomic_write

        atomic_write(Path(output), text)
        print(f"wrote {what} to {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def cmd_graph(args: argparse.Namespace) -> int:
    from pipecast.api import load_checked
    from pipecast.cli import print_diagnostics
    from pipecast.viz.model import build

    fmt = args.format
    if fmt is None and args.output:
        fmt = SUFFIX_FORMATS.get(Path(args.output).suffix.lower())
    fmt = fmt or "mermaid"
    loaded = load_checked(args.file)
    print_diagnostics(loaded.warnings)
    graph = build(loaded.index)
    if fmt == "mermaid":
        from pipecast.viz import mermaid

        text = mermaid.render(graph)
    elif fmt == "dot":
        from pipecast.viz import dot

        text = dot.render(graph)
    else:
        from pipecast.viz import html

        text = html.render(graph)
    _write(text, args.output, f"the {fmt} graph")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pipecast.viz.report import find_run, write_report

    folder = find_run(args.run_id, Path(args.run_dir) if args.run_dir else None)
    path = write_report(folder, Path(args.output) if args.output else None)
    print(path)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from pipecast.scaffold import RUN_FLAGS, create

    target = Path(args.dir) if args.dir else Path(args.name)
    written = create(args.name, target, example=args.example)
    print(f"created {target}/ from the {args.example} example ({len(written)} files)")
    print("next:")
    print(f"  cd {target}")
    print("  python -m pytest                       # run the pipeline in the simulator")
    print(f"  pipecast run pipeline.yaml{RUN_FLAGS[args.example]}  # or run it yourself")
    for settings in sorted((target / "settings").glob("*.yaml"))[:1]:
        print(
            f"  pipecast compile pipeline.yaml --target {settings.stem} --settings settings/{settings.name}"
        )
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    from pipecast.cli import build_parser
    from pipecast.viz.completion import script

    sys.stdout.write(script(build_parser(), args.shell))
    return 0
