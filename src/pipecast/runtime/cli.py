"""Command line of the step runtime.

``python -m pipecast.runtime run --spec '<StepSpec JSON>' --convention NAME [convention options]``
runs one step (exit 0 ok, 1 failed, 124 timed out on its last attempt, 2 usage error); on failure
the step's traceback is on stderr and the last stderr line is the one-line summary.
``python -m pipecast.runtime worker ...`` is the Step Functions callback worker and
``python -m pipecast.runtime image FILE`` renders a step image Dockerfile.

The main ``pipecast`` CLI exposes the same as ``pipecast step run ...``, ``pipecast worker ...``
and ``pipecast image ...`` through :func:`register` (which imports nothing heavy).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 124


# --------------------------------------------------------------------------- run


def _run_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", required=True, help="the StepSpec as compact JSON, or @FILE")
    parser.add_argument("--convention", required=True, help="how the target passes data (local, s3, ...)")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument(
        "--python-path",
        action="append",
        default=[],
        help="folder to put first on sys.path for python steps (repeatable; default $PIPECAST_PYTHON_PATH)",
    )
    parser.add_argument(
        "--containers",
        choices=("host", "docker", "podman"),
        default=os.environ.get("PIPECAST_CONTAINERS", "host"),
        help="how container steps run (default: on this host, as inside a step image)",
    )
    parser.add_argument("--log", type=Path, help="append the step's stdout/stderr to this file")


def _fail(message: str, code: int = EXIT_FAILED) -> int:
    # The last stderr line is what a target shows as the failure cause: keep it one line.
    print(" ".join(message.split("\n")), file=sys.stderr, flush=True)
    return code


def cmd_run(args: argparse.Namespace, rest: Sequence[str]) -> int:
    from pipecast.runtime import conventions
    from pipecast.runtime.conventions.base import ConventionError, parse_json_arg
    from pipecast.runtime.core import StepFailed, run_step
    from pipecast.runtime.spec import StepSpec

    try:
        conv_cls = conventions.load(args.convention)
    except (KeyError, ImportError) as exc:
        return _fail(f"pipecast runtime: {exc.args[0] if exc.args else exc}", EXIT_USAGE)
    conv_parser = argparse.ArgumentParser(
        prog=f"pipecast step run ... --convention {args.convention}", allow_abbrev=False
    )
    conv_cls.add_arguments(conv_parser)
    conv_args = conv_parser.parse_args(list(rest))
    try:
        spec_data = parse_json_arg(args.spec, "--spec")
        spec = StepSpec.model_validate(spec_data)
        convention = conv_cls.from_args(conv_args)
        spec = convention.specialise(spec)
    except ConventionError as exc:
        return _fail(f"pipecast runtime: {exc}", EXIT_USAGE)
    except ValueError as exc:  # pydantic ValidationError
        first = str(exc).splitlines()
        return _fail(f"pipecast runtime: invalid --spec: {' '.join(first[:3])}", EXIT_USAGE)
    python_path = list(args.python_path) or [
        p for p in os.environ.get("PIPECAST_PYTHON_PATH", "").split(os.pathsep) if p
    ]
    try:
        run_step(
            spec,
            convention,
            workdir=args.workdir,
            python_path=python_path,
            containers=args.containers,
            log_path=args.log,
        )
    except StepFailed as exc:
        return _fail(exc.summary, EXIT_TIMEOUT if exc.timed_out else EXIT_FAILED)
    except Exception as exc:  # a bug or an unreachable service: show everything, then one line
        traceback.print_exc()
        return _fail(f"step {spec.step} failed in the pipecast runtime: {type(exc).__name__}: {exc}")
    return EXIT_OK


# --------------------------------------------------------------------------- worker / image


def _worker_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queue-url", required=True, help="SQS queue the state machine sends tasks to")
    parser.add_argument(
        "--idle-exit",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exit after this long without messages",
    )
    parser.add_argument("--max-messages", type=int, default=None, metavar="N", help="exit after N messages")
    parser.add_argument("--concurrency", type=int, default=4, help="steps run at the same time (default 4)")
    parser.add_argument(
        "--heartbeat", type=float, default=30.0, metavar="SECONDS", help="SendTaskHeartbeat interval"
    )
    parser.add_argument("--python-path", action="append", default=[], help="as for 'run' (repeatable)")
    parser.add_argument(
        "--containers",
        choices=("host", "docker", "podman"),
        default=os.environ.get("PIPECAST_CONTAINERS", "host"),
    )
    parser.add_argument("--wait", type=int, default=5, help="SQS long-poll seconds (1-20, default 5)")


def cmd_worker(args: argparse.Namespace) -> int:
    from pipecast.runtime.worker import Worker

    python_path = list(args.python_path) or [
        p for p in os.environ.get("PIPECAST_PYTHON_PATH", "").split(os.pathsep) if p
    ]
    worker = Worker(
        args.queue_url,
        concurrency=args.concurrency,
        heartbeat=args.heartbeat,
        python_path=python_path,
        containers=args.containers,
        wait_seconds=args.wait,
    )
    worker.serve(idle_exit=args.idle_exit, max_messages=args.max_messages)
    return EXIT_OK


def _image_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the pipeline file")
    parser.add_argument("-o", "--output", type=Path, help="write the Dockerfile here (default: stdout)")
    parser.add_argument("--base-image", help="override the base image (default: defaults.image)")
    parser.add_argument(
        "--pipecast-spec",
        help="pip requirement for the runtime (default: the running pipecast version)",
    )
    parser.add_argument(
        "--with",
        dest="extra",
        action="append",
        default=[],
        metavar="REQ",
        help="extra pip requirement for the image, e.g. boto3 for AWS targets (repeatable)",
    )


def cmd_image(args: argparse.Namespace) -> int:
    from pipecast.diagnostics import UserError
    from pipecast.runtime.image import render_for_file

    try:
        text = render_for_file(
            args.file,
            base_image=args.base_image,
            pipecast_spec=args.pipecast_spec,
            extra_requirements=args.extra,
        )
    except UserError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_FAILED
    if args.output:
        from pipecast.io import atomic_write

        atomic_write(args.output, text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


# --------------------------------------------------------------------------- wiring


def register(subparsers: Any) -> None:
    """Add ``step``, ``worker`` and ``image`` to the main ``pipecast`` CLI (no heavy imports)."""
    step = subparsers.add_parser(
        "step",
        help="run one step inside a container (what compiled pipelines call)",
        description="Same as python -m pipecast.runtime: pipecast step run --spec JSON --convention NAME ...",
        add_help=False,
    )
    step.add_argument("argv", nargs=argparse.REMAINDER)
    step.set_defaults(handler=lambda a: main(a.argv), func=lambda a: main(a.argv))

    worker = subparsers.add_parser("worker", help="Step Functions callback worker (SQS waitForTaskToken)")
    _worker_parser(worker)
    worker.set_defaults(handler=cmd_worker, func=cmd_worker)

    image = subparsers.add_parser("image", help="render a step image Dockerfile for a pipeline")
    _image_parser(image)
    image.set_defaults(handler=cmd_image, func=cmd_image)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipecast.runtime", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub.add_parser("run", help="run one step", allow_abbrev=False))
    _worker_parser(sub.add_parser("worker", help="Step Functions callback worker"))
    _image_parser(sub.add_parser("image", help="render a step image Dockerfile"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args, rest = parser.parse_known_args(argv)
        if args.command != "run" and rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        if args.command == "run":
            return cmd_run(args, rest)
        if args.command == "worker":
            return cmd_worker(args)
        return cmd_image(args)
    except SystemExit as exc:  # argparse usage errors
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
