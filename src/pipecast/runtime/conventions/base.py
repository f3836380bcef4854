"""The interface between the runtime core and one target's way of passing data.

The core (:mod:`pipecast.runtime.core`) does the same thing on every target::

    conv = MyConvention.from_args(args)             # parsed from the command line
    inputs = conv.stage_inputs(spec, workdir)       # values + local paths of artifacts
    paths = conv.output_paths(spec, workdir)        # where the step writes its outputs
    ... retry loop of executor.run_attempt(...) ...
    conv.write_outputs(spec, result, workdir)       # publish them where the target reads
    # or, when the last attempt failed:
    conv.write_failure(spec, result, workdir)

A convention implements those four methods and nothing else: no retries, no timeouts,
no secrets, no logging (the core does them identically for every target).

Input values: ``spec.inputs[name]`` says each input's static type (``Dataset``,
``list[Model]``, ``int``, ``any``...) and holds literal values (``literal=True``); the
convention supplies the others. :meth:`Convention.literal_inputs`, :func:`parse_value` and
:func:`is_artifact_input` are the shared helpers; artifacts arrive as local paths (``str``)
or, for a collected fan-out, a list of local paths.
"""

from __future__ import annotations

import abc
import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from pipecast.passes.analysis import ANY, is_artifact_type
from pipecast.runtime._values import is_artifact
from pipecast.runtime.executor import AttemptResult
from pipecast.runtime.spec import StepSpec


class ConventionError(Exception):
    """The target handed the runtime something it cannot use (missing input, bad URI, bad JSON).

    The core reports it like a step failure (non-zero exit, one-line summary), without retrying.
    """


def is_artifact_input(spec: StepSpec, name: str) -> bool:
    """Whether input ``name`` carries artifacts (a path/URI, or a list of them)."""
    return is_artifact_type(spec.inputs[name].type)


def is_artifact_output(spec: StepSpec, name: str) -> bool:
    return is_artifact(spec.outputs[name])


def parse_value(type_name: str, text: str) -> Any:
    """A value a target passed as text: raw for ``str``, JSON for the other types.

    For ``any`` (a type the compiler could not know), JSON if it parses, else the raw text.
    """
    if type_name == "str":
        return text
    try:
        return json.loads(text)
    except ValueError:
        if type_name == ANY:
            return text
        raise ConventionError(f"expected a JSON {type_name}, got {text[:60]!r}") from None


