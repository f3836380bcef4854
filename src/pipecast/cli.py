"""The ``pipecast`` command line.

Commands: ``validate``, ``compile``, ``export``, ``schema``, ``targets``, ``deploy``, plus
those that command modules add (``run`` from the simulator, ``runtime`` tools, ...). A
command module exports ``register(subparsers)``, which adds its sub-parsers and sets
``func=<handler(args) -> int | None>`` with ``set_defaults``; it must import nothing heavy
(the handler does). A module that fails to import is skipped, so the core commands always
work.

Exit codes: 0 ok, 1 the user's input is wrong, a bad option value included (no traceback;
``--debug`` shows one), 2 usage (unknown command or option, missing argument), 3 an internal error (a bug: please report it).

This module imports no cloud SDK and no backend at import time: ``pipecast validate`` and
``pipecast --help`` stay fast and work without the target packages.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipecast.diagnostics import COMMAND_LINE, Diagnostic, UserError

EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

#: Command modules that add sub-commands through ``register(subparsers)``.
COMMAND_MODULES = (
    "pipecast.simulator.cli",
    "pipecast.runtime.cli",
    "pipecast.viz.cli",
    "pipecast.verify.cli",
)
#: Entry-point group for third-party command modules (same contract).
COMMAND_GROUP = "pipecast.commands"


# ---------------------------------------------------------------------------- output


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)


def print_diagnostics(diags: Sequence[Diagnostic]) -> None:
    """Warnings and errors go to stderr, one block each."""
    for d in diags:
        _stderr(d.render())


def _summary(loaded: Any) -> dict[str, Any]:
    index = loaded.index
    nodes = list(index.walk())
    tasks = sum(1 for n in nodes if n.is_task) + (1 if index.finally_node else 0)
    groups = sum(1 for n in nodes if n.is_group)
    nesting = max((len(index.loops(n)) for n in nodes if n.is_task), default=0)
    return {
        "pipeline": loaded.pipeline.name,
        "steps": tasks,
        "groups": groups,
        "max_fan_out_nesting": nesting,
        "params": len(loaded.pipeline.params),
    }


def _color(text: str, code: str, stream: Any = None) -> str:
    """ANSI colour only when writing to a terminal and NO_COLOR is unset (https://no-color.org)."""
    import os

    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or not getattr(stream, "isatty", lambda: False)():
        return text
    return f"\033[{code}m{text}\033[0m"


def _summary_text(s: dict[str, Any]) -> str:
    return (
        f"{s['steps']} task step{'s' if s['steps'] != 1 else ''}, {s['groups']} group"
        f"{'s' if s['groups'] != 1 else ''}, fan-out nesting {s['max_fan_out_nesting']}"
    )


def number_option(
    flag: str, kind: type[int] | type[float] = int, *, minimum: float | None = None, example: str = "4"
) -> Callable[[str], Any]:
    """An argparse ``type=`` for a numeric option. A bad value is a user error naming the
    option and a fix (exit 1, like a bad ``--param``), not an argparse usage error (exit 2):
    argparse lets any exception other than ``ValueError``/``TypeError``/``ArgumentTypeError``
    out of ``parse_args``, and :func:`main` reports it."""
    what = "a whole number" if kind is int else "a finite number"
    if minimum is not None:
        what += f" of at least {minimum:g}"

    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            value = None
        if value is None or not math.isfinite(value) or (minimum is not None and value < minimum):
            raise UserError(
                Diagnostic(
                    f"{flag} {text!r}: expected {what}",
                    hint=f"for example {flag} {example}",
                    code="usage",
                    file=COMMAND_LINE,
                )
            )
        return value

    return convert


def _key_values(items: Sequence[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(
                Diagnostic(
                    f"{flag} {item!r} is not name=value",
                    hint=f"for example {flag} name=value",
                    code="usage",
                    file=COMMAND_LINE,
                )
            )
        out[key.strip()] = value
    return out


# ---------------------------------------------------------------------------- commands


def cmd_validate(args: argparse.Namespace) -> int:
    from pipecast.api import load_checked

    params = _key_values(args.param, "--param") if args.param else None
    reports = []
    failed = False
    for file in args.files:
        try:
            loaded = load_checked(file, params)
        except UserError as exc:
            if getattr(args, "debug", False):
                traceback.print_exc()
            failed = True
            reports.append({"file": file, "ok": False, "diagnostics": [d.to_dict() for d in exc.diagnostics]})
            if not args.json:
                print_diagnostics(exc.diagnostics)
                _stderr(
                    f"{file}: invalid ({len(exc.diagnostics)} error{'s' if len(exc.diagnostics) != 1 else ''})"
                )
            continue
        summary = _summary(loaded)
        reports.append(
            {
                "file": file,
                "ok": True,
                "diagnostics": [d.to_dict() for d in loaded.warnings],
                "summary": summary,
            }
        )
        if not args.json:
            print_diagnostics(loaded.warnings)
            print(
                f"{file}: {_color('ok', '32')}: pipeline {loaded.pipeline.name!r}: {_summary_text(summary)}"
            )
    if args.json:
        print(json.dumps(reports, indent=2, sort_keys=True))
    return EXIT_USER if failed else EXIT_OK


def cmd_compile(args: argparse.Namespace) -> int:
    from pipecast import api, registry

    loaded = api.load_checked(args.file)
    print_diagnostics(loaded.warnings)
    backend = registry.get(args.target)
    settings = api.load_settings(backend, Path(args.settings) if args.settings else None, args.set or [])
    result = api.compile_pipeline(loaded, args.target, settings, lenient=args.lenient)
    print_diagnostics(result.diagnostics)
    if args.check:
        # The target's own tools (statelint/asl-validator, protobuf + kfp loader, load_job,
        # DagBag) judge the output before anything is written.
        from pipecast.diagnostics import raise_if_errors

        with registry.extra_needed(args.target, "check", "--check"):
            checked = backend.validate_output(result.files)
        print_diagnostics([d for d in checked if d.severity != "error"])
        raise_if_errors(checked)
    out_dir = Path(args.output) if args.output else Path("build") / args.target
    written, removed = api.write_output_set(result, out_dir, f"{args.target}/{loaded.pipeline.name}")
    for path in removed:
        _stderr(f"removed {path} (written by the previous compile of this pipeline, not by this one)")
    summary = {
        **_summary(loaded),
        **result.summary,
        "target": args.target,
        "files": [str(p) for p in written],
    }
    if args.format == "json":
        summary["diagnostics"] = [d.to_dict() for d in [*loaded.warnings, *result.diagnostics]]
        print(json.dumps(summary, indent=2, sort_keys=True, default=str))
    else:
        print(
            f"{args.file}: {_color('compiled', '32')} for {args.target}: {_summary_text(summary)}; "
            f"wrote {len(written)} file{'s' if len(written) != 1 else ''} to {out_dir}"
        )
        for line in backend.summary_lines(result.summary):
            print(f"  {line}")
        if "runtime_images" in summary:  # SPEC §21: stock images need nothing from pipecast
            print(_runtime_images_text(summary["runtime_images"]))
        for path in written:
            print(f"  {path}")
    return EXIT_OK


def _runtime_images_text(images: dict[str, list[str]]) -> str:
    """Which images must contain the pipecast runtime (``pipecast image`` builds one)."""
    if not images:
        return "  images that need the pipecast runtime: none"
    lines = ["  images that need the pipecast runtime (pipecast image builds one):"]
    for image, steps in images.items():
        lines.append(f"    {image}: {', '.join(steps)}")
    return "\n".join(lines)


def cmd_export(args: argparse.Namespace) -> int:
    from pipecast.api import load_checked
    from pipecast.io import atomic_write, dump_json, dump_yaml

    loaded = load_checked(args.file)
    print_diagnostics(loaded.warnings)
    data = loaded.pipeline.to_data()
    out = args.output
    as_json = args.format == "json" or (args.format is None and out and out.endswith(".json"))
    text = dump_json(data) if as_json else dump_yaml(data)
    if not out or out == "-":
        sys.stdout.write(text)
    else:
        if Path(out).is_dir():
            raise UserError(
                Diagnostic(
                    f"export -o {out}: is a folder",
                    hint="name a file: OUT.yaml or OUT.json",
                    code="output",
                    file=COMMAND_LINE,
                )
            )
        atomic_write(Path(out), text)
        print(f"{args.file}: wrote {out}", file=sys.stderr)
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from pipecast.io import atomic_write, dump_json
    from pipecast.schema import component_schema, pipeline_schema

    text = dump_json(component_schema() if args.component else pipeline_schema())
    if args.output and args.output != "-":
        atomic_write(Path(args.output), text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _targets_table(args: argparse.Namespace) -> int:
    """``targets --table`` / ``--check-readme`` / ``--update-readme`` (pipecast.features_table)."""
    from pipecast import features_table

    if args.check_readme:
        if features_table.check_readme(args.check_readme):
            return EXIT_OK
        print(
            f"{args.check_readme}: the feature table is stale; run: {features_table.REFRESH}", file=sys.stderr
        )
        return EXIT_USER
    if args.update_readme:
        changed = features_table.update_readme(args.update_readme)
        print(
            f"{args.update_readme}: " + ("feature table updated" if changed else "up to date"),
            file=sys.stderr,
        )
        return EXIT_OK
    sys.stdout.write(features_table.render_table(args.format))
    from pipecast.registry import distribution

    for name in features_table.not_installed():
        print(f"note: target {name!r} is not installed (pip install {distribution(name)})", file=sys.stderr)
    return EXIT_OK


def cmd_targets(args: argparse.Namespace) -> int:
    from pipecast import registry
    from pipecast.backend import Feature

    if args.table or args.check_readme or args.update_readme:
        return _targets_table(args)
    rows: list[dict[str, Any]] = []
    for name in registry.available():
        try:
            backend = registry.get(name)
        except UserError as exc:
            rows.append({"name": name, "loadable": False, "error": exc.diagnostics[0].message})
            continue
        features = {}
        for feature in Feature:
            sup = backend.support(feature)
            features[feature.value] = {"level": sup.level, "note": sup.note, "instead": sup.instead}
        rows.append(
            {
                "name": name,
                "loadable": True,
                "title": backend.title or name,
                "docs": backend.docs_url,
                "settings": sorted(backend.settings_model.model_fields),
                "features": features,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
        return EXIT_OK
    if not rows:
        print("no targets installed")
        return EXIT_OK
    symbols = {"native": "yes", "runtime": "runtime", "approximate": "approx", "unsupported": "-"}
    loadable = [r for r in rows if r["loadable"]]
    for r in rows:
        if not r["loadable"]:
            print(f"{r['name']}: not loadable: {r['error']}")
    if loadable:
        width = max(len(f.value) for f in Feature)
        cols = [max(len(r["name"]), 7) for r in loadable]
        header = (
            "feature".ljust(width)
            + "  "
            + "  ".join(r["name"].ljust(c) for r, c in zip(loadable, cols, strict=True))
        )
        print(header)
        print("-" * len(header))
        for feature in Feature:
            cells = "  ".join(
                symbols[r["features"][feature.value]["level"]].ljust(c)
                for r, c in zip(loadable, cols, strict=True)
            )
            print(feature.value.ljust(width) + "  " + cells)
        print("\nyes: native; runtime: done by the pipecast step runtime; approx: only with --lenient")
    return EXIT_OK


def cmd_deploy(args: argparse.Namespace) -> int:
    from pipecast import api, registry
    from pipecast.passes.validate import check_params

    params = _key_values(args.param, "--param")
    loaded = api.load_checked(args.file)
    print_diagnostics(loaded.warnings)
    values = check_params(loaded.pipeline, params) if (args.run or params) else None
    backend = registry.get(args.target)
    settings = api.load_settings(backend, Path(args.settings) if args.settings else None, args.set or [])
    result = api.compile_pipeline(loaded, args.target, settings, lenient=args.lenient)
    print_diagnostics(result.diagnostics)
    try:
        with registry.extra_needed(args.target, "deploy", "deploy"):
            outcome = backend.deploy(loaded.pipeline, result.files, settings, run=args.run, params=values)
    except NotImplementedError as exc:
        raise UserError(
            Diagnostic(str(exc), hint="compile it and deploy with the target's own tools")
        ) from None
    if args.json:
        print(json.dumps(outcome, indent=2, sort_keys=True, default=str))
    elif outcome is not None:
        print(
            outcome
            if isinstance(outcome, str)
            else json.dumps(outcome, indent=2, sort_keys=True, default=str)
        )
    return EXIT_OK


# ---------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """Sub-parsers inherit this class: a value outside an option's ``choices`` is a user error
    naming the option and the choices (exit 1), as a bad number is (:func:`number_option`);
    an unknown command or option stays a usage error (exit 2)."""

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if (
            action.choices is None
            or value in action.choices
            or isinstance(action, argparse._SubParsersAction)
        ):
            super()._check_value(action, value)
            return
        flag = action.option_strings[-1] if action.option_strings else action.metavar or action.dest
        options = ", ".join(map(str, action.choices))
        raise UserError(
            Diagnostic(
                f"{flag} {value!r}: expected one of {options}",
                hint=f"for example {flag} {next(iter(action.choices))}",
                code="usage",
                file=COMMAND_LINE,
            )
        )


def _common() -> _Parser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks for errors",
    )
    return common


def _settings_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", "-t", required=True, help="a target name (see 'pipecast targets')")
    p.add_argument("--settings", metavar="FILE", help="target settings file (YAML or TOML)")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="set one target setting (dotted keys for nested ones); repeatable, wins over --settings",
    )
    p.add_argument("--lenient", action="store_true", help="accept approximations of unsupported features")


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = _Parser(
        prog="pipecast",
        description="Compile one ML pipeline for every installed orchestrator ('pipecast targets' "
        "lists them), or run it locally.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"pipecast {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("validate", parents=[common], help="check pipeline files against every rule")
    p.add_argument("files", nargs="+", metavar="FILE", help="pipeline files (.yaml, .yml, .json, .py)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="also check a run-time parameter")
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("compile", parents=[common], help="compile a pipeline for a target")
    p.add_argument("file", metavar="FILE")
    _settings_args(p)
    p.add_argument("-o", "--output", metavar="DIR", help="output folder (default: build/<target>)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="summary format")
    p.add_argument(
        "--check",
        action="store_true",
        help="check the output with the target's own validators before writing it",
    )
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("export", parents=[common], help="write the pipeline IR as YAML or JSON")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--output", metavar="OUT", help="OUT.yaml or OUT.json (default: YAML on stdout)")
    p.add_argument("--format", choices=("yaml", "json"), help="force the format")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("schema", parents=[common], help="print the JSON Schema of pipeline files")
    p.add_argument("-o", "--output", metavar="FILE", help="write it to a file")
    p.add_argument("--component", action="store_true", help="the schema of component files (SPEC §16)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("targets", parents=[common], help="list installed targets and their features")
    p.add_argument("--json", action="store_true")
    p.add_argument("--table", action="store_true", help="print the feature table (features x targets)")
    p.add_argument("--format", choices=("markdown", "text"), default="markdown", help="table format")
    p.add_argument("--check-readme", metavar="FILE", help="exit 1 when FILE's embedded table is stale")
    p.add_argument("--update-readme", metavar="FILE", help="rewrite the table embedded in FILE")
    p.set_defaults(func=cmd_targets)

    p = sub.add_parser("deploy", parents=[common], help="create or update the pipeline on a target")
    p.add_argument("file", metavar="FILE")
    _settings_args(p)
    p.add_argument("--run", action="store_true", help="also start a run")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="run-time parameter")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_deploy)

    _register_plugins(sub, common)
    return parser


def _register_plugins(sub: Any, common: argparse.ArgumentParser) -> None:
    modules: list[Any] = []
    for name in COMMAND_MODULES:
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            continue  # not built / not installed: the core commands still work
    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group=COMMAND_GROUP):
            try:
                modules.append(ep.load())
            except Exception:  # a broken plugin must not break the CLI
                continue
    except Exception:
        pass
    for module in modules:
        register: Callable[..., Any] | None = getattr(module, "register", None)
        if register is None:
            continue
        try:
            register(sub)
        except Exception as exc:
            _stderr(
                f"warning: command module {getattr(module, '__name__', module)!r} failed to register: {exc}"
            )


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("pipecast")
    except Exception:
        return "unknown"


# ---------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version (0) or usage errors (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    except UserError as exc:  # a bad option value (see number_option)
        print_diagnostics(exc.diagnostics)
        return EXIT_USER
    debug = bool(getattr(args, "debug", False))
    func = getattr(args, "func", None) or getattr(args, "handler", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code = func(args)
    except UserError as exc:
        if debug:
            traceback.print_exc()
        print_diagnostics(exc.diagnostics)
        return EXIT_USER
    except KeyboardInterrupt:
        _stderr("interrupted")
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:
        # A path the user gave (an output folder, a run folder) that cannot be written or read:
        # a full disk, a read-only file system, a file where a folder is expected.
        if debug:
            traceback.print_exc()
        where = f"{exc.filename}: " if exc.filename else ""
        print_diagnostics(
            [
                Diagnostic(
                    f"cannot use {where}{exc.strerror or exc}",
                    hint="check the paths given with -o/--output/--run-dir: a folder you can write to, "
                    "on a disk with free space",
                    code="io",
                )
            ]
        )
        return EXIT_USER
    except Exception as exc:
        if debug:
            traceback.print_exc()
        _stderr(
            f"pipecast: internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in pipecast, please report it (run again with --debug for the traceback)."
        )
        return EXIT_INTERNAL
    return EXIT_OK if code is None else int(code)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
