"""``local``: everything given as JSON on the command line; used by tests and by hand.

Options:
    ``--inputs JSON``: input name → value (artifact inputs: local paths); ``@file`` reads a file.
    ``--outputs JSON``: output name → local path to write (default ``<workdir>/outputs/<name>``).
    ``--result PATH``: write the outputs as a JSON object (parameter values, artifact paths);
    ``-`` prints it on stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pipecast.io import atomic_write, dump_json
from pipecast.runtime.conventions.base import Convention, ConventionError, parse_json_arg
from pipecast.runtime.executor import AttemptResult
from pipecast.runtime.spec import StepSpec


def check_names(given: dict[str, Any], declared: dict[str, Any], what: str) -> None:
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ConventionError(
            f"unknown {what} {', '.join(map(repr, unknown))}; the step declares: "
            + (", ".join(declared) or "none")
        )


def merge_inputs(spec: StepSpec, given: dict[str, Any]) -> dict[str, Any]:
    """Literal inputs from the spec, plus the given ones; every input must have a value."""
    if not isinstance(given, dict):
        raise ConventionError("--inputs must be a JSON object of input name -> value")
    check_names(given, spec.inputs, "input")
    values = {**Convention.literal_inputs(spec), **given}
    missing = [n for n in spec.inputs if n not in values]
    if missing:
        raise ConventionError(f"no value for input {', '.join(map(repr, missing))}; pass it in --inputs")
    return values


class LocalConvention(Convention):
    name = "local"

    def __init__(
        self, inputs: dict[str, Any], outputs: dict[str, str] | None = None, result: str | None = None
    ) -> None:
        self.inputs = inputs
        self.outputs = outputs or {}
        self.result = result

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--inputs", default="{}", help="JSON object: input name -> value or local path")
        parser.add_argument("--outputs", default="{}", help="JSON object: output name -> local path")
        parser.add_argument("--result", help="write the outputs JSON here ('-' for stdout)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> LocalConvention:
        return cls(
            parse_json_arg(args.inputs, "--inputs"),
            parse_json_arg(args.outputs, "--outputs"),
            args.result,
        )

    def stage_inputs(self, spec: StepSpec, workdir: Path) -> dict[str, Any]:
        return merge_inputs(spec, self.inputs)

    def output_paths(self, spec: StepSpec, workdir: Path) -> dict[str, Path] | None:
        if not isinstance(self.outputs, dict):
            raise ConventionError("--outputs must be a JSON object of output name -> path")
        check_names(self.outputs, spec.outputs, "output")
        return {name: Path(path).resolve() for name, path in self.outputs.items()}

    def write_outputs(self, spec: StepSpec, result: AttemptResult, workdir: Path) -> dict[str, Any]:
        outputs = dict(result.outputs)
        if self.result == "-":
            sys.stdout.write(dump_json(outputs))
            sys.stdout.flush()
        elif self.result:
            atomic_write(Path(self.result), dump_json(outputs))
        return outputs
