"""``sagemaker``: Step Functions running a step as a SageMaker processing job.

The job maps S3 to local folders under ``--root`` (default ``/opt/ml/processing``, or
``$PIPECAST_SAGEMAKER_ROOT``):

* artifact input ``X``: ``<root>/input/X`` (a ProcessingInput with that ``LocalPath``); a file
  artifact is the one file its folder's marker names (see ``conventions.base.MARKER``). An
  artifact input may instead be given as an ``s3://`` URI (or a list of them) in ``--inputs``;
  it is then downloaded with boto3 (collected fan-out results need this).
* parameter inputs: ``--inputs JSON`` (name → value; ``@file`` reads a file).
* artifact output ``Y``: ``<root>/output/Y`` (a ProcessingOutput with that ``LocalPath``); a file
  artifact is stored as ``<root>/output/Y/Y`` plus the marker.
* parameter outputs: ``<root>/output/pipecast-outputs/outputs.json``, one JSON object
  ``{name: value}``. Declare a ProcessingOutput ``pipecast-outputs`` for it; the state machine
  reads the object from S3 (``aws-sdk:s3:getObject``) to use the values.
* on failure, ``<root>/output/pipecast-outputs/error.txt`` holds the one-line summary.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from pipecast.io import atomic_write
from pipecast.metrics import numbers_of
from pipecast.runtime.conventions.base import (
    Convention,
    ConventionError,
    is_artifact_input,
    is_artifact_output,
    locate_in_folder,
    parse_json_arg,
    render_inputs,
    store_in_folder,
)
from pipecast.runtime.conventions.local import check_names
from pipecast.runtime.conventions.s3 import fetcher, stage_artifacts
from pipecast.runtime.executor import AttemptResult
from pipecast.runtime.spec import StepSpec

DEFAULT_ROOT = "/opt/ml/processing"
RESULT_FOLDER = "pipecast-outputs"
#: Beside the outputs file: each Metrics output's numbers (SPEC §15), {output: {name: float}}.
METRICS_FILE = "metrics.json"


class SageMakerConvention(Convention):
    name = "sagemaker"

    def __init__(self, inputs: dict[str, Any], root: Path) -> None:
        self.inputs = inputs
        self.root = root

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--inputs", default="{}", help="JSON object: parameter input name -> value")
        parser.add_argument(
            "--root",
            default=os.environ.get("PIPECAST_SAGEMAKER_ROOT", DEFAULT_ROOT),
            help=f"processing folder root (default {DEFAULT_ROOT})",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SageMakerConvention:
        return cls(parse_json_arg(args.inputs, "--inputs"), Path(args.root))

    @property
    def result_path(self) -> Path:
        return self.root / "output" / RESULT_FOLDER / "outputs.json"

    def stage_inputs(self, spec: StepSpec, workdir: Path) -> dict[str, Any]:
        if not isinstance(self.inputs, dict):
            raise ConventionError("--inputs must be a JSON object of input name -> value")
        check_names(self.inputs, spec.inputs, "input")
        values = {**self.literal_inputs(spec), **render_inputs(self.inputs, fetcher(workdir))}
        values = stage_artifacts(spec, values, workdir)
        for name in spec.inputs:
            if name in values:
                continue
            if is_artifact_input(spec, name):
                folder = self.root / "input" / name
                if not folder.is_dir():
                    raise ConventionError(
                        f"artifact input {name!r} is missing: no folder {folder} "
                        f"(map a ProcessingInput to LocalPath {folder})"
                    )
                values[name] = str(locate_in_folder(folder))
            else:
                raise ConventionError(f"no value for input {name!r}; pass it in --inputs")
        return values

    def write_outputs(self, spec: StepSpec, result: AttemptResult, workdir: Path) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for name, value in result.outputs.items():
            if is_artifact_output(spec, name):
                folder = self.root / "output" / name
                if folder.exists():
                    # SageMaker creates the folder empty; clear leftovers of a local rerun.
                    shutil.rmtree(folder)
                store_in_folder(Path(value), folder)
            else:
                params[name] = value
        # Not dump_json (sorted keys): a dict output keeps its stored key order (SPEC §22).
        atomic_write(self.result_path, json.dumps(params, indent=2, ensure_ascii=False) + "\n")
        numbers = numbers_of(spec.outputs, result.outputs)
        if numbers is not None:  # SPEC §15: read back by the state machine for conditions/inputs
            atomic_write(self.result_path.with_name(METRICS_FILE), json.dumps(numbers) + "\n")
        return params

    def write_failure(self, spec: StepSpec, error: str, workdir: Path) -> None:
        # A read-only root must not hide the step's own failure.
        with contextlib.suppress(OSError):
            atomic_write(self.result_path.with_name("error.txt"), error + "\n")