def parse_json_arg(text: str, what: str) -> Any:
    """A JSON command-line argument, or ``@file`` / ``@s3://bucket/key`` to read it from there."""
    if text.startswith("@s3://"):
        from pipecast.runtime import s3io

        bucket, key = s3io.split(text[1:])
        try:
            text = s3io.client().get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        except Exception as exc:
            raise ConventionError(f"cannot read {what} from {text[1:]}: {exc}") from None
    elif text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConventionError(f"cannot read {what} from {text[1:]}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConventionError(f"{what} is not valid JSON: {exc}") from None


class Convention(abc.ABC):
    """How one target passes inputs to a step and reads its outputs back."""

    #: The ``--convention`` name.
    name: ClassVar[str]

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add this convention's own command-line options (they follow ``--convention NAME``)."""
        return None

    @classmethod
    @abc.abstractmethod
    def from_args(cls, args: argparse.Namespace) -> Convention:
        """Build the convention from the parsed options of :meth:`add_arguments`."""

    def specialise(self, spec: StepSpec) -> StepSpec:
        """The spec of this run: a target that shares one spec between the uses of a component
        file (SPEC §16) hands over what differs per use (the step name) at run time."""
        return spec

    @staticmethod
    def literal_inputs(spec: StepSpec) -> dict[str, Any]:
        """Inputs whose value is written in the pipeline (embedded in the spec)."""
        return {name: i.value for name, i in spec.inputs.items() if i.literal}

    @abc.abstractmethod
    def stage_inputs(self, spec: StepSpec, workdir: Path) -> dict[str, Any]:
        """Every input of the step: parameter values, and artifacts as local paths.

        Download or locate artifacts here. Raise :class:`ConventionError` for missing inputs.
        """

    def output_paths(self, spec: StepSpec, workdir: Path) -> dict[str, Path] | None:
        """Where the step writes each output locally (``None``: ``workdir/outputs/<name>``).

        Parameter outputs are written there only by container steps; the executor returns
        every parameter value either way.
        """
        return None

    @abc.abstractmethod
    def write_outputs(self, spec: StepSpec, result: AttemptResult, workdir: Path) -> Any:
        """Publish a successful attempt's outputs where the target reads them.

        Returns what the target receives as the step's result (for example the JSON object
        the callback worker sends with ``SendTaskSuccess``); ``None`` if nothing.
        """

    def write_failure(self, spec: StepSpec, error: str, workdir: Path) -> None:
        """Record a failure where the target shows it (optional; the core already prints it)."""
        return None

    def skip_reason(self, spec: StepSpec) -> str | None:
        """Why this step must not run here (SPEC §5/§22), for targets whose lowering starts jobs
        that are skipped at run time (Azure ML's gated ``when`` branches); ``None``: run it."""
        return None

    def write_skipped(self, spec: StepSpec, workdir: Path) -> None:
        """Publish "skipped" markers on every output, so that readers skip in turn (SPEC §22)."""
        raise NotImplementedError(f"convention {self.name!r} never skips a step")


# --------------------------------------------------------------------------- folder layout
#
# Some targets store every artifact as a folder (a SageMaker ProcessingOutput, an S3 prefix).
# A file artifact is then kept as ``<folder>/<file name>`` next to a small marker naming it,
# so the next step receives the file itself again, not a folder holding it.

MARKER = ".pipecast-artifact.json"


def store_in_folder(source: Path, folder: Path) -> None:
    """Put the artifact at ``source`` (a file or a folder) into ``folder``."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, folder, dirs_exist_ok=True)
    else:
        shutil.copy2(source, folder / source.name)
        (folder / MARKER).write_text(json.dumps({"file": source.name}), encoding="utf-8")


def locate_in_folder(folder: Path) -> Path:
    """The artifact stored in ``folder`` by :func:`store_in_folder` (the file, or the folder)."""
    marker = folder / MARKER
    if marker.is_file():
        try:
            name = json.loads(marker.read_text(encoding="utf-8"))["file"]
        except (ValueError, KeyError, TypeError):
            raise ConventionError(f"corrupt artifact marker {marker}") from None
        if "/" in name or name in ("", ".", ".."):
            raise ConventionError(f"artifact marker {marker} names an invalid file {name!r}")
        return folder / name
    return folder


#: Key of an input value the runtime renders itself: ``{RENDER_KEY: template, "values":
#: {ref path: value}}``. Step Functions sends a mixed string this way when it holds a value
#: that is not known to be a string: ASL intrinsics cannot tell a string from a number at run
#: time, nor write compact JSON with keys in their stored order (SPEC §22).
RENDER_KEY = "__pipecast_render"
#: Key of an input the runtime builds: a list or mapping literal holding references (SPEC
#: §19) as JSON text (so its keys keep their stored order), with ``"values"`` as above and
#: ``"artifacts"``, the ref paths whose values are artifact URIs to download.
BUILD_KEY = "__pipecast_build"

#: Downloads one artifact a built input names: (input name, a label unique within the input,
#: URI) → local path.
Fetch = Callable[[str, str, Any], Any]


def render_inputs(inputs: dict[str, Any], fetch: Fetch | None = None) -> dict[str, Any]:
    """Inputs with every :data:`RENDER_KEY` value rendered (SPEC §4/§22 mixed strings) and
    every :data:`BUILD_KEY` value built (SPEC §19), its artifacts fetched by ``fetch``."""
    from pipecast.runtime.spec_text import render_template

    out = dict(inputs)
    for name, value in inputs.items():
        if not (isinstance(value, dict) and (RENDER_KEY in value or BUILD_KEY in value)):
            continue
        values: dict[str, Any] = dict(value.get("values") or {})
        if BUILD_KEY in value:
            try:
                template = json.loads(value[BUILD_KEY])
            except (TypeError, ValueError):
                raise ConventionError(f"input {name!r}: the value to build is not JSON text") from None
            for i, path in enumerate(value.get("artifacts") or []):
                if fetch is not None and values.get(path) is not None:
                    found = values[path]
                    values[path] = (
                        [fetch(name, f"{i}-{j}", u) for j, u in enumerate(found)]
                        if isinstance(found, list)
                        else fetch(name, str(i), found)
                    )
        else:
            template = value[RENDER_KEY]

        def lookup(ref: Any, v: dict[str, Any] = values) -> Any:
            return v[ref.path]

        try:
            out[name] = render_template(template, lookup)
        except KeyError as exc:
            raise ConventionError(f"input {name!r}: no value for {{{{ {exc.args[0]} }}}}") from None
    return out
