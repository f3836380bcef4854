"""``kfp``: the KFP v2 executor protocol (Vertex AI Pipelines, Kubeflow Pipelines, kfp.local).

The backend runs ``python -m pipecast.runtime run --spec ... --convention kfp
--executor-input {{$}} [--templates JSON]``; the orchestrator replaces ``{{$}}`` with the
ExecutorInput JSON (https://github.com/kubeflow/pipelines/blob/master/api/v2alpha1/pipeline_spec.proto,
``ExecutorInput``):

* ``inputs.parameterValues``: parameter inputs. Numbers are protobuf doubles, so values are
  converted back to the declared type (``int``). Lists, dicts and ints that steps produce travel
  as JSON text (KFP type ``STRING``: a double holds an int exactly only up to 2**53, SPEC §22)
  and are decoded exactly by their declared type (the inputs
  named in ``--json-inputs``; collected loop outputs are lists of such texts); native lists
  and dicts (pipeline parameters) get their integral numbers back as ints.
* ``inputs.artifacts[name].artifacts[].uri``: artifact inputs; ``gs://b/p`` is read at
  ``/gcs/b/p`` (Cloud Storage FUSE on Vertex), other URIs (kfp.local) are local paths.
* ``outputs.artifacts[name].artifacts[0].uri``: where an artifact output goes (same mapping).
* ``outputs.outputFile``: the ``executor_output.json`` the step writes its parameter outputs to;
  list and dict outputs are written as JSON text. When the component declares an output
  ``<name>--items``, the list output ``<name>`` is also written there as a native list (a loop
  iterates it; compound items as JSON text). A declared ``<metrics output>-metric-<name>``
  gets that metric of the ``Metrics`` output as a float (SPEC §15).

``--templates`` holds the inputs the runtime renders itself (mixed strings, ``pipeline.*``,
loop-item keys): ``{input: {"template": str, "refs": {path: [channel input, key|null, type]}}}``
(the type decodes JSON-text channels and converts native numbers back: a float ``3.0``
arrives as ``3``).
``--when`` (``{"when": text, "refs": {...}}``, refs as in ``--templates``) is the condition
of a step the compiler runs as a plain task (a ``when`` step whose outputs are read beyond its
DAG: a KFP DAG output or task input from a task whose condition was false has no value). The
runtime evaluates it; when false it runs no user code and publishes :data:`SKIPPED` on every
parameter output (an artifact output gets the ``pipecast_skipped`` metadata), and its float and
bool outputs travel as JSON text so that the marker is a value of the declared type (a string).
A collected list (a ``for_each`` group output) leaves marked items out when a step reads it
(docs/semantics.md), and a step reading a marked value directly is skipped too (SPEC §22).

``pipeline.status`` (and a group finally's ``group.status``, SPEC §18) arrives as KFP's
``PipelineTaskFinalStatus`` and becomes ``"succeeded"``/``"failed"``. Set ``PIPECAST_KFP_TRACE`` to a file to append one JSON line per
attempt (step, task folder, status, outputs): a debugging aid the tests also read.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipecast.passes.analysis import ANY, element_type
from pipecast.runtime.conventions.base import (
    Convention,
    ConventionError,
    is_artifact_input,
    is_artifact_output,
    parse_json_arg,
)
from pipecast.runtime.executor import AttemptResult
from pipecast.runtime.spec import StepSpec
from pipecast.runtime.spec_text import render_template

_MOUNTS = (("gs://", "/gcs/"), ("s3://", "/s3/"), ("minio://", "/minio/"))
TRACE_ENV = "PIPECAST_KFP_TRACE"
#: The task input that names the step a shared component executor runs for (SPEC §16).
STEP_INPUT = "pipecast--step"
#: Suffix of the companion output that holds a list output's items for a loop to iterate.
ITEMS_SUFFIX = "--items"
#: Suffix of the companion output that holds a list/dict output natively (``LIST``/``STRUCT``)
#: for a pipeline output, which the user reads as kfp declares it (not as JSON text).
NATIVE_SUFFIX = "--native"
#: Infix of the float output ``<metrics output>-metric-<name>`` that holds one metric of a
#: ``Metrics`` output (SPEC §15) for the conditions and inputs that read it.
METRIC_INFIX = "-metric-"
#: Suffix of the float output ``<int output>-double`` a condition comparing the int with a
#: float reads (CEL compares no int with a double, and kfp.local's evaluator has no double()).
DOUBLE_SUFFIX = "-double"
#: Suffix of the bool output ``<bool output>-bool`` a condition reads when the output itself
#: travels as JSON text (a step evaluating its own condition, ``--when``).
BOOL_SUFFIX = "-bool"


def view_suffix(type_name: str) -> str:
    """The suffix of the native view a condition reads of an output of this type."""
    return BOOL_SUFFIX if type_name == "bool" else DOUBLE_SUFFIX


#: The value of every parameter output of a step skipped at run time (``--when``); the same
#: reserved text Azure ML's gated jobs write (docs/semantics.md).
SKIPPED = "pipecast:skipped"
#: The metadata key that marks the artifact output of a step skipped at run time.
SKIPPED_METADATA = "pipecast_skipped"
#: How JSON text of an untyped loop item starts (an array, an object, a string).
_TEXT_START = ("[", "{", '"')


def local_path(uri: str) -> str:
    """Where an artifact URI is on this machine (KFP's FUSE mounts; plain paths as they are)."""
    for prefix, mount in _MOUNTS:
        if uri.startswith(prefix):
            return mount + uri[len(prefix) :]
    if uri.startswith("file://"):
        return uri[len("file://") :]
    return uri


def _ints(value: Any) -> Any:
    """Integral doubles inside lists/dicts back to ints (protobuf Values have one number type)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_ints(v) for v in value]
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    return value


def compound(type_name: str) -> bool:
    """Whether a value of this type travels as JSON text when a step produces it."""
    return type_name == "dict" or (type_name != ANY and element_type(type_name) is not None)


def textual(type_name: str) -> bool:
    """Whether a step output of this type travels as JSON text: lists and dicts (a protobuf
    ``Value`` has one number type, doubles) and ints (a double holds an integer exactly only
    up to 2**53; SPEC §22 wants 64 bits)."""
    return compound(type_name) or type_name == "int"


def unmarked(value: Any) -> Any:
    """A value with the items of skipped steps (:data:`SKIPPED`) left out of every collected
    list in it (nested collections included; JSON text is a string, never entered)."""
    if isinstance(value, list):
        return [unmarked(v) for v in value if v != SKIPPED]
    return value


def decode(type_name: str, value: Any) -> Any:
    """A JSON-text-carrying value (a step output, a collected list of them) as ``type_name``.

    JSON text decodes exactly (``3.0`` stays a float); a collected list decodes element by
    element; scalars are converted as :func:`coerce` does. A float or bool given as text is the
    JSON text of a step evaluating its own condition (``--when``).
    """
    textual_scalar = type_name in ("float", "bool") and isinstance(value, str)
    if isinstance(value, str) and (
        textual(type_name) or textual_scalar or (type_name == ANY and value[:1] in _TEXT_START)
    ):
        try:
            return json.loads(value)
        except ValueError:
            raise ConventionError(f"expected a JSON {type_name}, got {value[:60]!r}") from None
    el = element_type(type_name)
    if isinstance(value, list) and el is not None and el != ANY and not isinstance(value, str):
        return [decode(el, v) for v in value]
    return coerce(type_name, value)


def encode(type_name: str, value: Any, gated: bool = False) -> Any:
    """A step's parameter output as it travels: lists, dicts and ints as JSON text (and floats
    and bools, for a step that evaluates its own condition: ``gated``)."""
    if textual(type_name) or (gated and type_name in ("float", "bool")):
        return json.dumps(value)
    return value


def wire_params(types: Mapping[str, str], values: Mapping[str, Any]) -> dict[str, Any]:
    """Pipeline parameter values as a KFP run takes them: ints, lists and dicts as JSON text
    (their ``inputDefinitions`` type is ``STRING``, SPEC §22 "Numbers are exact"), the rest as
    they are. ``types`` maps each parameter to its pipecast type (unknown names pass through)."""
    return {k: encode(types.get(k, "str"), v) for k, v in values.items()}


def encode_item(type_name: str, value: Any) -> Any:
    """One loop item: compound items as JSON text.

    Items of an untyped list (``any``) stay native when scalar (conditions compare them);
    dicts, lists and strings that start like JSON text (``[``, ``{``, ``"``) are JSON text,
    so :func:`decode` tells the two apart exactly.
    """
    if type_name == ANY:
        text = isinstance(value, dict | list) or (isinstance(value, str) and value[:1] in _TEXT_START)
        return json.dumps(value) if text else value
    return json.dumps(value) if compound(type_name) else value


def encode_items(type_name: str, value: Any) -> list[Any]:
    """A list output as the native list a loop iterates (see :func:`encode_item`)."""
    el = element_type(type_name) or ANY
    return [encode_item(el, v) for v in value]


def coerce(type_name: str, value: Any) -> Any:
    """A parameter value from the executor input, as the declared pipecast type."""
    if type_name in ("list", "dict", ANY) or element_type(type_name) is not None:
        if isinstance(value, str) and type_name != ANY:
            try:
                value = json.loads(value)
            except ValueError:
                raise ConventionError(f"expected a JSON {type_name}, got {value[:60]!r}") from None
        return _ints(value)
    if type_name == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if type_name == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _metadata(artifact: dict[str, Any], out_type: str) -> dict[str, Any]:
    """SPEC §15: what the step wrote to ``<path>.metadata.json`` and, for a ``Metrics`` output,
    its metrics: Vertex shows a system.Metrics artifact's metadata as the run's metrics
    (https://cloud.google.com/vertex-ai/docs/pipelines/visualize-pipeline#metrics)."""
    from pipecast import metrics

    path = local_path(artifact.get("uri", ""))
    data = dict(metrics.metadata(path))
    if out_type == "Metrics":
        with contextlib.suppress(metrics.MetricsError):
            data.update(metrics.read(path))
    return data


def final_status(value: Any) -> str:
    """KFP's ``PipelineTaskFinalStatus`` → ``"succeeded"``/``"failed"`` (SPEC §4)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = {"state": value}
    state = str((value or {}).get("state", "")).upper() if isinstance(value, dict) else ""
    return "succeeded" if state == "SUCCEEDED" else "failed"


class KfpConvention(Convention):
    """Reads the KFP ExecutorInput; writes ``executor_output.json`` and artifact files."""

    name = "kfp"

    def __init__(
        self,
        executor_input: dict[str, Any],
        templates: dict[str, Any] | None = None,
        json_inputs: list[str] | None = None,
        when: dict[str, Any] | None = None,
    ) -> None:
        self.executor_input = executor_input
        self.templates = templates or {}
        self.json_inputs = set(json_inputs or ())
        self.when = when or None

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--executor-input", required=True, help="the KFP ExecutorInput JSON ({{$}})")
        parser.add_argument("--templates", default="{}", help="inputs the runtime renders (JSON)")
        parser.add_argument(
            "--json-inputs", default="[]", help="parameter inputs that carry JSON text (JSON list)"
        )
        parser.add_argument(
            "--when", default="{}", help="the step's condition, evaluated here (JSON: when, refs)"
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> KfpConvention:
        return cls(
            parse_json_arg(args.executor_input, "--executor-input"),
            parse_json_arg(args.templates, "--templates"),
            parse_json_arg(args.json_inputs, "--json-inputs"),
            parse_json_arg(args.when, "--when"),
        )

    # ------------------------------------------------------------------ inputs

    def specialise(self, spec: StepSpec) -> StepSpec:
        """A component file's shared executor (SPEC §16) gets its step's name as the task
        input ``pipecast--step`` (the compiler's constant for each use)."""
        step = self._section("inputs", "parameterValues").get(STEP_INPUT)
        return spec.model_copy(update={"step": step}) if isinstance(step, str) and step else spec

    def _section(self, *keys: str) -> dict[str, Any]:
        node: Any = self.executor_input
        for key in keys:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        return node if isinstance(node, dict) else {}

    def _artifact_paths(self, name: str) -> list[str]:
        """The local paths of an artifact input, without those of skipped steps (a collection)."""
        entry = self._section("inputs", "artifacts").get(name)
        if not entry:
            raise ConventionError(f"the executor input has no artifact {name!r}")
        return [
            local_path(a.get("uri", ""))
            for a in entry.get("artifacts", [])
            if not (a.get("metadata") or {}).get(SKIPPED_METADATA)
        ]

    def _channel(self, name: str) -> Any:
        params = self._section("inputs", "parameterValues")
        if name in params:
            return params[name]
        if name in self._section("inputs", "artifacts"):
            paths = self._artifact_paths(name)
            return paths[0] if len(paths) == 1 else paths
        raise ConventionError(f"the executor input has no value {name!r}")

    # ------------------------------------------------------------------ skipping

    def skip_reason(self, spec: StepSpec) -> str | None:
        """A false ``--when`` condition, or a parameter input holding :data:`SKIPPED` (the
        output of a skipped step, read directly: SPEC §22)."""
        for name, value in sorted(self._section("inputs", "parameterValues").items()):
            if value == SKIPPED:
                return f"input {name!r} reads the output of a skipped step"
        for name, entry in sorted(self._section("inputs", "artifacts").items()):
            single = name not in spec.inputs or element_type(spec.inputs[name].type) in (None, ANY)
            found = entry.get("artifacts") or [] if isinstance(entry, dict) else []
            if single and found and all((a.get("metadata") or {}).get(SKIPPED_METADATA) for a in found):
                return f"input {name!r} reads the artifact of a skipped step"
        if self.when:
            from pipecast.runtime.spec_text import evaluate_text_condition

            if not evaluate_text_condition(self.when["when"], self._lookup(spec, self.when.get("refs", {}))):
                return f"its condition is false ({self.when['when']})"
        return None

    def write_skipped(self, spec: StepSpec, workdir: Path) -> None:
        """:data:`SKIPPED` on every declared parameter output, and each artifact output
        (an empty file) marked in its metadata, so collections and readers see it."""
        # A condition's native view gets a value of its type: a reader's condition holds the
        # skipped step's own condition first (pipecast.passes.lower.guard_readers), so it is
        # never what decides.
        # A list's ``--items`` view (what a loop iterates) is empty: the loop's guard then takes
        # its else-branch, whose task reads the marked text and is skipped in turn (the loop is
        # skipped with its producer, pipecast_vertex.compiler ``_guarded_loop``).
        views: dict[str, Any] = {DOUBLE_SUFFIX: 0.0, BOOL_SUFFIX: False, ITEMS_SUFFIX: []}
        parameters = {
            name: next((v for suffix, v in views.items() if name.endswith(suffix)), SKIPPED)
            for name in self._section("outputs", "parameters")
        }
        artifacts: dict[str, Any] = {}
        for name in self._section("outputs", "artifacts"):
            artifact = self._output_artifact(name)
            path = Path(local_path(artifact.get("uri", "")))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
            artifact["metadata"] = {**artifact.get("metadata", {}), SKIPPED_METADATA: True}
            artifacts[name] = {"artifacts": [artifact]}
        target = self._output_file()
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            document = {"parameterValues": parameters, "artifacts": artifacts}
            target.write_text(json.dumps(document, sort_keys=True), encoding="utf-8")
        self._trace(spec, "skipped", None)

    # ------------------------------------------------------------------ inputs

    def _lookup(self, spec: StepSpec, refs: dict[str, list[Any]]) -> Any:
        """Finds a reference's value among the channel inputs named by ``refs``."""

        def lookup(ref: Any) -> Any:
            if ref.kind == "pipeline" and ref.name == "name":
                return spec.pipeline
            channel, key, *rest = refs.get(ref.path, [None, None])
            if channel is None:
                raise ConventionError(f"--templates has no value for {{{{ {ref.path} }}}}")
            value = self._channel(channel)
            if ref.kind in ("pipeline", "group") and ref.name == "status":
                return final_status(value)  # group.status: its body's final status (SPEC §18)
            type_name = rest[0] if rest else ANY
            value = unmarked(value)
            value = decode(type_name, value) if channel in self.json_inputs else coerce(type_name, value)
            if isinstance(value, str) and key is not None:
                value = json.loads(value)
            return value[key] if key is not None else value

        return lookup

    def _render(self, spec: StepSpec, template: dict[str, Any]) -> Any:
        return render_template(template["template"], self._lookup(spec, template.get("refs", {})))

    def stage_inputs(self, spec: StepSpec, workdir: Path) -> dict[str, Any]:
        values = self.literal_inputs(spec)
        params = self._section("inputs", "parameterValues")
        for name, ispec in spec.inputs.items():
            if name in self.templates:  # a mixed string or a list/mapping literal (SPEC §19)
                values[name] = self._render(spec, self.templates[name])
            elif ispec.literal:
                continue
            elif is_artifact_input(spec, name):
                paths = self._artifact_paths(name)
                values[name] = paths if element_type(ispec.type) not in (None, ANY) else paths[0]
            elif name in params:
                convert = decode if name in self.json_inputs else coerce
                values[name] = convert(ispec.type, unmarked(params[name]))
            else:
                raise ConventionError(f"the executor input has no value for input {name!r}")
        return values

    # ------------------------------------------------------------------ outputs

    def _output_artifact(self, name: str) -> dict[str, Any]:
        entry = self._section("outputs", "artifacts").get(name) or {}
        artifacts = entry.get("artifacts") or []
        if not artifacts:
            raise ConventionError(f"the executor input has no output artifact {name!r}")
        return dict(artifacts[0])

    def output_paths(self, spec: StepSpec, workdir: Path) -> dict[str, Path] | None:
        paths = {}
        for name in spec.outputs:
            if is_artifact_output(spec, name):
                path = Path(local_path(self._output_artifact(name).get("uri", "")))
                path.parent.mkdir(parents=True, exist_ok=True)
                paths[name] = path
        return paths

    def _output_file(self) -> Path | None:
        out = self._section("outputs").get("outputFile")
        return Path(local_path(out)) if out else None

    def write_outputs(self, spec: StepSpec, result: AttemptResult, workdir: Path) -> dict[str, Any]:
        parameters: dict[str, Any] = {}
        artifacts: dict[str, Any] = {}
        declared = self._section("outputs", "parameters")
        for name, out_type in spec.outputs.items():
            if is_artifact_output(spec, name):
                artifact = self._output_artifact(name)
                artifact["metadata"] = {**artifact.get("metadata", {}), **_metadata(artifact, out_type)}
                artifacts[name] = {"artifacts": [artifact]}
                continue
            value = result.outputs[name]
            parameters[name] = encode(out_type, value, gated=bool(self.when))
            if name + ITEMS_SUFFIX in declared and isinstance(value, list):
                parameters[name + ITEMS_SUFFIX] = encode_items(out_type, value)
            if name + NATIVE_SUFFIX in declared:
                parameters[name + NATIVE_SUFFIX] = value
            if name + DOUBLE_SUFFIX in declared and isinstance(value, int | float):
                parameters[name + DOUBLE_SUFFIX] = float(value)
            if name + BOOL_SUFFIX in declared and isinstance(value, bool):
                parameters[name + BOOL_SUFFIX] = value
        parameters.update(self._metric_values(spec, declared))
        document = {"parameterValues": parameters, "artifacts": artifacts}
        target = self._output_file()
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(document, sort_keys=True), encoding="utf-8")
        self._trace(spec, "succeeded", dict(result.outputs))
        return document

    def _metric_values(self, spec: StepSpec, declared: dict[str, Any]) -> dict[str, float]:
        """SPEC §15: each metric the pipeline reads, from the step's ``Metrics`` outputs, as the
        float output ``<output>-metric-<name>`` the compiler declared. A metric the file lacks
        is left out, so what reads it fails to resolve its input on Vertex/KFP (a warning here)."""
        from pipecast import metrics

        values: dict[str, float] = {}
        for name, out_type in spec.outputs.items():
            prefix = name + METRIC_INFIX
            wanted = sorted(k for k in declared if k.startswith(prefix))
            if out_type != "Metrics" or not wanted:
                continue
            try:
                found = metrics.read(local_path(self._output_artifact(name).get("uri", "")))
            except metrics.MetricsError as exc:
                found = {}
                print(f"pipecast runtime: warning: output {name!r}: {exc}", file=sys.stderr)
            for key in wanted:
                metric = key[len(prefix) :]
                if metric in found:
                    values[key] = float(found[metric])
                else:
                    print(
                        f"pipecast runtime: warning: output {name!r} has no metric {metric!r} "
                        f"(has {sorted(found)}); what reads it cannot resolve it",
                        file=sys.stderr,
                    )
        return values

    def write_failure(self, spec: StepSpec, error: str, workdir: Path) -> None:
        self._trace(spec, "failed", None, error)

    def _trace(self, spec: StepSpec, status: str, outputs: Any, error: str | None = None) -> None:
        trace = os.environ.get(TRACE_ENV)
        if not trace or "--" in spec.step:
            return  # no trace of a task pipecast adds (its name has '--', no step's has)
        target = self._output_file()
        line = {
            "step": spec.step,
            "task_dir": str(target.parent) if target else None,
            "status": status,
            "outputs": outputs,
            "error": error,
        }
        # one short line: atomic enough with O_APPEND; keys in stored order (SPEC §22)
        with open(trace, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")


__all__ = [
    "BOOL_SUFFIX",
    "DOUBLE_SUFFIX",
    "ITEMS_SUFFIX",
    "METRIC_INFIX",
    "NATIVE_SUFFIX",
    "SKIPPED",
    "SKIPPED_METADATA",
    "STEP_INPUT",
    "KfpConvention",
    "coerce",
    "compound",
    "decode",
    "encode",
    "encode_item",
    "encode_items",
    "final_status",
    "local_path",
    "textual",
    "unmarked",
    "view_suffix",
    "wire_params",
]
