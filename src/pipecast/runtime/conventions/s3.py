"""``s3``: Step Functions with AWS Batch, and the callback worker.

Options:
    ``--inputs JSON``: input name → value; artifact inputs are ``s3://`` URIs (or ``file://``
    URIs / local paths; a list of them for a collected fan-out); ``@file`` reads a file.
    ``--artifact-prefix s3://bucket/prefix/step``: artifact outputs are uploaded under it
    (layout in :mod:`pipecast.runtime.s3io`); required when the step has artifact outputs.
    ``--result URI``: also write the result object to ``s3://...``, a local path, or ``-`` (stdout).

The result is one flat JSON object: parameter outputs by value, artifact outputs by URI,
e.g. ``{"rows": 5000, "table": "s3://bucket/prefix/step/table"}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pipecast.io import atomic_write
from pipecast.metrics import numbers_of
from pipecast.runtime import s3io
from pipecast.runtime.conventions.base import (
    Convention,
    ConventionError,
    Fetch,
    is_artifact_input,
    is_artifact_output,
    parse_json_arg,
    render_inputs,
)
from pipecast.runtime.conventions.local import merge_inputs
from pipecast.runtime.executor import AttemptResult
from pipecast.runtime.spec import StepSpec


def stage_artifacts(spec: StepSpec, values: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Replace each artifact input's URI (or list of URIs) by a local path (or list of them)."""
    staged = dict(values)
    for name, value in values.items():
        if not is_artifact_input(spec, name) or value is None:
            continue
        base = workdir / "inputs" / name
        if isinstance(value, list):
            staged[name] = [_fetch(v, base / str(i), name) for i, v in enumerate(value)]
        else:
            staged[name] = _fetch(value, base, name)
    return staged


def fetcher(workdir: Path) -> Fetch:
    """Downloads the artifacts inside built inputs (SPEC §19) under ``workdir``."""

    def fetch(name: str, label: str, uri: Any) -> str:
        return _fetch(uri, workdir / "inputs" / name / f"ref-{label}", name)

    return fetch


def _fetch(uri: Any, dest: Path, name: str) -> str:
    if not isinstance(uri, str):
        raise ConventionError(f"artifact input {name!r} must be a URI string, got {type(uri).__name__}")
    return str(s3io.download(uri, dest))


class S3Convention(Convention):
    name = "s3"

    def __init__(
        self, inputs: dict[str, Any], artifact_prefix: str | None = None, result: str | None = None
    ) -> None:
        self.inputs = inputs
        self.artifact_prefix = artifact_prefix
        self.result = result

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--inputs", default="{}", help="JSON object: input name -> value or URI")
        parser.add_argument("--artifact-prefix", help="s3://bucket/prefix under which artifacts are written")
        parser.add_argument("--result", help="also write the result JSON here (s3:// URI, path or '-')")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> S3Convention:
        return cls(parse_json_arg(args.inputs, "--inputs"), args.artifact_prefix, args.result)

    def stage_inputs(self, spec: StepSpec, workdir: Path) -> dict[str, Any]:
        if any(is_artifact_output(spec, n) for n in spec.outputs):
            if not self.artifact_prefix:
                raise ConventionError("the step writes artifacts: pass --artifact-prefix s3://bucket/prefix")
            s3io.split(self.artifact_prefix)
        return stage_artifacts(
            spec, merge_inputs(spec, render_inputs(self.inputs, fetcher(workdir))), workdir
        )

    def write_outputs(self, spec: StepSpec, result: AttemptResult, workdir: Path) -> dict[str, Any]:
        published: dict[str, Any] = {}
        for name, value in result.outputs.items():
            if is_artifact_output(spec, name):
                assert self.artifact_prefix is not None
                published[name] = s3io.upload(Path(value), self.artifact_prefix, name)
            else:
                published[name] = value
        # Not dump_json (sorted keys): a dict output keeps its stored key order (SPEC §22).
        text = json.dumps(published, indent=2, ensure_ascii=False) + "\n"
        numbers = numbers_of(spec.outputs, result.outputs)
        metrics = json.dumps(numbers) + "\n" if numbers is not None else None
        if self.result == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
        elif self.result and self.result.startswith("s3://"):
            s3io.put_text(self.result, text)
            if metrics is not None:  # SPEC §15: beside the result, read back by the state machine
                s3io.put_text(self.result.rsplit("/", 1)[0] + "/metrics.json", metrics)
        elif self.result:
            atomic_write(Path(self.result), text)
            if metrics is not None:
                atomic_write(Path(self.result).with_name("metrics.json"), metrics)
        return published
