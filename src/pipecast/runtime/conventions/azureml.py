"""``azureml``: Azure ML command jobs (inputs/outputs handed over in quoted here-documents).

Azure ML replaces ``${{inputs.X}}`` in a command's *text* with the value of a primitive input
(``string``, ``integer``, ``number``, ``boolean``: lists and dicts arrive as JSON text) or the
mounted path of an asset input, and ``${{outputs.Y}}`` with a path to write
(https://learn.microsoft.com/azure/machine-learning/reference-yaml-core-syntax). It does no
quoting, so a value must never land where the shell parses it. The backend therefore writes
every substitution as the body of a *quoted* here-document, which the shell copies verbatim
(no expansion of quotes, backslashes, ``$(...)``, backticks, newlines)::

    set -e
    PIPECAST_VALUES=$(mktemp -d)
    cat > "$PIPECAST_VALUES/in.NAME" <<'PIPECAST_VALUE_END'
    ${{inputs.NAME}}
    PIPECAST_VALUE_END
    ...
    python -m pipecast.runtime run --spec '<json>' --convention azureml --values "$PIPECAST_VALUES"

``--values DIR`` reads ``in.NAME`` (a value or mounted path), ``item.NAME`` (a ``for_each``
item, JSON: see :func:`item_text`), ``file.NAME`` (the mounted folder of a stock container
step's parameter output, holding the value's text next to the artifact marker: Azure ML has no
primitive output a plain command can set) and ``out.NAME`` (where Azure ML collects the output),
each without the newline the here-document adds. The only text that ends a here-document
early is a line ``PIPECAST_VALUE_END``: the compiler never writes one (values it writes are
encoded, see :func:`encode_text`), and this runtime refuses to publish a parameter output
holding one (it would reach the next job's command). ``--in NAME=VALUE`` / ``--out NAME=PATH``
remain for running a step by hand.

Text that Azure ML would read as its own expression (``${{...}}``, ``$[[...]]``) must not
appear in a literal value either: pipeline input values are bindings in Azure ML's REST
format. Compile-time strings holding ``${{``/``$[[`` (or the here-document end line) are
written as ``pipecast:json:<JSON>`` with ``$`` escaped (``\\u0024``); this runtime decodes
that form for every primitive input, so a user may pass such a value that way too.

* Artifact inputs (``uri_folder``) hold the artifact as stored by
  :func:`~pipecast.runtime.conventions.base.store_in_folder` (a file sits next to a marker);
  collected artifacts (``mltable``, what ``parallel_for`` aggregates) are a folder with one
  entry per iteration, or an ``MLTable`` file listing their paths.
* Artifact outputs are written locally, then stored in the mounted output folder.
* Parameter outputs are written to their output path (a ``str`` as raw text, other types as
  JSON) and published to the run's history as the ``azureml.pipeline.control`` property,
  which is where Azure ML reads primitive and control outputs (what mldesigner does). That
  needs ``mlflow`` + ``azureml-mlflow`` in the image; outside Azure ML (no
  ``MLFLOW_TRACKING_URI``) only the files are written.
* ``--templates`` holds the inputs the runtime renders itself (mixed strings, keys of loop
  items, ``pipeline.*``): ``{input: {"template": str, "refs": {path: [channel|null, key|null]}}}``.
  ``pipeline.run_id`` is the pipeline job's run id (``AZUREML_ROOT_RUN_ID``);
  ``pipeline.status`` (``finally`` only) comes from ``PIPECAST_PIPELINE_STATUS`` if set, else
  from the statuses of the pipeline's child runs in run history.

:func:`evaluate_when`, :func:`evaluate_gates` and :func:`loop_items` are the python
functions of the jobs the backend generates for ``when`` conditions and ``for_each`` items.

Gated ``when`` (a group with outputs, or one a step waits for): both branches' jobs start,
each with a ``gate.pipecast_gate`` value file holding its branch's condition job output. A
job whose gate is not ``true``, or whose input holds the skipped marker (:data:`SKIPPED`: the
text itself for a primitive, a folder holding :data:`SKIPPED_FILE` for an artifact), does not
run: it writes the marker on every output and exits 0 (SPEC §22: what reads a skipped
producer is skipped in turn). :func:`select_main` (``python -m
pipecast.runtime.conventions.azureml select``) is the group's select job: it copies the
outputs of the branch that ran, or writes markers when none did.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from pipecast.ir import values as values_mod
from pipecast.ir.models import PythonRun
from pipecast.ir.refs import Ref
from pipecast.passes.analysis import ANY, element_type, is_artifact_type
from pipecast.runtime.conventions.base import (
    Convention,
    ConventionError,
    is_artifact_input,
    is_artifact_output,
    locate_in_folder,
    parse_json_arg,
    parse_value,
    store_in_folder,
)
from pipecast.runtime.executor import AttemptResult
from pipecast.runtime.spec import StepSpec
from pipecast.runtime.spec_text import evaluate_text_condition, render_template

CONTROL_PROPERTY = "azureml.pipeline.control"
STATUS_ENV = "PIPECAST_PIPELINE_STATUS"
#: The line that ends the quoted here-documents holding substituted values.
HEREDOC_END = "PIPECAST_VALUE_END"
#: Prefix of an encoded string value (JSON text without ``$``, newlines or control characters).
ENCODED_PREFIX = "pipecast:json:"
#: A primitive output of a skipped job (Azure ML started it; SPEC §5 says it did not run).
SKIPPED = "pipecast:skipped"
#: The file in an artifact output folder of a skipped job.
SKIPPED_FILE = ".pipecast-skipped"
#: A metric output whose Metrics file lacks the metric: the message follows; a reader fails with it.
MISSING_METRIC = "pipecast:missing-metric:"
#: The value file (``gate.<name>``) holding a gated job's branch condition.
GATE = "pipecast_gate"


def safe_json(value: Any) -> str:
    """JSON text Azure ML and the shell leave alone: ASCII, one line, no ``$`` and no ``'``.

    ``$`` and ``'`` only occur inside JSON strings, where ``\\u0024``/``\\u0027`` mean the same.
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.replace("$", "\\u0024").replace("'", "\\u0027")


def needs_encoding(text: str) -> bool:
    """Whether a string cannot travel raw as an Azure ML literal value (see the module docstring)."""
    return (
        "${{" in text or "$[[" in text or HEREDOC_END in text.split("\n") or text.startswith(ENCODED_PREFIX)
    )


def encode_text(text: str) -> str:
    """``text`` as an Azure ML literal value: raw when safe, else ``pipecast:json:<safe JSON>``."""
    return ENCODED_PREFIX + safe_json(text) if needs_encoding(text) else text


def decode_text(text: str) -> str:
    """The inverse of :func:`encode_text` (raw text passes through)."""
    if text.startswith(ENCODED_PREFIX):
        try:
            value = json.loads(text[len(ENCODED_PREFIX) :])
        except ValueError:
            raise ConventionError(
                f"a value starts with {ENCODED_PREFIX!r} but is not JSON after it"
            ) from None
        if not isinstance(value, str):
            raise ConventionError(f"{ENCODED_PREFIX!r} must be followed by a JSON string")
        return value
    return text


def _pairs(items: list[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConventionError(f"{option} {item!r} is not NAME=VALUE")
        out[name] = value
    return out


def item_text(value: Any) -> str:
    """One ``for_each`` item as the text a loop body receives: :func:`safe_json` of the item.

    Items may come from data (a step's list output), so they are always encoded: one line of
    JSON without ``$`` cannot end a here-document or form an Azure ML expression.
    """
    return safe_json(value)


def read_values(folder: Path) -> tuple[dict[str, str], dict[str, str], set[str], dict[str, str]]:
    """``--values DIR``: (inputs, outputs, names of item inputs, gates), each file minus the
    here-doc newline."""
    gates: dict[str, str] = {}
    given: dict[str, str] = {}
    outputs: dict[str, str] = {}
    items: set[str] = set()
    if not folder.is_dir():
        raise ConventionError(f"--values {str(folder)!r} is not a folder")
    for path in sorted(folder.iterdir()):
        kind, _, name = path.name.partition(".")
        text = path.read_text(encoding="utf-8")
        text = text[:-1] if text.endswith("\n") else text
        if kind == "in":
            given[name] = text
        elif kind == "item":
            given[name] = text
            items.add(name)
        elif kind == "out":
            outputs[name] = text
        elif kind == "file":
            # A stock step's parameter output: a folder holding the value's file (SPEC §21).
            given[name] = locate_in_folder(Path(text)).read_text(encoding="utf-8")
        elif kind == "gate":
            gates[name] = text
        elif kind in ("step", "templates"):
            continue  # a shared component file's step name / --templates @file (SPEC §16)
        else:
            raise ConventionError(f"unexpected file {path.name!r} in --values")
    return given, outputs, items, gates


#: The value file naming the step that runs a shared command component (SPEC §16).
STEP_FILE = "step.name"
#: The value file holding a shared command component use's ``--templates`` (read as ``@file``).
TEMPLATES_FILE = "templates.json"


def read_step_name(folder: Path) -> str | None:
    """The step name a shared component file's command received (the job input
    ``pipecast_step``, written to ``step.name``): the compiled spec names the component, and
    every use of the file says which step it is, so logs and the run record name the step."""
    path = folder / STEP_FILE
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    return (text[:-1] if text.endswith("\n") else text) or None


def parse_text(type_name: str, text: str) -> Any:
    """A primitive value as Azure ML passes it (booleans may come as ``True``/``False``)."""
    if type_name == "bool" and text in ("True", "False"):
        return text == "True"
    return parse_value(type_name, text)


def collected_paths(folder: Path) -> list[str]:
    """The artifacts in an aggregated (``mltable``) input, in iteration order."""
    table = folder / "MLTable"
    if table.is_file():
        import yaml

        data = yaml.safe_load(table.read_text(encoding="utf-8")) or {}
        paths = []
        for entry in data.get("paths") or []:
            raw = next(iter(entry.values())) if isinstance(entry, dict) and entry else str(entry)
            path = Path(str(raw).removeprefix("file://"))
            path = path if path.is_absolute() else folder / path
            if not (path / SKIPPED_FILE).is_file():  # an item whose step was skipped
                paths.append(str(locate_in_folder(path)))
        return paths
    entries = sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=_natural)
    entries = [p for p in entries if not (p / SKIPPED_FILE).is_file()]
    return [str(locate_in_folder(p) if p.is_dir() else p) for p in entries]


def _natural(path: Path) -> tuple[int, int | str]:
    return (0, int(path.name)) if path.name.isdigit() else (1, path.name)


class AzureMLConvention(Convention):
    """Reads ``--in``/``--out`` pairs that Azure ML filled in; see the module docstring."""

    name = "azureml"

    def __init__(
        self,
        given: dict[str, str],
        outputs: dict[str, str],
        templates: dict[str, Any] | None = None,
        items: set[str] | None = None,
        gates: dict[str, str] | None = None,
        step: str | None = None,
    ) -> None:
        self.step = step
        self.given = given
        self.outputs = outputs
        self.templates = templates or {}
        self.items = items or set()
        self.gates = gates or {}

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--in", dest="inputs", action="append", default=[], metavar="NAME=VALUE",
                            help="an input: its value, or the mounted path of an asset")  # fmt: skip
        parser.add_argument("--out", dest="outputs", action="append", default=[], metavar="NAME=PATH",
                            help="where Azure ML collects an output")  # fmt: skip
        parser.add_argument("--values", default=None, metavar="DIR",
                            help="a folder of in.NAME / item.NAME / out.NAME files (what the compiled command writes)")  # fmt: skip
        parser.add_argument("--templates", default="{}", help="inputs the runtime renders (JSON)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> AzureMLConvention:
        given = _pairs(args.inputs, "--in")
        outputs = _pairs(args.outputs, "--out")
        items: set[str] = set()
        gates: dict[str, str] = {}
        step = None
        if args.values:
            more_in, more_out, items, gates = read_values(Path(args.values))
            given |= more_in
            outputs |= more_out
            step = read_step_name(Path(args.values))
        return cls(given, outputs, parse_json_arg(args.templates, "--templates"), items, gates, step)

    def specialise(self, spec: StepSpec) -> StepSpec:
        """A shared command component file (SPEC §16) names its step in ``step.name``."""
        return spec.model_copy(update={"step": self.step}) if self.step else spec

    # ------------------------------------------------------------------ skipping

    def skip_reason(self, spec: StepSpec) -> str | None:
        """A closed gate, or an input holding the skipped marker (see the module docstring)."""
        return gate_closed(self.gates) or skipped_input(self.given, self.items)

    def write_skipped(self, spec: StepSpec, workdir: Path) -> None:
        markers = {name: (self.outputs.get(name), is_artifact_output(spec, name)) for name in spec.outputs}
        markers |= {name: (path, False) for name, path in self.outputs.items() if "." in name}
        write_markers(markers)

    # ------------------------------------------------------------------ inputs

    def _channel(self, name: str, type_name: str = ANY) -> Any:
        if name not in self.given:
            raise ConventionError(f"no value for {name!r}: the command has no --in {name}=...")
        text = self.given[name]
        if text.startswith(MISSING_METRIC):
            # SPEC §15: reading a metric the Metrics output lacks fails the reader, at run time.
            raise ConventionError(f"input {name!r}: {text[len(MISSING_METRIC) :]}")
        if name in self.items:
            try:
                return json.loads(text)
            except ValueError:
                raise ConventionError(
                    f"loop item {name!r} is not the JSON pipecast writes ({text[:60]!r})"
                ) from None
        return parse_text(type_name, decode_text(text))

    def _render(self, spec: StepSpec, template: dict[str, Any]) -> Any:
        refs: dict[str, list[Any]] = template.get("refs", {})

        def lookup(ref: Ref) -> Any:
            if ref.kind == "pipeline":
                return pipeline_field(spec, ref.name)
            channel, key, *typed = refs.get(ref.path, [None, None])
            if channel is None:
                raise ConventionError(f"--templates has no value for {{{{ {ref.path} }}}}")
            value = self._typed(channel, typed[0]) if typed else self._channel(channel)
            return value[key] if key is not None else value

        return render_template(template["template"], lookup)

    def _typed(self, channel: str, type_name: str) -> Any:
        """A value inside a list or mapping input (SPEC §19): by its type, an artifact as the
        step's local path (a collected one as the list of paths)."""
        if channel in self.items:
            return self._channel(channel)
        if values_mod.is_artifact(type_name) or is_artifact_type(type_name):
            path = Path(self.given.get(channel, ""))
            if channel not in self.given or not path.exists():
                raise ConventionError(f"artifact {channel!r} is not mounted (got {str(path)!r})")
            if values_mod.is_artifact(type_name):
                return str(locate_in_folder(path))
            return collected_paths(path)
        value = self._channel(channel, type_name)
        if isinstance(value, list) and element_type(type_name) is not None:
            value = [v for v in value if v != SKIPPED]
        return value

    def stage_inputs(self, spec: StepSpec, workdir: Path) -> dict[str, Any]:
        values = self.literal_inputs(spec)
        for name, ispec in spec.inputs.items():
            if ispec.literal:
                continue
            if name in self.templates:
                values[name] = self._render(spec, self.templates[name])
            elif is_artifact_input(spec, name):
                path = Path(self.given.get(name, ""))
                if name not in self.given or not path.exists():
                    raise ConventionError(f"artifact input {name!r} is not mounted (got {str(path)!r})")
                collected = element_type(ispec.type) not in (None, ANY)
                values[name] = collected_paths(path) if collected else str(locate_in_folder(path))
            else:
                values[name] = self._channel(name, ispec.type)
                if isinstance(values[name], list) and element_type(ispec.type) is not None:
                    # A collected loop output leaves out the items whose step was skipped
                    # (docs/semantics.md), which a gated step marks.
                    values[name] = [v for v in values[name] if v != SKIPPED]
        return values

    # ------------------------------------------------------------------ outputs

    def write_outputs(self, spec: StepSpec, result: AttemptResult, workdir: Path) -> dict[str, Any]:
        published: dict[str, Any] = {}
        for name in spec.outputs:
            target = self.outputs.get(name)
            if target is None:
                raise ConventionError(f"no path for output {name!r}: the command has no --out {name}=...")
            value = result.outputs[name]
            if is_artifact_output(spec, name):
                if spec.outputs[name] == "Metrics":
                    log_job_metrics(Path(value))
                store_in_folder(Path(value), Path(target))
                published[name] = target
                continue
            text = value if spec.outputs[name] == "str" else json.dumps(value, sort_keys=True)
            if HEREDOC_END in str(text).split("\n"):
                # The value reaches the next job's command inside a here-document it would end.
                raise ConventionError(
                    f"output {name!r} contains a line {HEREDOC_END!r}, which Azure ML would paste into "
                    "the next job's command and end its value early; change the value"
                )
            path = Path(target)
            if path.is_dir():
                path = path / "output"  # Azure ML may hand a folder for a primitive output
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            published[name] = value
        primitives = {n: v for n, v in published.items() if not is_artifact_output(spec, n)}
        primitives |= self._write_metric_outputs(spec, result)
        if primitives:
            publish_control_outputs(primitives)
        return published

    def _write_metric_outputs(self, spec: StepSpec, result: AttemptResult) -> dict[str, Any]:
        """SPEC §15: ``out.O.NAME`` asks for metric NAME of Metrics output O as a number output
        (what conditions and inputs of other jobs bind to); a missing metric writes
        :data:`MISSING_METRIC` and its message, which fails the reader, not this step."""
        from pipecast import metrics

        values: dict[str, Any] = {}
        for name, target in sorted(self.outputs.items()):
            output, dot, metric = name.partition(".")
            if not dot:
                continue
            if output not in spec.outputs or spec.outputs[output] != "Metrics":
                raise ConventionError(
                    f"--values asks for metric {metric!r} of {output!r}, not a Metrics output"
                )
            try:
                value: Any = metrics.metric_value(str(result.outputs[output]), metric)
                text = json.dumps(value)
            except metrics.MetricsError as exc:
                value = text = f"{MISSING_METRIC}step {spec.step!r}: {exc}"
            path = Path(target)
            if path.is_dir():
                path = path / "output"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            values[metric_output_name(output, metric)] = value
        return values


def metric_output_name(output: str, metric: str) -> str:
    """The Azure ML output of a job carrying metric ``metric`` of its Metrics output ``output``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{output}__{metric}")


def log_job_metrics(path: Path) -> bool:
    """SPEC §15: a Metrics output's numbers become the Azure ML job's metrics, logged with
    MLflow, which Azure ML jobs are configured for
    (https://learn.microsoft.com/azure/machine-learning/how-to-log-view-metrics). Only when
    ``mlflow`` is importable in the step's image (``azureml-mlflow`` adds the tracking store);
    otherwise the metrics stay in the Metrics artifact. Returns whether they were logged."""
    from pipecast import metrics

    try:
        import mlflow  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return False
    try:
        found = metrics.read(path)
    except metrics.MetricsError:
        return False
    if found:
        mlflow.log_metrics({k: float(v) for k, v in found.items()})
    return bool(found)


def gate_closed(gates: dict[str, str]) -> str | None:
    """Why a gated job does not run: its gate is ``false`` or a skipped marker (``None``: open)."""
    for name, text in sorted(gates.items()):
        if text.strip().lower() != "true":
            why = (
                "an enclosing step was skipped"
                if text.strip() == SKIPPED
                else "its when branch was not taken"
            )
            return f"gate {name!r} is {text.strip()!r} ({why})"
    return None


def skipped_input(given: dict[str, str], items: set[str] = frozenset()) -> str | None:  # type: ignore[assignment]
    """Why a job reads a skipped producer (SPEC §22): an input holds the marker."""
    for name, text in sorted(given.items()):
        if name in items:
            continue
        if text == SKIPPED:
            return f"input {name!r} reads the output of a skipped step"
        if "/" in text and "\n" not in text:
            try:
                marked = (Path(text) / SKIPPED_FILE).is_file()
            except OSError:
                marked = False
            if marked:
                return f"input {name!r} reads the artifact of a skipped step"
    return None


def write_markers(outputs: dict[str, tuple[str | None, bool]]) -> None:
    """The skipped marker on every output: ``{name: (path Azure ML gave, is artifact)}``."""
    primitives: dict[str, Any] = {}
    for name, (target, artifact) in sorted(outputs.items()):
        if target is None:
            raise ConventionError(f"no path for output {name!r}: the command has no --out {name}=...")
        path = Path(target)
        if artifact:
            path.mkdir(parents=True, exist_ok=True)
            (path / SKIPPED_FILE).write_text("skipped\n", encoding="utf-8")
            continue
        if path.is_dir():
            path = path / "output"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(SKIPPED, encoding="utf-8")
        primitives[name] = SKIPPED
    if primitives:
        publish_control_outputs(primitives)


def publish_control_outputs(values: dict[str, Any]) -> None:
    """Write primitive outputs to run history (``azureml.pipeline.control``), as mldesigner does.

    Lists and dicts travel as JSON text (their Azure ML type is ``string``). Outside Azure ML
    (no ``MLFLOW_TRACKING_URI``) there is no run history and nothing is sent.
    """
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        return
    content = {
        k: (json.dumps(v, sort_keys=True) if isinstance(v, list | dict) else v) for k, v in values.items()
    }
    try:
        import mlflow
        from mlflow.tracking import MlflowClient
        from mlflow.utils.rest_utils import http_request
    except ImportError:
        raise ConventionError(
            "parameter outputs on Azure ML need mlflow and azureml-mlflow in the step image"
        ) from None
    run = mlflow.active_run() or mlflow.start_run()
    creds = MlflowClient()._tracking_client.store.get_host_creds()
    creds.host = creds.host.replace("mlflow/v2.0", "mlflow/v1.0").replace("mlflow/v1.0", "history/v1.0")
    response = http_request(
        host_creds=creds,
        endpoint=f"/experimentids/{run.info.experiment_id}/runs/{run.info.run_id}",
        method="PATCH",
        json={"runId": run.info.run_id, "properties": {CONTROL_PROPERTY: json.dumps(content)}},
    )
    if response.status_code != 200:
        raise ConventionError(
            f"run history refused the outputs: HTTP {response.status_code} {response.text[:200]}"
        )


def pipeline_field(spec: StepSpec, field: str) -> str:
    """``pipeline.name`` / ``pipeline.run_id`` / ``pipeline.status`` inside an Azure ML job."""
    if field == "name":
        return spec.pipeline
    if field == "run_id":
        return os.environ.get("AZUREML_ROOT_RUN_ID") or os.environ.get("AZUREML_RUN_ID") or "local"
    if field == "status":
        return pipeline_status()
    raise ConventionError(f"unknown pipeline field {field!r}")


def pipeline_status() -> str:
    """``succeeded`` unless a step of this pipeline run failed (read from run history)."""
    given = os.environ.get(STATUS_ENV)
    if given in ("succeeded", "failed"):
        return given
    root = os.environ.get("AZUREML_ROOT_RUN_ID")
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
        run = client.get_run(root) if root else None
        assert run is not None
        children = client.search_runs(
            [run.info.experiment_id], filter_string=f"tags.mlflow.rootRunId = '{root}'", max_results=50000
        )
    except Exception as exc:  # no run history here: say so, and assume the worst
        print(
            f"pipecast: cannot read the pipeline's status ({type(exc).__name__}); reporting 'failed'",
            file=sys.stderr,
        )
        return "failed"
    failed = any(c.info.status in ("FAILED", "KILLED") for c in children)
    return "failed" if failed else "succeeded"


# --------------------------------------------------------------------------- generated jobs


def evaluate_when(when: str, refs: dict[str, list[Any]], **values: Any) -> bool:
    """Evaluate a SPEC §5 condition; ``refs`` maps each path to ``[input name, loop-item key]``."""

    def lookup(ref: Ref) -> Any:
        channel, key = refs[ref.path]
        value = values[channel]  # loop items arrive decoded (item.NAME)
        return value[key] if key is not None else value

    return bool(evaluate_text_condition(when, lookup))


def evaluate_gates(when: str, refs: dict[str, list[Any]], **values: Any) -> dict[str, bool]:
    """A gated group's condition job: ``result`` opens the then-branch, ``otherwise`` the else."""
    taken = evaluate_when(when, refs, **values)
    return {"result": taken, "otherwise": not taken}


def select_main(argv: list[str] | None = None) -> int:
    """A gated group's select job: publish the outputs of the branch that ran.

    ``--outputs`` maps each group output to ``{"artifact": bool, "then": bool, "else": bool}``
    (whether that branch produces it); ``--values`` holds ``in.pipecast_branch`` (the
    condition job's ``result``), ``in.then__O`` / ``in.else__O`` and ``out.O``. A branch that
    did not produce an output, a skipped condition or a closed gate give markers (SPEC §22).
    """
    import shutil

    parser = argparse.ArgumentParser(prog="python -m pipecast.runtime.conventions.azureml select")
    parser.add_argument("--outputs", required=True)
    parser.add_argument("--values", required=True)
    args = parser.parse_args(argv)
    try:
        table: dict[str, dict[str, Any]] = parse_json_arg(args.outputs, "--outputs")
        given, outs, _, gates = read_values(Path(args.values))
    except ConventionError as exc:
        print(f"pipecast select: {exc}", file=sys.stderr)
        return 2
    branch = given.get("pipecast_branch", SKIPPED).strip()
    closed = gate_closed(gates)
    side = None if closed or branch == SKIPPED else ("then" if branch.lower() == "true" else "else")
    markers: dict[str, tuple[str | None, bool]] = {}
    values: dict[str, Any] = {}
    for name, how in sorted(table.items()):
        target = outs.get(name)
        source = given.get(f"{side}__{name}") if side is not None and how.get(side) else None
        if target is None or source is None or skipped_input({name: source}):
            markers[name] = (target, bool(how.get("artifact")))
            continue
        if how.get("artifact"):
            shutil.copytree(source, target, dirs_exist_ok=True)
            continue
        path = Path(target)
        if path.is_dir():
            path = path / "output"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
        try:
            values[name] = parse_text(str(how.get("type", "str")), decode_text(source))
        except (ConventionError, ValueError):
            values[name] = decode_text(source)
    try:
        write_markers(markers)
        if values:
            publish_control_outputs(values)
    except ConventionError as exc:
        print(f"pipecast select: {exc}", file=sys.stderr)
        return 1
    print(
        f"pipecast select: branch {side or 'none (skipped)'}: {sorted(values) + sorted(markers)}",
        file=sys.stderr,
    )
    return 0


#: The one item a ``parallel_for`` gets for an empty list (Azure ML rejects empty items): the body
#: jobs' gate (``nonempty``) is closed, so they only write markers, which readers drop.
SENTINEL_ITEM = "null"


def items_main(argv: list[str] | None = None) -> int:
    """A ``for_each`` group's items job: ``parallel_for`` items and the body's gate.

    ``--name`` is the body input carrying the item (``item__<as>``), ``--key`` a key of a loop
    item to iterate, ``--values`` holds ``in.values`` (or ``item.values``: a loop item), an
    optional ``gate.pipecast_gate`` (the loop sits in a gated region) and ``out.items`` /
    ``out.nonempty``. Azure ML's ``parallel_for`` fails on an empty list ("Items is an empty
    list/dict"), and SPEC says an empty ``for_each`` completes with empty outputs: an empty list
    (or a closed gate, or a skipped producer's marker) becomes one sentinel item and
    ``nonempty`` is ``false``, the gate of every body job, so the body writes only skipped
    markers and readers of the collected outputs get ``[]`` (see :func:`collected_paths`).
    """
    parser = argparse.ArgumentParser(prog="python -m pipecast.runtime.conventions.azureml items")
    parser.add_argument("--name", required=True)
    parser.add_argument("--key", default=None)
    parser.add_argument("--template", default=None, help="a list literal holding references (SPEC §19)")
    parser.add_argument("--values", required=True)
    args = parser.parse_args(argv)
    try:
        given, outs, items, gates = read_values(Path(args.values))
        text = given.get("values", SKIPPED)
        closed = gate_closed(gates) or skipped_input(given if args.template else {"values": text}, items)
        listed: list[Any] = []
        if closed is None and args.template:
            # The list is built now: each reference by its type, a mixed string as text.
            convention = AzureMLConvention(given, outs, items=items)
            spec = StepSpec(pipeline="", step="items", run=PythonRun(python=f"{__name__}:items_main"))
            value = convention._render(spec, parse_json_arg(args.template, "--template"))
            listed = json.loads(loop_items(value, args.name))
        elif closed is None:
            value = json.loads(text) if "values" in items else decode_text(text)
            listed = json.loads(loop_items(value, args.name, args.key))
        found = bool(listed)
        listed = listed or [{args.name: SENTINEL_ITEM}]
        written = json.dumps(listed, sort_keys=True)
        for name, content in (("items", written), ("nonempty", "true" if found else "false")):
            if name not in outs:
                raise ConventionError(f"no path for output {name!r} in --values")
            path = Path(outs[name])
            if path.is_dir():
                path = path / "output"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        publish_control_outputs({"items": written, "nonempty": found})
    except (ConventionError, ValueError, TypeError, KeyError) as exc:
        print(f"pipecast items: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    why = f"; body skipped: {closed}" if closed else ("" if found else "; the list is empty: body skipped")
    print(f"pipecast items: {len(listed) if found else 0} item(s){why}", file=sys.stderr)
    return 0


def empty_main(argv: list[str] | None = None) -> int:
    """A ``for_each`` over a literal empty list: no ``parallel_for`` (Azure ML rejects empty
    items); this job gives the group's outputs as they are after no iteration: ``[]`` for a
    collected parameter, an ``MLTable`` listing no paths for collected artifacts; markers when
    its gate is closed (the group was skipped). ``--outputs`` maps each output to
    ``{"artifact": bool}``."""
    parser = argparse.ArgumentParser(prog="python -m pipecast.runtime.conventions.azureml empty")
    parser.add_argument("--outputs", required=True)
    parser.add_argument("--values", required=True)
    args = parser.parse_args(argv)
    try:
        table: dict[str, dict[str, Any]] = parse_json_arg(args.outputs, "--outputs")
        _, outs, _, gates = read_values(Path(args.values))
        if gate_closed(gates):
            write_markers({n: (outs.get(n), bool(how.get("artifact"))) for n, how in table.items()})
            print("pipecast empty: skipped (closed gate)", file=sys.stderr)
            return 0
        values: dict[str, Any] = {}
        for name, how in sorted(table.items()):
            if name not in outs:
                raise ConventionError(f"no path for output {name!r} in --values")
            path = Path(outs[name])
            if how.get("artifact"):
                path.mkdir(parents=True, exist_ok=True)
                (path / "MLTable").write_text("paths: []\n", encoding="utf-8")
                continue
            if path.is_dir():
                path = path / "output"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("[]", encoding="utf-8")
            values[name] = []
        if values:
            publish_control_outputs(values)
    except ConventionError as exc:
        print(f"pipecast empty: {exc}", file=sys.stderr)
        return 1
    return 0


def loop_items(values: Any, name: str, key: str | None = None) -> str:
    """``parallel_for`` items for a list: ``[{"<name>": "<item text>"}, ...]`` as JSON text."""
    if key is not None:
        values = values[key]
    if isinstance(values, str):  # a list output or list parameter travels as JSON text
        values = json.loads(values)
    if not isinstance(values, list):
        raise TypeError(f"for_each needs a list, got {type(values).__name__}")
    return json.dumps([{name: item_text(v)} for v in values], sort_keys=True)


__all__ = [
    "ENCODED_PREFIX",
    "GATE",
    "HEREDOC_END",
    "SENTINEL_ITEM",
    "SKIPPED",
    "SKIPPED_FILE",
    "STEP_FILE",
    "TEMPLATES_FILE",
    "AzureMLConvention",
    "decode_text",
    "empty_main",
    "encode_text",
    "evaluate_gates",
    "evaluate_when",
    "item_text",
    "items_main",
    "loop_items",
    "publish_control_outputs",
    "read_step_name",
    "read_values",
    "safe_json",
    "select_main",
]


_COMMANDS = {"select": select_main, "items": items_main, "empty": empty_main}

if __name__ == "__main__":
    if sys.argv[1:2] and sys.argv[1] in _COMMANDS:
        sys.exit(_COMMANDS[sys.argv[1]](sys.argv[2:]))
    print(
        "usage: python -m pipecast.runtime.conventions.azureml {select,items,empty} --values DIR ...",
        file=sys.stderr,
    )
    sys.exit(2)
