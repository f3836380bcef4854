"""The IR → an Azure ML pipeline job (CLI v2 YAML) plus one pipeline component per group.

Pipeline job YAML: https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-pipeline
Command jobs: https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command
Control flow (if_else, parallel_for): https://learn.microsoft.com/azure/machine-learning/how-to-use-pipeline-component
and ``azure.ai.ml.dsl._condition`` / ``_parallel_for`` (private SDK modules).

| IR                        | Azure ML                                                              |
|---------------------------|-----------------------------------------------------------------------|
| task step                 | ``command`` job with an inline command component running the runtime |
| data edge                 | input binding ``${{parent.jobs.X.outputs.Y}}``                        |
| ``after`` without data    | a control binding: input ``after__X`` ← ``X.outputs.pipecast_done``   |
| parameter                 | pipeline input (plain value); ``${{parent.inputs.P}}``               |
| ``when``/``else`` group   | ``G__cond`` command (runtime evaluates §5) → ``if_else`` ``G__if`` with |
|                           | ``true_block`` ``G`` / ``false_block`` ``G__else`` (pipeline nodes)    |
| ``for_each`` group        | ``parallel_for`` ``G`` over body ``G__body`` (a pipeline node); items |
|                           | inline for literal lists, else from a ``G__items`` command job        |
| group / pipeline outputs  | component/job outputs bound with ``${{parent.outputs.O}}``            |
| ``finally``               | ``settings.on_finalize``                                              |
| retry / timeout           | runtime retries inside the job; ``limits.timeout``                    |

Every group compiles to its own pipeline component file (``components/<group>.yml``)
because Azure ML loads pipeline components only from files. Values that cross a component
boundary travel as component inputs named after what they carry: ``P`` (a parameter),
``S__O`` (a step output), ``item__v`` (a loop variable).
"""

from __future__ import annotations

import hashlib
import json
import math
import shlex
from dataclasses import dataclass, field
from typing import Any

from pipecast import stock
from pipecast.backend import placeholder
from pipecast.diagnostics import Diagnostic, UserError
from pipecast.ir import condition as cond
from pipecast.ir import values
from pipecast.ir.models import IMPORT_OUTPUT, ComponentRef, ContainerRun, Pipeline, PythonRun
from pipecast.ir.refs import Ref
from pipecast.passes.analysis import ANY, PipelineIndex, Scope, StepNode
from pipecast.passes.resolve import DictOf, ListOf, MetricValue, RefNode, StepOutput, Value, refs_of
from pipecast.runtime.conventions.azureml import (
    HEREDOC_END,
    STEP_FILE,
    TEMPLATES_FILE,
    metric_output_name,
    needs_encoding,
    safe_json,
)
from pipecast.runtime.spec import InputSpec, StepSpec, step_spec, without_max_age
from pipecast_azureml import naming
from pipecast_azureml.resources import NoVmSize, needs_vm, pick_vm
from pipecast_azureml.settings import AzureMLSettings
from pipecast_azureml.types import azure_type, item_text, param_input_value

#: Azure ML's limit on the nodes of one pipeline job (https://aka.ms/azure-machine-learning-limits).
MAX_JOBS = 30_000
PRIMITIVE_TYPES = ("string", "integer", "number", "boolean")
CONVENTION_MODULE = "pipecast.runtime.conventions.azureml"
#: ``{{ pipeline.name }}`` / ``{{ pipeline.run_id }}`` in a container command (the runtime fills them).

# A value source: ("param", P, None) | ("step", S, O) | ("loop", v, None)
Source = tuple[str, str, str | None]


@dataclass
class Component:
    """One pipeline (the job itself, or a group body) being built."""

    scope: Scope
    is_root: bool
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: channel → source, for what the parent must pass in
    external: dict[str, Source] = field(default_factory=dict)
    #: job name → the sibling step (of ``scope``) it belongs to
    owner: dict[str, str] = field(default_factory=dict)
    #: sibling → siblings whose jobs it binds to by data
    bound: dict[str, set[str]] = field(default_factory=dict)
    #: in a gated ``when`` region: the binding of the gate every command job here takes
    gate: str | None = None
    #: what the parent binds this component's gate input to
    gate_from: str | None = None
    #: completion outputs already exposed (see ``Compiler._completion``)
    done: list[str] | None = None
    #: the component file (relative to the job file); "" for the job itself
    rel: str = ""


@dataclass
class _Variant:
    """One command component file of a component file (SPEC §16), see
    :meth:`Compiler._component_files`."""

    key: str
    body: dict[str, Any]
    rel: str
    ref: ComponentRef
    control: dict[str, Any] = field(default_factory=dict)
    done: dict[str, Any] | None = None

    def fits(self, key: str, control: dict[str, Any]) -> bool:
        """A use with this component and no ``after`` input of another type."""
        return key == self.key and all(self.control.get(k, v) == v for k, v in control.items())

    def document(self) -> dict[str, Any]:
        """The file: https://learn.microsoft.com/azure/machine-learning/reference-yaml-component-command.
        ``name`` is the component's (``^[a-z][a-z0-9_]{0,62}$``, within Azure ML's "lowercase
        letters, numbers, and underscore, at most 255 characters"); ``version`` is a digest of
        the content, so registering a changed file never reuses a version (a job submitted
        with the file registers it anonymously under a hash anyway)."""
        inputs = dict(self.body.get("inputs") or {})
        inputs |= {k: {**v, "optional": True} for k, v in sorted(self.control.items())}
        outputs = dict(self.body.get("outputs") or {})
        if self.done is not None:
            outputs[naming.DONE] = self.done
        data: dict[str, Any] = {
            "$schema": naming.SCHEMA_COMMAND,
            **{k: v for k, v in self.body.items() if k not in ("inputs", "outputs")},
            "name": self.ref.name,
            "display_name": self.ref.name,
        }
        if self.ref.description:
            data["description"] = self.ref.description
        if inputs:
            data["inputs"] = inputs
        if outputs:
            data["outputs"] = outputs
        digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
        data["version"] = "v" + digest[:12]
        return data


@dataclass
class Result:
    job: dict[str, Any]
    components: dict[str, dict[str, Any]]
    diagnostics: list[Diagnostic]
    jobs: int
    control_bindings: list[tuple[str, str]]


class Compiler:
    """Builds the job and its component files; see the module docstring."""

    def __init__(
        self, pipeline: Pipeline, index: PipelineIndex, settings: AzureMLSettings, *, dry: bool = False
    ) -> None:
        """``dry``: find what cannot be expressed without writing commands (used by ``check``)."""
        self.dry = dry
        self.pipeline = pipeline
        self.index = index
        self.settings = settings
        self.components: dict[str, dict[str, Any]] = {}
        self.diagnostics: list[Diagnostic] = []
        self.job_count = 0
        self.control_bindings: list[tuple[str, str]] = []
        self._warned: set[str] = set()
        #: container step → whether it runs its image unchanged (SPEC §21), see :meth:`stock_plan`
        self.plans: dict[str, stock.StockPlan] = {}
        self._exposed = _exposed_outputs(pipeline, index)
        #: component file → the component built for it (for completion outputs added later)
        self._children: dict[str, Component] = {}
        #: (step, metric output) → (Metrics output, metric name): see :meth:`_metric_output`
        self._metric_keys: dict[tuple[str, str | None], tuple[str, str]] = {}
        self._plan_metrics()
        #: import step → the pipeline input holding its artifact; synthetic inputs → (kind, URI)
        self._import_of: dict[str, str] = {}
        self._imports: dict[str, tuple[str, str]] = {}
        self._plan_imports()
        self.gated = self._plan_gates()
        #: steps whose job uses a command component file (SPEC §16), see :meth:`_component_files`
        self._uses: list[str] = []

    # ------------------------------------------------------------------ entry

    def compile(self) -> Result:
        self._check_names()
        root = Component(scope=self.index.root, is_root=True)
        for name, param in self.pipeline.params.items():
            root.inputs[name] = self._param_input(name, param.type, param.default, param.has_default)
        for name, (kind, uri) in sorted(self._imports.items()):
            root.inputs[name] = {"type": kind, "value": {"type": kind, "path": uri}}
        self._scope(root)
        tags: dict[str, str] = {}
        for out, expr in self.pipeline.outputs.items():
            value = self.index.resolved.outputs[out]
            if isinstance(value, MetricValue):
                tags[f"pipecast.output.{out}"] = f"{value.ref.name}.outputs.{self._metric_output(value.ref)}"
                continue
            ref = value.ref if isinstance(value, StepOutput) else None
            if ref is not None:
                type_name = self.index.output_type(self.index.node(ref.name), ref.key or "") or ANY
                if azure_type(type_name) in PRIMITIVE_TYPES:
                    # Pipeline jobs take only asset outputs: name where the value is instead.
                    job_name = self._output_job(self.index.node(ref.name))
                    tags[f"pipecast.output.{out}"] = f"{job_name}.outputs.{ref.key}"
                    continue
            self._bind_output(root, out, expr, value, ("outputs", out))
        settings: dict[str, Any] = {
            # Serverless compute is the reserved name "serverless" (jobs then set instance_type).
            "default_compute": "azureml:serverless"
            if self.settings.serverless
            else f"azureml:{self.settings.default_compute}",
            "default_datastore": f"azureml:{self.settings.datastore}",
            "continue_on_step_failure": self.settings.continue_on_step_failure,
        }
        if self.index.finally_node is not None:
            fin = self.index.finally_node
            root.jobs["finally"] = self._task_job(root, fin)
            settings["on_finalize"] = "finally"
        job: dict[str, Any] = {
            "$schema": naming.SCHEMA_PIPELINE,
            "type": "pipeline",
            "display_name": self.pipeline.name,
            "experiment_name": self.settings.experiment_name or self.pipeline.name,
            "settings": {k: v for k, v in settings.items() if v is not None},
            "jobs": root.jobs,
        }
        if tags:
            job["tags"] = tags
        if self.pipeline.description:
            job["description"] = self.pipeline.description
        if root.inputs:
            job["inputs"] = {k: v["value"] for k, v in root.inputs.items() if "value" in v}
            missing = [k for k, v in root.inputs.items() if "value" not in v]
            for name in missing:
                # A required parameter: Azure ML takes the value at submit time (--set inputs.P=...).
                job["inputs"][name] = None
        if root.outputs:
            job["outputs"] = root.outputs
        self._component_files(root)
        if self.job_count > MAX_JOBS:
            raise UserError(
                Diagnostic(
                    f"target 'azureml': the pipeline compiles to {self.job_count} jobs; an Azure ML "
                    f"pipeline job holds at most {MAX_JOBS}",
                    ("steps",),
                    hint="split the pipeline, or move fan-out into for_each groups (a parallel_for "
                    "counts once, whatever the number of items)",
                    code="limit",
                )
            )
        return Result(job, self.components, self.diagnostics, self.job_count, self.control_bindings)

    def _component_files(self, root: Component) -> None:
        """SPEC §16: each use of a component file references a command component file
        (``component: ./components/<name>.component.yml``, as in the Azure ML CLI v2 examples:
        https://github.com/Azure/azureml-examples/tree/main/cli/jobs/pipelines-with-components),
        and keeps on the job node what a node may set
        (https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-pipeline): its
        inputs (bindings, lifted literals, its step name), outputs, ``compute``, ``resources``,
        ``environment_variables`` and ``limits``. Uses whose component (command, environment,
        input and output types, ``is_deterministic``) comes out the same share one file; a use
        whose settings change it (a retry or timeout the runtime performs, an image, ``cache``,
        a literal left in the spec, a stock step's literals) gets the next variant
        (``<name>-2``). ``after`` inputs are the union over the uses, ``optional: true``, since
        only some uses bind them (the command never reads them)."""
        comps = {id(c.scope): c for c in [root, *self._children.values()]}
        variants: dict[str, list[_Variant]] = {}
        taken: dict[str, int] = {}
        for step in self._uses:
            node = self.index.node(step)
            ref = node.task.component
            assert ref is not None
            comp = comps[id(node.scope)]
            job = comp.jobs[step]
            inline: dict[str, Any] = job["component"]
            inputs = dict(inline.get("inputs") or {})
            control = {k: inputs.pop(k) for k in list(inputs) if k.startswith(naming.AFTER_PREFIX)}
            outputs = dict(inline.get("outputs") or {})
            done = outputs.pop(naming.DONE, None)
            body = {**inline, "inputs": inputs, "outputs": outputs}
            key = json.dumps(body, sort_keys=True)
            found = next((v for v in variants.get(ref.path, []) if v.fits(key, control)), None)
            if found is None:
                taken[ref.name] = taken.get(ref.name, 0) + 1
                rel = naming.command_component_file(ref.name, taken[ref.name])
                found = _Variant(key=key, body=body, rel=rel, ref=ref)
                variants.setdefault(ref.path, []).append(found)
            found.control |= control
            found.done = found.done or done
            job["component"] = "./" + (found.rel if comp.is_root else found.rel.removeprefix("components/"))
        for entries in variants.values():
            for variant in entries:
                self.components[variant.rel] = variant.document()

    def _check_names(self) -> None:
        taken = set(self.index.nodes)
        for node in self.index.walk():
            if not node.is_group and node.task.when is None:
                continue
            for what in (naming.COND, naming.IF, naming.ELSE, naming.BODY, naming.ITEMS, naming.SELECT):
                gen = naming.role(node.name, what)
                if gen in taken:
                    raise UserError(
                        Diagnostic(
                            f"target 'azureml': step name {gen!r} collides with the job pipecast "
                            f"generates for {node.name!r}",
                            self.index.nodes[gen].yaml_path,
                            hint="rename the step (names with '__' are reserved for generated jobs)",
                            code="name-collision",
                        )
                    )

    def _plan_gates(self) -> set[str]:
        """The ``when`` steps lowered by gating instead of ``if_else`` (docs/targets/azureml.md).

        A when-group with outputs, a ``when`` step (task or group) another step reads or waits
        for, every ``when`` inside a gated branch, and the last ``when`` steps of a scope whose
        completion someone waits for: their jobs always start, and the runtime skips those of
        the branch not taken. Everything else keeps ``if_else``.
        """
        return _Gates(self.index).plan()

    def _plan_metrics(self) -> None:
        """Every metric a condition, an input or an output reads (``steps.S.outputs.O.NAME``,
        SPEC §15) becomes a ``number`` output of S's job, which the runtime fills from the
        Metrics file after the step (``out.O.NAME`` in its values): Azure ML passes jobs values
        only through outputs, and a condition job reads a number, not a folder."""
        found: list[tuple[StepNode | None, Ref]] = [
            (None, r.ref) for v in self.index.resolved.outputs.values() for r in refs_of(v)
        ]
        for node in self.index.walk():
            resolved = node.resolved
            if resolved.when is not None:
                found += [(node, r) for r in cond.paths(resolved.when)]
            values_ = [*resolved.inputs.values(), *resolved.outputs.values(), *resolved.else_outputs.values()]
            if resolved.for_each is not None:
                values_.append(resolved.for_each)
            found += [(node, r.ref) for v in values_ for r in refs_of(v)]
        for user, ref in found:
            if ref.kind != "step" or ref.metric is None:
                continue
            producer = self.index.node(ref.name)
            if producer.is_group:
                raise UserError(
                    Diagnostic(
                        f"target 'azureml': {ref.path} reads a metric of group {ref.name!r}'s "
                        "output; Azure ML gets a metric from the job that wrote it",
                        user.yaml_path if user is not None else ("outputs",),
                        hint=f"read the metric from the step inside {ref.name!r} that writes it",
                        code="unsupported-feature",
                    )
                )
            self._metric_keys[(ref.name, self._metric_output(ref))] = (ref.key or "", ref.metric)

    @staticmethod
    def _metric_output(ref: Ref) -> str:
        """The job output carrying one metric: ``<output>__<metric>`` (Azure ML names)."""
        return metric_output_name(ref.key or "", ref.metric or "")

    def metric_outputs(self, step: str) -> dict[str, tuple[str, str]]:
        """The metric outputs of ``step``'s job: output name → (Metrics output, metric)."""
        return {
            key: found for (name, key), found in sorted(self._metric_keys.items()) if name == step and key
        }

    def _param_input(self, name: str, type_name: str, default: Any, has_default: bool) -> dict[str, Any]:
        if values.is_artifact(type_name):
            # SPEC §14: an artifact parameter is a data input with a path (set another at submit
            # time: --set inputs.P.path=...); https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-pipeline
            kind = uri_kind(default) if has_default else "uri_folder"
            value: dict[str, Any] = {"type": kind}
            if has_default:
                value["path"] = default
            return {"type": kind, "value": value}
        decl: dict[str, Any] = {"type": azure_type(type_name)}
        if has_default:
            decl["value"] = param_input_value(type_name, default)
        return decl

    def _plan_imports(self) -> None:
        """SPEC §14 on Azure ML: an import step runs no job; its artifact is a pipeline input
        ``<step>__artifact`` of type ``uri_folder``/``uri_file`` with the URI as ``path`` (what
        Azure ML mounts for the jobs that read it), and readers bind to it like a parameter. An
        import whose URI is exactly an artifact parameter reads that parameter's input."""
        for name, param in self.pipeline.params.items():
            if values.is_artifact(param.type) and param.has_default:
                _check_azure_uri(str(param.default), ("params", name, "default"), f"parameter {name!r}")
        for node in self.index.tasks():
            spec = node.task.import_
            if spec is None:
                continue
            path = (*node.yaml_path, "import", "uri")
            if node.task.when is not None:
                raise UserError(
                    Diagnostic(
                        f"target 'azureml': import step {node.name!r} has a when; its artifact is a "
                        "pipeline input, which no condition can withhold",
                        (*node.yaml_path, "when"),
                        hint="put the when on the steps that read the artifact",
                        code="unsupported-feature",
                    )
                )
            uri = node.resolved.import_uri
            ref = uri.ref if isinstance(uri, RefNode) else None
            if (
                ref is not None
                and ref.kind == "param"
                and values.is_artifact(self.pipeline.params[ref.name].type)
            ):
                self._import_of[node.name] = ref.name
                continue
            if "{{" in spec.uri:
                raise UserError(
                    Diagnostic(
                        f"target 'azureml': import step {node.name!r} builds its URI from references "
                        f"({spec.uri!r}); Azure ML takes an input's path as it is written",
                        path,
                        hint="declare an artifact parameter (type: Dataset, ...) and import "
                        "'{{ params.NAME }}', or write the whole URI",
                        code="unsupported-feature",
                    )
                )
            _check_azure_uri(spec.uri, path, f"import step {node.name!r}")
            channel = naming.step_channel(node.name, IMPORT_OUTPUT)
            self._import_of[node.name] = channel
            self._imports[channel] = (uri_kind(spec.uri), spec.uri)

    # ------------------------------------------------------------------ scopes

    def _scope(self, comp: Component) -> None:
        scope = comp.scope
        for name in self.index.toposort(scope):
            node = scope.steps[name]
            comp.bound.setdefault(name, set())
            if node.is_group:
                if node.group.is_loop:
                    self._loop(comp, node)
                else:
                    self._condition_group(comp, node)
            else:
                self._task(comp, node)
        self._control_edges(comp)

    def _add(self, comp: Component, sibling: str, job_name: str, job: dict[str, Any]) -> None:
        comp.jobs[job_name] = job
        comp.owner[job_name] = sibling
        self.job_count += 1

    # ------------------------------------------------------------------ values

    def _source(self, ref: Ref) -> Source:
        if ref.kind == "param":
            return ("param", ref.name, None)
        if ref.kind == "step" and ref.name in self._import_of:
            return ("param", self._import_of[ref.name], None)  # SPEC §14: a pipeline input
        if ref.kind == "step" and ref.metric is not None:
            # SPEC §15: the producer's job publishes the metric as its own number output.
            return ("step", ref.name, self._metric_output(ref))
        if ref.kind == "step":
            return ("step", ref.name, ref.key)
        if ref.kind == "loop":
            return ("loop", ref.name, None)
        raise AssertionError(ref)

    def _source_type(self, source: Source) -> str:
        kind, name, key = source
        if kind == "param" and name in self._imports:
            step = next(s for s, i in self._import_of.items() if i == name)
            return self.index.node(step).task.import_.type  # type: ignore[union-attr]
        if kind == "param":
            return self.pipeline.params[name].type
        if kind == "step":
            if (name, key) in self._metric_keys:
                return "float"
            return self.index.output_type(self.index.node(name), key or "") or ANY
        return ANY  # loop items travel as text; the runtime parses them by the input's type

    def _bind(self, comp: Component, source: Source, user: str | None) -> str:
        """The binding expression for ``source`` inside ``comp``; records dependencies."""
        kind, name, key = source
        if kind == "param":
            if not comp.is_root:
                self._need(comp, name, source)
            return f"${{{{parent.inputs.{name}}}}}"
        if kind == "loop":
            channel = naming.loop_channel(name)
            if comp.scope.loop_var != name:
                self._need(comp, channel, source)
            return f"${{{{parent.inputs.{channel}}}}}"
        producer = self.index.node(name)
        if producer.scope is comp.scope:
            if user is not None:
                comp.bound.setdefault(user, set()).add(name)
            return f"${{{{parent.jobs.{self._output_job(producer)}.outputs.{key}}}}}"
        channel = naming.step_channel(name, key or "")
        self._need(comp, channel, source)
        return f"${{{{parent.inputs.{channel}}}}}"

    def _output_job(self, node: StepNode) -> str:
        """The job whose outputs are ``node``'s: a gated when-group's select job, else its own."""
        if node.is_group and node.group.is_condition:
            if node.name not in self.gated:
                raise UserError(_when_outputs_error(node))
            return naming.role(node.name, naming.SELECT)
        return node.name

    def _need(self, comp: Component, channel: str, source: Source) -> None:
        if channel not in comp.inputs:
            comp.inputs[channel] = {"type": self._decl_type(source)}
            comp.external[channel] = source

    # ------------------------------------------------------------------ tasks

    def _task(self, comp: Component, node: StepNode) -> None:
        if node.task.is_import:
            return  # a pipeline input (see _plan_imports): no job
        if node.name in self.gated:
            # A gated `when` step: the one-step group it is. The condition job outputs the gate;
            # the step's job always starts and the runtime skips it when the gate is closed.
            cond_name = naming.role(node.name, naming.COND)
            self._add(comp, node.name, cond_name, self._cond_job(comp, node, node.task.when or ""))
            gate = f"${{{{parent.jobs.{cond_name}.outputs.result}}}}"
            self._add(comp, node.name, node.name, self._task_job(comp, node, gate))
            return
        job = self._task_job(comp, node, comp.gate)
        if node.task.when is None:
            self._add(comp, node.name, node.name, job)
            return
        # `when` on a task: a condition job and an if_else whose true block is the task itself.
        cond_name = naming.role(node.name, naming.COND)
        self._add(comp, node.name, cond_name, self._cond_job(comp, node, node.task.when))
        self._add(comp, node.name, node.name, job)
        self._add(
            comp,
            node.name,
            naming.role(node.name, naming.IF),
            {
                "type": "if_else",
                "condition": f"${{{{parent.jobs.{cond_name}.outputs.result}}}}",
                "true_block": f"${{{{parent.jobs.{node.name}}}}}",
            },
        )

    def _task_job(self, comp: Component, node: StepNode, gate: str | None = None) -> dict[str, Any]:
        task = node.task
        eff = self.index.effective(node)
        retries = eff.retry.attempts > 1
        in_decl: dict[str, dict[str, Any]] = {}
        in_bind: dict[str, str] = {}
        args: list[tuple[str, str]] = []
        templates: dict[str, Any] = {}
        channels: dict[Source, str] = {}
        user = node.name if node is not self.index.finally_node else None
        resolved_inputs = node.resolved.inputs
        for name, value in task.inputs.items():
            rv = resolved_inputs[name]
            structured = isinstance(rv, ListOf | DictOf)
            if not (isinstance(value, str) and "{{" in value) and not structured:
                continue
            ref = rv.ref if isinstance(rv, RefNode) else None
            if (ref is not None and ref.kind in ("param", "step")) or (
                ref is not None and ref.kind == "loop" and ref.key is None
            ):
                source = self._source(ref)
                in_decl[name] = {"type": self._decl_type(source)}
                in_bind[name] = self._bind(comp, source, user)
                args.append((self._value_file(source, name), f"${{{{inputs.{name}}}}}"))
                continue
            templates[name] = self._template(
                comp, value, rv, channels, in_decl, in_bind, args, user, structured
            )
        plan = self.stock_plan(node)
        stock_run = plan is not None and plan.stock
        lifted = self._use_inputs(node, stock_run, in_decl, in_bind, args, templates)
        if gate is not None:
            _gate_input(gate, in_decl, in_bind, args)
        outputs = {o: {"type": "uri_folder" if stock_run else azure_type(t)} for o, t in task.outputs.items()}
        out_args = [(f"out.{o}", f"${{{{outputs.{o}}}}}") for o in task.outputs]
        for out, (metrics_out, metric) in self.metric_outputs(node.name).items():
            outputs[out] = {"type": "number"}
            out_args.append((f"out.{metrics_out}.{metric}", f"${{{{outputs.{out}}}}}"))
        command = ""
        if stock_run and not self.dry:
            command = self._stock_command(node, in_decl)
        elif not self.dry:
            timeout_in_runtime = retries and eff.timeout is not None
            command = self._runtime_job_command(node, timeout_in_runtime, args, out_args, templates, lifted)
        component: dict[str, Any] = {
            "type": "command",
            "command": command,
            "environment": self._environment(eff.image, node),
            "is_deterministic": bool(eff.cache),
        }
        if in_decl:
            component["inputs"] = in_decl
        if outputs:
            component["outputs"] = outputs
        job: dict[str, Any] = {"type": "command", "component": component}
        if in_bind:
            job["inputs"] = in_bind
        # The runtime sets the step's env from the spec; environment_variables repeats it for
        # Azure ML's UI, except values Azure ML would read as its own expressions (${{ }}, $[[ ]]).
        env = {k: v for k, v in eff.env.items() if not needs_encoding(v)}
        if eff.secrets:
            env["PIPECAST_AZURE_KEYVAULT_URL"] = self.settings.key_vault_url or self._placeholder(
                "key_vault_url", node, "secrets need the Key Vault URL"
            )
        if env:
            job["environment_variables"] = env
        if eff.timeout is not None:
            job["limits"] = {"timeout": _job_timeout(eff)}
        self._compute(job, node, eff.resources)
        return job

    def _shares_file(self, node: StepNode) -> bool:
        """Whether ``node``'s job uses a command component file (SPEC §16): a use of a component
        file, not the pipeline's ``finally`` (``settings.on_finalize``)."""
        return uses_component_file(node.task) and node is not self.index.finally_node

    def _use_inputs(
        self, node: StepNode, stock_run: bool, in_decl: dict[str, Any], in_bind: dict[str, str],
        args: list[tuple[str, str]], templates: dict[str, Any],
    ) -> dict[str, str]:  # fmt: skip
        """SPEC §16: a component file's command is the same for every use; what differs per
        use travels as job inputs: its literal values, its step name, and the inputs the
        runtime renders (``--templates``: mixed strings, structured values), as the string
        input ``pipecast_templates`` (one line of JSON without ``$``) that the command writes
        to ``templates.json`` and passes as ``--templates @file``. A stock step's literals are
        text in its command (each distinct use gets its own file). Returns the lifted literals
        (see :meth:`_lift_literals`)."""
        if not self._shares_file(node):
            return {}
        self._uses.append(node.name)
        if stock_run:
            return {}
        lifted = self._lift_literals(node, in_decl, in_bind, args)
        in_decl[naming.STEP] = {"type": "string"}
        in_bind[naming.STEP] = node.name
        args.append((STEP_FILE, f"${{{{inputs.{naming.STEP}}}}}"))
        if templates:
            in_decl[naming.TEMPLATES] = {"type": "string"}
            in_bind[naming.TEMPLATES] = safe_json(templates)
            args.append((TEMPLATES_FILE, f"${{{{inputs.{naming.TEMPLATES}}}}}"))
        return lifted

    def _lift_literals(
        self, node: StepNode, in_decl: dict[str, Any], in_bind: dict[str, str], args: list[tuple[str, str]]
    ) -> dict[str, str]:
        """A component use's literal inputs as job inputs with a value (what a pipeline job node
        may set: https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-pipeline),
        so the component's command does not hold them. Returns input → the type the runtime
        parses it by. Left in the spec (the command): artifact URIs, ``null``, empty strings
        and strings ending in a newline (Azure ML documents no exact round trip for those), and
        strings starting with ``pipecast:`` (the runtime reads ``pipecast:skipped`` and
        ``pipecast:missing-metric:`` in an input value as markers)."""
        task = node.task
        assert task.component is not None
        declared = task.component.inputs
        lifted: dict[str, str] = {}
        for name, value in task.inputs.items():
            if name in in_decl or value is None or (isinstance(value, str) and "{{" in value):
                continue
            type_name = declared.get(name, ANY)
            if type_name == ANY:
                type_name = values.json_type_of(value) or ANY
            if values.is_artifact(type_name) or azure_type(type_name) not in PRIMITIVE_TYPES:
                continue
            if isinstance(value, str) and (
                not value or value.endswith("\n") or value.startswith("pipecast:")
            ):
                continue
            in_decl[name] = {"type": azure_type(type_name)}
            in_bind[name] = param_input_value(type_name, value)  # type: ignore[assignment]
            args.append((f"in.{name}", f"${{{{inputs.{name}}}}}"))
            lifted[name] = type_name
        return lifted

    def _runtime_job_command(
        self, node: StepNode, timeout_in_runtime: bool, args: list[tuple[str, str]],
        out_args: list[tuple[str, str]], templates: dict[str, Any], lifted: dict[str, str],
    ) -> str:  # fmt: skip
        """The command of a job that runs the step through the pipecast runtime.

        A use of a component file (:meth:`_shares_file`) gets the spec every use shares: it
        names the component (the runtime reads the step's name from ``step.name``), its lifted
        literals are plain typed inputs, and its env is left to the job's
        ``environment_variables`` (except values Azure ML would read as expressions)."""
        # cache_store="": the spec carries the SPEC §20 definition digest and cache.version
        # into the command, which Azure ML's reuse of deterministic components keys on.
        spec = step_spec(
            self.index, node, retry_in_runtime=True, timeout_in_runtime=timeout_in_runtime,
            secret_store="azure", cache_store="",
        )  # fmt: skip
        spec, warning = without_max_age(
            spec, node, "azureml", "Azure ML reuses a deterministic job's outputs whatever their age"
        )
        if warning is not None:
            self.diagnostics.append(warning)
        built = {n: InputSpec(type=i.type) for n, i in spec.inputs.items() if n in templates and i.literal}
        if built:  # list/mapping literals holding references: the runtime builds them (SPEC §19)
            spec = spec.model_copy(update={"inputs": spec.inputs | built})
        if self._shares_file(node):
            assert node.task.component is not None
            spec = spec.model_copy(
                update={
                    "step": node.task.component.name,
                    "inputs": spec.inputs | {n: InputSpec(type=t) for n, t in lifted.items()},
                    "env": {k: v for k, v in spec.env.items() if needs_encoding(v)},
                }
            )
        return self._runtime_command(spec, args, out_args, templates)

    def _template(
        self, comp: Component, value: Any, resolved: Value, channels: dict[Source, str],
        in_decl: dict[str, Any], in_bind: dict[str, str], args: list[tuple[str, str]], user: str | None,
        structured: bool,
    ) -> dict[str, Any]:  # fmt: skip
        """A value the runtime renders (``--templates``): a mixed string, or a list/mapping
        literal holding references (SPEC §19), each reference an input ``pipecast_refN``.
        In a structured value each reference also names its type, so it keeps it (an artifact
        arrives as the step's local path)."""
        refs: dict[str, list[Any]] = {}
        for r in (n.ref for n in refs_of(resolved)):
            if r.kind == "pipeline":
                refs[r.path] = [None, None]
                continue
            source = self._source(r)
            channel = channels.get(source)
            if channel is None:
                channel = f"{naming.REF_PREFIX}{len(channels)}"
                channels[source] = channel
                in_decl[channel] = {"type": self._decl_type(source)}
                in_bind[channel] = self._bind(comp, source, user)
                args.append((self._value_file(source, channel), f"${{{{inputs.{channel}}}}}"))
            refs[r.path] = [channel, r.key if r.kind == "loop" else None]
            if structured and r.kind != "loop":
                refs[r.path].append("float" if r.metric is not None else self._source_type(source))
        return {"template": value, "refs": refs}

    # ------------------------------------------------------------------ stock images (SPEC §21)

    def stock_plan(self, node: StepNode) -> stock.StockPlan | None:
        """Whether a container step runs its image unchanged (``None`` for a python step)."""

        def reasons(run: ContainerRun) -> list[str]:
            eff = self.index.effective(node)
            out = []
            if eff.secrets:
                out.append(stock.SECRETS_REASON + " (Key Vault)")
            if any(needs_encoding(v) for v in eff.env.values()):
                out.append("an env value holds text Azure ML reads as its own expression")
            if stock.uses_pipeline_fields(run):
                out.append(stock.PIPELINE_FIELDS_REASON)
            return out

        def input_reason(slot: stock.Slot, ref: Ref) -> str | None:
            if ref.kind == "loop":
                return f"input {slot.name!r} is a loop item (items travel as pipecast's JSON)"
            if self._decl_type(self._source(ref)) == "mltable":
                return f"input {slot.name!r} is a list of artifacts (no single local path)"
            if ref.kind == "param":
                param = self.pipeline.params[ref.name]
                if isinstance(param.default, str) and needs_encoding(param.default):
                    return f"the default of parameter {ref.name!r} travels encoded"
            return None

        def later(run: ContainerRun) -> list[str]:
            return self._runtime_reasons(node)

        return stock.plan(self.plans, node, reasons, input_reason, later)

    def _runtime_reasons(self, node: StepNode) -> list[str]:
        """What needs the runtime around a container step once compiled (SPEC §21)."""
        out = []
        if self.metric_outputs(node.name):
            out.append("a metric it writes is read by a condition or input (the runtime publishes it)")
        if self._may_skip(node):
            out.append(
                "it is in a gated when branch or a for_each over a run-time list (the runtime skips "
                "it when the branch is not taken or the list is empty)"
            )
        for ref in (r.ref for v in node.resolved.inputs.values() for r in refs_of(v)):
            if ref.kind == "step" and self._may_skip(self.index.node(ref.name)):
                out.append(f"it reads {ref.name!r}, which may be skipped (the runtime reads markers)")
                break
        for name, type_name in node.task.outputs.items():
            if not values.is_artifact(type_name) and (node.name, name) in self._exposed:
                out.append(f"parameter output {name!r} is a group or pipeline output (a control output)")
        return out

    def _may_skip(self, node: StepNode) -> bool:
        """Whether ``node``'s jobs start and may be skipped by the runtime (gated, or inside a gate)."""
        if node.name in self.gated:
            return True
        # The body of a for_each over a run-time list is gated by its items job (an empty list).
        return any(n.name in self.gated or runtime_items(n) for n in self.index.ancestors(node))

    def _is_stock_param(self, source: Source) -> bool:
        """Whether ``source`` is a parameter output of a stock step: a file in a ``uri_folder``."""
        kind, name, key = source
        if kind != "step" or self.index.node(name).is_group or (name, key) in self._metric_keys:
            return False
        producer = self.index.node(name)
        plan = self.stock_plan(producer)
        return plan is not None and plan.stock and not values.is_artifact(producer.task.outputs[key or ""])

    def _decl_type(self, source: Source, type_name: str | None = None) -> str:
        """The Azure ML type of an input bound to ``source``."""
        if self._is_stock_param(source):
            return "uri_folder"
        if source[0] == "param" and source[1] in self._imports:
            return self._imports[source[1]][0]
        if source[0] == "param" and values.is_artifact(self.pipeline.params[source[1]].type):
            param = self.pipeline.params[source[1]]
            return uri_kind(param.default) if param.has_default else "uri_folder"
        return azure_type(type_name or self._source_type(source))

    def _value_file(self, source: Source, name: str) -> str:
        """The file in ``$PIPECAST_VALUES`` an input lands in: loop items are JSON (``item.``), a
        stock step's parameter output is a folder holding the value's file (``file.``)."""
        if source[0] == "loop":
            return f"item.{name}"
        return f"file.{name}" if self._is_stock_param(source) else f"in.{name}"

    def _stock_command(self, node: StepNode, in_decl: dict[str, dict[str, Any]]) -> str:
        """A stock step's command: the user's command line with Azure ML's ``${{inputs.x}}`` /
        ``${{outputs.y}}`` (https://learn.microsoft.com/azure/machine-learning/reference-yaml-
        component-command), nothing of pipecast in the image.

        Each substitution lands in a quoted here-document read into a shell variable (Azure ML
        pastes values unquoted); the command gets ``"$variable"``. Artifact inputs stored as a
        file next to pipecast's marker resolve to that file. Every output is a ``uri_folder``: the
        command writes ``<folder>/<name>`` (a file or a folder) and the marker then names it, the
        way pipecast stores artifacts there; a parameter output is the value's text in that file
        (Azure ML has no primitive outputs a plain command can set: docs/targets/azureml.md).
        """
        run = node.task.run
        assert isinstance(run, ContainerRun)
        lines = ["set -e"]
        after: list[str] = []
        for slot in stock.slots(run):
            var = f"PIPECAST_{slot.kind.upper()}_{slot.name}"
            if slot.kind == "outputs":
                folder = f"PIPECAST_FOLDER_{slot.name}"
                lines += _read_var(folder, f"${{{{outputs.{slot.name}}}}}")
                lines.append(f'{var}="${folder}/{slot.name}"')
                after.append(stock.sh_store_marker(f"${folder}", slot.name))
                continue
            value = node.task.inputs.get(slot.name)
            if slot.name not in in_decl:
                continue  # a literal: written as text where it is used
            lines += _read_var(var, f"${{{{inputs.{slot.name}}}}}")
            ref = stock.slot_ref(node, slot)
            assert ref is not None, value
            source = self._source(ref)
            if self._is_stock_param(source):
                lines += [f'{var}=$(cat "${var}/{source[2]}"; printf x)', f"{var}=${{{var}%x}}"]
            elif in_decl[slot.name]["type"] == "uri_folder":
                # A file artifact: the folder's one entry beside the marker.
                lines.append(stock.sh_locate_artifact(var))
            elif in_decl[slot.name]["type"] == "boolean":
                lines.append(f"case ${var} in True) {var}=true;; False) {var}=false;; esac")

        def fill(slot: stock.Slot) -> str:
            if slot.kind == "inputs" and slot.name not in in_decl:
                return stock.sh_text(stock.literal_text(node.task.inputs[slot.name]))
            return f'"$PIPECAST_{slot.kind.upper()}_{slot.name}"'

        argv = stock.render_args([*run.command, *run.args], fill, stock.sh_text)
        eff = self.index.effective(node)
        if eff.retry.attempts > 1:
            outs = [f'"$PIPECAST_OUTPUTS_{s.name}"' for s in stock.slots(run) if s.kind == "outputs"]
            lines += self._retry_loop(node, eff, argv, outs)
        else:
            lines.append(" ".join(argv))
        return "\n".join([*lines, *after])

    def _retry_loop(self, node: StepNode, eff: Any, argv: list[str], outs: list[str]) -> list[str]:
        """SPEC §6 retries for a stock command in the shell: command jobs have no retry setting
        (https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command). Each
        attempt starts without the last one's outputs, under the image's ``timeout`` if the step
        has one; the waits are computed now (jitter is dropped, with a warning)."""
        retry = eff.retry
        if retry.jitter:
            self.diagnostics.append(
                Diagnostic(
                    f"azureml: step {node.name!r} runs its image unchanged and retries in its command "
                    "without jitter (SPEC §6)",
                    node.yaml_path,
                    severity="warning",
                    code="jitter-ignored",
                )
            )
        if eff.timeout is not None:
            argv = ["timeout", stock.seconds_text(eff.timeout), *argv]
        waits = " ".join(
            f"{n}) sleep {stock.seconds_text(min(retry.delay * retry.backoff ** (n - 1), retry.max_delay))};;"
            for n in range(1, retry.attempts)
        )
        return [
            "pipecast_attempt=1",
            "while :; do",
            *([f"  rm -rf {' '.join(outs)}"] if outs else []),
            f"  pipecast_status=0; {' '.join(argv)} || pipecast_status=$?",
            '  [ "$pipecast_status" -eq 0 ] && break',
            f'  [ "$pipecast_attempt" -ge {retry.attempts} ] && exit "$pipecast_status"',
            f'  echo "attempt $pipecast_attempt/{retry.attempts} failed (exit $pipecast_status)" >&2',
            f"  case $pipecast_attempt in {waits} esac",
            "  pipecast_attempt=$((pipecast_attempt + 1))",
            "done",
        ]

    def _runtime_command(
        self, spec: StepSpec, args: list[tuple[str, str]], out_args: list[tuple[str, str]],
        templates: dict[str, Any],
    ) -> str:  # fmt: skip
        """The command: every Azure ML substitution in a quoted here-document, then the runtime.

        Azure ML pastes values into the command text unquoted; a quoted here-document body is
        the one place where the shell reads nothing in them (see the ``azureml`` convention).
        The JSON arguments are compile-time text made single-quote- and expression-safe.
        """
        lines = ["set -e", "PIPECAST_VALUES=$(mktemp -d)", *_value_lines([*args, *out_args])]
        parts = [
            shlex.quote(self.settings.python), "-m", "pipecast.runtime", "run",
            "--spec", f"'{_shell_safe(spec.to_arg())}'", "--convention", "azureml",
        ]  # fmt: skip
        if args or out_args:
            parts += ["--values", '"$PIPECAST_VALUES"']
        if any(file == TEMPLATES_FILE for file, _ in args):  # a shared component's (see _use_inputs)
            parts += ["--templates", f'@"$PIPECAST_VALUES/{TEMPLATES_FILE}"']
        elif templates:
            parts += ["--templates", f"'{safe_json(templates)}'"]
        lines.append(" ".join(parts))
        return "\n".join(lines)

    def _environment(self, image: str | None, node: StepNode | None) -> Any:
        if image:
            return {"image": image}
        if self.settings.image:
            return {"image": self.settings.image}
        if self.settings.environment:
            return self.settings.environment
        return {"image": self._placeholder("image", node, "python steps need an image with pipecast")}

    def _placeholder(self, setting: str, node: StepNode | None, why: str) -> str:
        if setting not in self._warned:
            self._warned.add(setting)
            self.diagnostics.append(
                Diagnostic(
                    f"target 'azureml': setting {setting!r} is not set ({why}); the output holds the "
                    f"placeholder {placeholder(setting)!r} and deploy refuses it",
                    node.yaml_path if node is not None else (),
                    hint=f"pass --set {setting}=... or add it to the settings file",
                    severity="warning",
                    code="placeholder",
                )
            )
        return placeholder(setting)

    def _compute(self, job: dict[str, Any], node: StepNode, res: Any) -> None:
        if not needs_vm(res):
            if self.settings.serverless:
                job["resources"] = {"instance_type": "Standard_DS3_v2"}
            return
        own = node.task.resources is not None
        path = (*node.yaml_path, "resources") if own else ("defaults", "resources")
        try:
            vm = pick_vm(res)
        except NoVmSize as exc:
            raise UserError(
                Diagnostic(
                    f"target 'azureml': step {node.name!r}: {exc}", path, hint=exc.hint, code="resources"
                )
            ) from None
        if self.settings.serverless:
            job["resources"] = {"instance_type": vm.name}
            return
        compute = self.settings.computes.get(vm.name)
        if compute is None and vm.gpus:
            # A GPU step cannot run on the default (CPU) cluster: mark it and let deploy refuse.
            compute = self._placeholder(
                "computes",
                node,
                f"step {node.name!r} needs a {vm.name} ({vm.gpus} x {vm.accelerator}); "
                f"set computes.{vm.name}=<gpu cluster> or serverless=true",
            )
            job["compute"] = f"azureml:{compute}"
            return
        if compute is not None and compute != self.settings.default_compute:
            job["compute"] = f"azureml:{compute}"

    # ------------------------------------------------------------------ generated jobs

    def _generated_job(
        self, comp: Component, name: str, function: str, inputs: dict[str, tuple[Any, str]],
        literals: dict[str, Any], outputs: dict[str, str], user: str,
    ) -> dict[str, Any]:  # fmt: skip
        """A command job running one of the convention module's helper functions."""
        spec_inputs = {k: InputSpec(value=v, literal=True) for k, v in literals.items()}
        in_decl: dict[str, Any] = {}
        in_bind: dict[str, str] = {}
        args: list[tuple[str, str]] = []
        for channel, (source, type_name) in inputs.items():
            spec_inputs[channel] = InputSpec(type=type_name)
            in_decl[channel] = {"type": self._decl_type(source, type_name)}
            in_bind[channel] = self._bind(comp, source, user)
            args.append((self._value_file(source, channel), f"${{{{inputs.{channel}}}}}"))
        if comp.gate is not None:
            _gate_input(comp.gate, in_decl, in_bind, args)
        spec = StepSpec(
            pipeline=self.pipeline.name,
            step=name,
            run=PythonRun(python=f"{CONVENTION_MODULE}:{function}"),
            inputs=spec_inputs,
            outputs={o: "bool" if t == "boolean" else "str" for o, t in outputs.items()},
        )
        out_args = [(f"out.{o}", f"${{{{outputs.{o}}}}}") for o in outputs]
        component: dict[str, Any] = {
            "type": "command",
            "command": self._runtime_command(spec, args, out_args, {}),
            "environment": self._environment(self.pipeline.defaults.image, None),
            "is_deterministic": False,
            "outputs": {o: {"type": t, "is_control": True} for o, t in outputs.items()},
        }
        if in_decl:
            component["inputs"] = in_decl
        job: dict[str, Any] = {"type": "command", "component": component}
        if in_bind:
            job["inputs"] = in_bind
        if self.settings.serverless:
            job["resources"] = {"instance_type": "Standard_DS2_v2"}
        return job

    def _cond_job(self, comp: Component, node: StepNode, when: str) -> dict[str, Any]:
        """The job that evaluates a `when` expression (SPEC §5) and outputs a control boolean."""
        expr = node.resolved.when
        assert expr is not None, when
        inputs: dict[str, tuple[Any, str]] = {}
        channels: dict[Source, str] = {}
        refs: dict[str, list[Any]] = {}
        loop_vars = self.index.loop_vars(node.scope)
        for ref in cond.paths(expr):
            if ref.kind == "loop" and ref.name not in loop_vars:
                continue
            source = self._source(ref)
            channel = channels.get(source)
            if channel is None:
                channel = f"v{len(channels)}"
                channels[source] = channel
                type_name = self._source_type(source)
                if ref.kind == "loop":
                    type_name = self.index.loop_item_type(loop_vars[ref.name])
                inputs[channel] = (source, type_name)
            refs[ref.path] = [channel, ref.key if ref.kind == "loop" else None]
        gated = node.is_group and node.name in self.gated
        return self._generated_job(
            comp, naming.role(node.name, naming.COND), "evaluate_gates" if gated else "evaluate_when",
            inputs, {"when": when, "refs": refs},
            {"result": "boolean", "otherwise": "boolean"} if gated else {"result": "boolean"}, node.name,
        )  # fmt: skip

    # ------------------------------------------------------------------ groups

    def _child(
        self, comp: Component, node: StepNode, scope: Scope, branch: str, gate: str | None = None
    ) -> tuple[Component, str]:
        """Compile a group body/branch into a component file; returns it and its relative path.

        ``gate``: the parent-side binding of the child's gate (a gated branch's condition, or
        the parent's own gate, which every component inside a gated region passes on).
        """
        child = Component(scope=scope, is_root=False)
        if scope.loop_var is not None:
            child.inputs[naming.loop_channel(scope.loop_var)] = {"type": "string"}
        gate = gate or comp.gate
        if gate is not None:
            child.inputs[naming.GATE] = {"type": "boolean"}
            child.gate = f"${{{{parent.inputs.{naming.GATE}}}}}"
            child.gate_from = gate
        self._scope(child)
        group = node.group
        exprs = group.outputs if branch != naming.ELSE else (group.else_.outputs if group.else_ else {})
        if group.is_condition and exprs and node.name not in self.gated:
            raise UserError(_when_outputs_error(node))
        values_ = node.resolved.outputs if branch != naming.ELSE else node.resolved.else_outputs
        for out, expr in exprs.items():
            self._bind_output(child, out, expr, values_[out], (*node.yaml_path, "outputs", out))
        rel = naming.component_file(node.name, "" if branch in ("", naming.BODY) else branch)
        data: dict[str, Any] = {
            "$schema": naming.SCHEMA_COMPONENT,
            "name": naming.component_name(
                self.pipeline.name, node.name, branch if branch == naming.ELSE else ""
            ),
            "display_name": node.name + (" (else)" if branch == naming.ELSE else ""),
            "type": "pipeline",
            "jobs": child.jobs,
        }
        if child.inputs:
            data["inputs"] = child.inputs
        if child.outputs:
            data["outputs"] = child.outputs
        if node.step.description:
            data["description"] = node.step.description
        self.components[rel] = data
        self._children[rel] = child
        child.rel = rel
        return child, rel

    def _bind_output(
        self, comp: Component, out: str, expr: str, value: Value, path: tuple[str | int, ...]
    ) -> None:
        ref = value.ref if isinstance(value, StepOutput) else None
        if ref is None:
            raise UserError(
                Diagnostic(
                    f"target 'azureml': output {out!r} must be exactly one step output reference "
                    f"({json.dumps(expr)} is not): Azure ML outputs are bound from jobs",
                    path,
                    hint="add a step that computes the value and expose its output",
                    code="unsupported-feature",
                )
            )
        producer = comp.scope.steps[ref.name]
        if ref.name in self._import_of:
            raise UserError(
                Diagnostic(
                    f"target 'azureml': output {out!r} exposes import step {ref.name!r}'s artifact; "
                    "Azure ML outputs are bound from jobs, and an import is a pipeline input",
                    path,
                    hint="expose the output of a step that reads the artifact",
                    code="unsupported-feature",
                )
            )
        job = comp.jobs[self._output_job(producer)]
        outs = job.setdefault("outputs", {})
        key = self._source(ref)[2]  # a metric: the job's number output carrying it
        if key in outs:
            raise UserError(
                Diagnostic(
                    f"target 'azureml': output {ref.key!r} of {ref.name!r} is exposed twice; an Azure ML "
                    "job output binds to one parent output",
                    path,
                    hint="expose it once and reuse that output",
                    code="unsupported-feature",
                )
            )
        outs[key] = f"${{{{parent.outputs.{out}}}}}"
        type_name = self._source_type(("step", ref.name, key))
        comp.outputs[out] = {"type": azure_type(type_name)}

    def _node_inputs(self, comp: Component, child: Component, user: str) -> dict[str, str]:
        return {ch: self._bind(comp, src, user) for ch, src in sorted(child.external.items())}

    def _pipeline_node(self, comp: Component, child: Component, rel: str, user: str) -> dict[str, Any]:
        # The job file sits above components/; component files sit beside each other.
        target = rel if comp.is_root else rel.removeprefix("components/")
        node_job: dict[str, Any] = {"type": "pipeline", "component": "./" + target}
        inputs = self._node_inputs(comp, child, user)
        if child.gate_from is not None:
            inputs[naming.GATE] = child.gate_from
        if inputs:
            node_job["inputs"] = inputs
        return node_job

    def _condition_group(self, comp: Component, node: StepNode) -> None:
        group = node.group
        assert group.when is not None and node.body is not None
        if node.name in self.gated:
            self._gated_group(comp, node)
            return
        cond_name = naming.role(node.name, naming.COND)
        self._add(comp, node.name, cond_name, self._cond_job(comp, node, group.when))
        then, rel = self._child(comp, node, node.body, "")
        self._add(comp, node.name, node.name, self._pipeline_node(comp, then, rel, node.name))
        if_job: dict[str, Any] = {
            "type": "if_else",
            "condition": f"${{{{parent.jobs.{cond_name}.outputs.result}}}}",
            "true_block": f"${{{{parent.jobs.{node.name}}}}}",
        }
        if node.else_body is not None:
            other, rel_else = self._child(comp, node, node.else_body, naming.ELSE)
            else_name = naming.role(node.name, naming.ELSE)
            self._add(comp, node.name, else_name, self._pipeline_node(comp, other, rel_else, node.name))
            if_job["false_block"] = f"${{{{parent.jobs.{else_name}}}}}"
        self._add(comp, node.name, naming.role(node.name, naming.IF), if_job)

    def _gated_group(self, comp: Component, node: StepNode) -> None:
        """A when-group without ``if_else``: both branches start, gated by the condition job's
        ``result``/``otherwise``; ``<g>__select`` publishes the outputs of the branch that ran
        and, once every last job of both branches is done, the group's completion.

        Why: an ``if_else`` node has only ``condition``/``true_block``/``false_block`` (no
        outputs: https://learn.microsoft.com/python/api/azure-ai-ml/azure.ai.ml.dsl, the SDK's
        ``ConditionNode``), and jobs are ordered only through data bindings
        (https://learn.microsoft.com/azure/machine-learning/reference-yaml-core-syntax).
        """
        group = node.group
        assert group.when is not None and node.body is not None
        cond_name = naming.role(node.name, naming.COND)
        self._add(comp, node.name, cond_name, self._cond_job(comp, node, group.when))
        gate = f"${{{{parent.jobs.{cond_name}.outputs.result}}}}"
        then, rel = self._child(comp, node, node.body, "", gate)
        self._add(comp, node.name, node.name, self._pipeline_node(comp, then, rel, node.name))
        branches: list[tuple[str, str, Component]] = [("then", node.name, then)]
        if node.else_body is not None:
            gate = f"${{{{parent.jobs.{cond_name}.outputs.otherwise}}}}"
            other, rel_else = self._child(comp, node, node.else_body, naming.ELSE, gate)
            else_name = naming.role(node.name, naming.ELSE)
            self._add(comp, node.name, else_name, self._pipeline_node(comp, other, rel_else, node.name))
            branches.append(("else", else_name, other))
        self._add(
            comp, node.name, naming.role(node.name, naming.SELECT), self._select_job(comp, node, branches)
        )

    def _select_job(
        self, comp: Component, node: StepNode, branches: list[tuple[str, str, Component]]
    ) -> dict[str, Any]:
        """The command job copying the taken branch's outputs (the runtime's ``select``)."""
        cond_name = naming.role(node.name, naming.COND)
        in_decl: dict[str, Any] = {"pipecast_branch": {"type": "boolean"}}
        in_bind = {"pipecast_branch": f"${{{{parent.jobs.{cond_name}.outputs.result}}}}"}
        args = [("in.pipecast_branch", "${{inputs.pipecast_branch}}")]
        table: dict[str, dict[str, Any]] = {}
        out_decl: dict[str, Any] = {}
        for side, job_name, child in branches:
            for out, decl in sorted(child.outputs.items()):
                channel = f"{side}__{out}"
                in_decl[channel] = dict(decl)
                in_bind[channel] = f"${{{{parent.jobs.{job_name}.outputs.{out}}}}}"
                args.append((f"in.{channel}", f"${{{{inputs.{channel}}}}}"))
                artifact = decl["type"] not in PRIMITIVE_TYPES
                value = (node.resolved.outputs if side == "then" else node.resolved.else_outputs)[out]
                ref = value.ref if isinstance(value, RefNode) else None
                type_name = (
                    self.index.output_type(self.index.node(ref.name), ref.key or "")
                    if ref is not None
                    else None
                ) or ANY
                entry = table.setdefault(out, {"artifact": artifact, "type": type_name})
                entry[side] = True
                out_decl[out] = dict(decl)
            # Completion: wait for every last job of the branch, whatever it outputs.
            for done in self._completion(child):
                channel = f"after__{side}__{done.removeprefix(naming.DONE_PREFIX)}"
                in_bind[channel] = f"${{{{parent.jobs.{job_name}.outputs.{done}}}}}"
                in_decl[channel] = {"type": str(self.components_output_type(child, done))}
        if comp.gate is not None:
            _gate_input(comp.gate, in_decl, in_bind, args)
        return self._convention_job(
            f"select --outputs '{safe_json(table)}'", args, in_decl, in_bind, out_decl
        )

    def components_output_type(self, child: Component, out: str) -> str:
        return str(child.outputs[out]["type"])

    def _completion(self, child: Component) -> list[str]:
        """Expose the completion of ``child``'s last jobs as its outputs ``pipecast_done__<sink>``.

        Azure ML orders jobs only through data: waiting for a group means binding to an output
        of each job nothing else in it waits for.
        """
        if child.done is not None:
            return child.done
        child.done = []
        deps = self.index.deps(child.scope)
        for sink in _sinks(child.scope, deps):
            for job_name, output in self._anchors(child, sink):
                bindings = child.jobs[job_name].setdefault("outputs", {})
                bound = bindings.get(output)
                if bound is not None:  # already a component output: wait on that one
                    child.done.append(bound.removeprefix("${{parent.outputs.").removesuffix("}}"))
                    continue
                name = naming.DONE_PREFIX + job_name
                if name in child.outputs:
                    name += "__" + output.removeprefix(naming.DONE_PREFIX)
                bindings[output] = f"${{{{parent.outputs.{name}}}}}"
                kind = self._output_type(child, job_name, output)
                child.outputs[name] = {"type": kind}
                child.done.append(name)
                self.components[child.rel]["outputs"] = child.outputs
        return child.done

    def _anchors(self, comp: Component, producer: str) -> list[tuple[str, str]]:
        """(job, output) pairs that are complete once ``producer`` (a sibling in ``comp``) is."""
        node = comp.scope.steps[producer]
        if producer in self._import_of:
            return []  # an import: its data exists before the run starts
        if node.is_task:
            job = comp.jobs[producer]
            outs = job["component"].setdefault("outputs", {})
            outs.setdefault(naming.DONE, {"type": "uri_folder"})
            return [(producer, naming.DONE)]
        if node.group.is_condition:
            select = naming.role(producer, naming.SELECT)
            outs = comp.jobs[select]["component"].setdefault("outputs", {})
            outs.setdefault(naming.DONE, {"type": "uri_folder"})
            return [(select, naming.DONE)]
        if node.group.outputs:
            return [(producer, sorted(node.group.outputs)[0])]
        if is_empty_loop(node):  # one command job (see _empty_loop)
            outs = comp.jobs[producer]["component"].setdefault("outputs", {})
            outs.setdefault(naming.DONE, {"type": "uri_folder"})
            return [(producer, naming.DONE)]
        rel = naming.component_file(producer, "")
        return [(producer, done) for done in self._completion(self._children[rel])]

    def _loop(self, comp: Component, node: StepNode) -> None:
        """A ``for_each``: ``parallel_for`` over the body node, items inline or from ``<g>__items``.

        Azure ML's ``parallel_for`` rejects empty items ("Items is an empty list/dict": the
        SDK's ``ParallelFor._validate_items``, and the service at run time), while SPEC says an
        empty list completes the group with empty outputs. So a literal ``[]`` compiles to one
        ``<g>`` command job giving the empty outputs (:meth:`_empty_loop`), and a list known
        only at run time comes from ``<g>__items``, which turns an empty list into one sentinel
        item and gates every body job with its ``nonempty`` output: the body then writes only
        skipped markers, which readers of the collected outputs drop (``[]``).
        """
        group = node.group
        assert node.body is not None and node.body.loop_var is not None
        items = node.resolved.for_each
        ref = items.ref if isinstance(items, RefNode) else None
        if ref is None and not group.for_each:
            self._empty_loop(comp, node)
            return
        var_channel = naming.loop_channel(node.body.loop_var)
        items_name = naming.role(node.name, naming.ITEMS)
        at_run_time = runtime_items(node)
        body_gate = f"${{{{parent.jobs.{items_name}.outputs.nonempty}}}}" if at_run_time else None
        if at_run_time:
            # Before the body: the body binds to its gate (and so to the items job).
            self._add(comp, node.name, items_name, self._items_job(comp, node, ref, var_channel))
        body, rel = self._child(comp, node, node.body, naming.BODY, body_gate)
        body_name = naming.role(node.name, naming.BODY)
        self._add(comp, node.name, body_name, self._pipeline_node(comp, body, rel, node.name))
        loop: dict[str, Any] = {"type": "parallel_for", "body": f"${{{{parent.jobs.{body_name}}}}}"}
        if not at_run_time:
            # A literal list: the items are known now.
            loop["items"] = json.dumps([{var_channel: item_text(v)} for v in group.for_each], sort_keys=True)
        else:
            loop["items"] = f"${{{{parent.jobs.{items_name}.outputs.items}}}}"
        if group.parallelism is not None:
            loop["max_concurrency"] = group.parallelism
        # parallel_for shares its outputs (aggregated) with the body: nothing to declare here.
        self._add(comp, node.name, node.name, loop)

    def _items_job(
        self, comp: Component, node: StepNode, ref: Ref | None, var_channel: str
    ) -> dict[str, Any]:
        """``<g>__items``: the ``parallel_for`` items and the body's gate ``nonempty`` (the
        convention's ``items`` command; a closed gate of its own region also closes the body's).
        A list literal holding references (SPEC §19) is built by the runtime (``--template``)."""
        in_decl: dict[str, Any] = {}
        in_bind: dict[str, str] = {}
        args: list[tuple[str, str]] = []
        key = ""
        if ref is None:
            assert node.resolved.for_each is not None
            template = self._template(
                comp, node.group.for_each, node.resolved.for_each, {}, in_decl, in_bind, args, node.name, True
            )
            key = f" --template '{safe_json(template)}'"
        else:
            source = self._source(ref)
            type_name = self._source_type(source) if ref.kind != "loop" else "list"
            in_decl["values"] = {"type": self._decl_type(source, type_name)}
            in_bind["values"] = self._bind(comp, source, node.name)
            args.append((self._value_file(source, "values"), "${{inputs.values}}"))
            if ref.kind == "loop" and ref.key is not None:
                key = f" --key {shlex.quote(ref.key)}"
        if comp.gate is not None:
            _gate_input(comp.gate, in_decl, in_bind, args)
        outputs = {"items": "string", "nonempty": "boolean"}
        job = self._convention_job(
            f"items --name {var_channel}{key}", args, in_decl, in_bind,
            {o: {"type": t, "is_control": True} for o, t in outputs.items()},
        )  # fmt: skip
        return job

    def _empty_loop(self, comp: Component, node: StepNode) -> None:
        """A ``for_each: []``: one ``<g>`` command job whose outputs are the group's after no
        iteration (the convention's ``empty`` command); the body is not compiled."""
        in_decl: dict[str, Any] = {}
        in_bind: dict[str, str] = {}
        args: list[tuple[str, str]] = []
        if comp.gate is not None:
            _gate_input(comp.gate, in_decl, in_bind, args)
        table: dict[str, dict[str, bool]] = {}
        out_decl: dict[str, Any] = {}
        for out in sorted(node.group.outputs):
            kind = azure_type(self.index.output_type(node, out) or ANY)
            artifact = kind not in PRIMITIVE_TYPES
            # What parallel_for would aggregate: a JSON list as string, artifacts as mltable.
            out_decl[out] = {"type": "mltable" if artifact else "string"}
            table[out] = {"artifact": artifact}
        job = self._convention_job(f"empty --outputs '{safe_json(table)}'", args, in_decl, in_bind, out_decl)
        self._add(comp, node.name, node.name, job)

    def _convention_job(
        self, command: str, args: list[tuple[str, str]], in_decl: dict[str, Any], in_bind: dict[str, str],
        out_decl: dict[str, Any],
    ) -> dict[str, Any]:  # fmt: skip
        """A command job running one of the ``azureml`` convention module's commands (``select``,
        ``items``, ``empty``) on the default image, its values in quoted here-documents."""
        out_args = [(f"out.{o}", f"${{{{outputs.{o}}}}}") for o in sorted(out_decl)]
        lines = ["set -e", "PIPECAST_VALUES=$(mktemp -d)", *_value_lines([*args, *out_args])]
        lines.append(
            f'{shlex.quote(self.settings.python)} -m {CONVENTION_MODULE} {command} --values "$PIPECAST_VALUES"'
        )
        component: dict[str, Any] = {
            "type": "command",
            "command": "\n".join(lines),
            "environment": self._environment(self.pipeline.defaults.image, None),
            "is_deterministic": False,
        }
        if in_decl:
            component["inputs"] = in_decl
        if out_decl:
            component["outputs"] = out_decl
        job: dict[str, Any] = {"type": "command", "component": component}
        if in_bind:
            job["inputs"] = in_bind
        if self.settings.serverless:
            job["resources"] = {"instance_type": "Standard_DS2_v2"}
        return job

    # ------------------------------------------------------------------ after

    def _control_edges(self, comp: Component) -> None:
        """Add control bindings for sibling edges no data binding already gives (``after``)."""
        deps = self.index.deps(comp.scope)
        for user, producers in deps.items():
            for producer in producers:
                if producer in comp.bound.get(user, set()) or producer in self._import_of:
                    continue  # bound by data, or an import (a pipeline input: nothing to wait for)
                anchors = self._done_output(comp, producer, user)
                target = self._waiting_job(comp, user)
                job = comp.jobs[target]
                for source_job, output in anchors:
                    name = naming.AFTER_PREFIX + producer
                    if len(anchors) > 1:
                        name += "__" + output.removeprefix(naming.DONE_PREFIX)
                    job.setdefault("inputs", {})[name] = f"${{{{parent.jobs.{source_job}.outputs.{output}}}}}"
                    decl = self._declared_inputs(comp, job)
                    decl[name] = {"type": self._output_type(comp, source_job, output)}
                    self.control_bindings.append((target, source_job))
                comp.bound.setdefault(user, set()).add(producer)

    def _done_output(self, comp: Component, producer: str, user: str) -> list[tuple[str, str]]:
        """What ``user`` binds to so that it waits for ``producer`` (``after``)."""
        node = comp.scope.steps[producer]
        if node.is_group and node.group.is_condition and producer not in self.gated:
            raise AssertionError(f"when-group {producer!r} is waited for, so it is gated")
        anchors = self._anchors(comp, producer)
        if not anchors:
            raise UserError(
                Diagnostic(
                    f"target 'azureml': step {user!r} waits for group {producer!r} (after), which has "
                    "no step to wait for",
                    (*comp.scope.steps[user].yaml_path, "after"),
                    hint=f"remove {producer!r} from after",
                    code="unsupported-feature",
                )
            )
        return anchors

    def _waiting_job(self, comp: Component, user: str) -> str:
        node = comp.scope.steps[user]
        if node.is_task:
            return naming.role(user, naming.COND) if node.task.when is not None else user
        if node.group.is_condition:
            return naming.role(user, naming.COND)
        return user if is_empty_loop(node) else naming.role(user, naming.BODY)

    def _declared_inputs(self, comp: Component, job: dict[str, Any]) -> dict[str, Any]:
        if job["type"] == "command":
            return job["component"].setdefault("inputs", {})
        rel = job["component"].removeprefix("./")
        if not rel.startswith("components/"):
            rel = "components/" + rel
        return self.components[rel].setdefault("inputs", {})

    def _output_type(self, comp: Component, job_name: str, output: str) -> str:
        job = comp.jobs[job_name]
        if job["type"] == "command":
            return str(job["component"]["outputs"][output]["type"])
        body = comp.jobs[naming.role(job_name, naming.BODY)]
        rel = "components/" + body["component"].removeprefix("./").removeprefix("components/")
        inner = self.components[rel]["outputs"][output]["type"]
        return "string" if inner in ("string", "integer", "number", "boolean") else "mltable"


#: URI schemes an Azure ML data input reads (https://learn.microsoft.com/azure/machine-learning/how-to-read-write-data-v2#paths).
AZURE_SCHEMES = ("azureml:", "https://", "http://", "wasbs://", "wasb://", "abfss://", "abfs://", "adl://")


def uri_kind(uri: Any) -> str:
    """``uri_folder`` for a URI ending in ``/`` or whose last segment has no extension,
    else ``uri_file`` (Azure ML mounts a file input as the file itself)."""
    text = str(uri)
    if text.endswith("/") or (text.startswith("azureml:") and "://" not in text):
        return "uri_folder"  # a folder, or a data asset azureml:name:version
    last = text.rstrip("/").rsplit("/", 1)[-1]
    return "uri_file" if "." in last else "uri_folder"


def _check_azure_uri(uri: str, path: tuple[str | int, ...], what: str) -> None:
    """A remote URI Azure ML cannot read (local paths are refused by the core, SPEC §14)."""
    from pipecast.passes.imports import is_local

    if is_local(uri) or uri.startswith(AZURE_SCHEMES):
        return
    raise UserError(
        Diagnostic(
            f"target 'azureml': {what} reads {uri!r}, a URI Azure ML data inputs cannot read",
            path,
            hint="copy it to an Azure datastore and use azureml://datastores/<store>/paths/..., "
            "or an https:// / abfss:// / wasbs:// URI",
            code="unsupported-feature",
        )
    )


def uses_component_file(task: Any) -> bool:
    """Whether a task step (not the pipeline's ``finally``) compiles to a use of a command
    component file: it comes from a component file (SPEC §16) that declares no input named
    like the job inputs ``pipecast_step`` or ``pipecast_templates``."""
    return task.component is not None and not {naming.STEP, naming.TEMPLATES} & set(task.inputs)


def runtime_items(node: StepNode) -> bool:
    """A ``for_each`` whose items are known only at run time (a reference, or a list literal
    holding references): a ``<g>__items`` job computes them and gates the body."""
    if not (node.is_group and node.group.is_loop):
        return False
    return isinstance(node.resolved.for_each, RefNode | ListOf | DictOf)


def is_empty_loop(node: StepNode) -> bool:
    """A ``for_each`` over a literal empty list (compiled to one command job, no body)."""
    return (
        node.is_group
        and node.group.is_loop
        and isinstance(node.group.for_each, list)
        and not node.group.for_each
    )


def _when_outputs_error(node: StepNode) -> Diagnostic:
    """Why a when-group's outputs cannot be compiled (see docs/targets/azureml.md)."""
    return Diagnostic(
        f"target 'azureml': when-group {node.name!r} declares outputs, and Azure ML cannot pass a "
        "value out of an if_else node: the node has no outputs (azure.ai.ml ConditionNode), and "
        "Azure ML documents no way to bind to 'whichever branch ran' (the v1 component SDK's "
        "dsl.condition_output has no counterpart in CLI v2 / azure-ai-ml)",
        (*node.yaml_path, "outputs"),
        hint="move the steps that read the output into each branch (each reads its own branch's "
        "step), or compute the value in a step outside the group that takes the condition's inputs; "
        "see docs/targets/azureml.md",
        code="unsupported-feature",
    )


def _exposed_outputs(pipeline: Pipeline, index: PipelineIndex) -> set[tuple[str, str]]:
    """(step, output) pairs a group or the pipeline exposes as its own output."""
    exprs = list(index.resolved.outputs.values())
    for node in index.walk():
        if node.is_group:
            exprs += [*node.resolved.outputs.values(), *node.resolved.else_outputs.values()]
    out = set()
    for expr in exprs:
        for ref in (n.ref for n in refs_of(expr)):
            if ref.kind == "step" and ref.key is not None:
                out.add((ref.name, ref.key))
    return out


def _read_var(var: str, expr: str) -> list[str]:
    """Shell lines setting ``var`` to what Azure ML substitutes for ``expr``, byte for byte: the
    value sits in a quoted here-document (the shell reads nothing in it); ``printf x`` keeps
    trailing newlines from ``$(...)``, and ``%?x`` drops the here-document's own newline."""
    return [f"{var}=$(cat <<'{HEREDOC_END}'", expr, HEREDOC_END, "printf x)", f"{var}=${{{var}%?x}}"]


def _value_lines(args: list[tuple[str, str]]) -> list[str]:
    """Shell lines writing each ``(file, ${{...}})`` into ``$PIPECAST_VALUES`` through a quoted
    here-document (the shell reads nothing in what Azure ML pastes there)."""
    lines: list[str] = []
    for file, expr in args:
        lines += [f"cat > \"$PIPECAST_VALUES/{file}\" <<'{HEREDOC_END}'", expr, HEREDOC_END]
    return lines


def _sinks(scope: Scope, deps: dict[str, list[str]]) -> list[str]:
    """The siblings of ``scope`` no other sibling waits for (its last steps), in writing order."""
    waited = {p for ps in deps.values() for p in ps}
    return [name for name in scope.steps if name not in waited]


def _gate_input(gate: str, decl: dict[str, Any], bind: dict[str, str], args: list[tuple[str, str]]) -> None:
    """The gate of a job in a gated ``when`` branch: a boolean input the runtime reads as ``gate.``."""
    decl[naming.GATE] = {"type": "boolean"}
    bind[naming.GATE] = gate
    args.append((f"gate.{naming.GATE}", f"${{{{inputs.{naming.GATE}}}}}"))


def _shell_safe(json_text: str) -> str:
    """Compile-time JSON (ASCII, one line) for a single-quoted shell word Azure ML leaves alone."""
    return json_text.replace("$", "\\u0024").replace("'", "\\u0027")


def _job_timeout(eff: Any) -> int:
    """``limits.timeout`` in seconds: one attempt, or every attempt plus the waits between them."""
    attempts = eff.retry.attempts
    total = eff.timeout * attempts
    for n in range(1, attempts):
        total += min(eff.retry.delay * eff.retry.backoff ** (n - 1), eff.retry.max_delay)
    return max(1, math.ceil(total))


def uses_control_flow(result: Result) -> bool:
    """Whether the job needs ``AZURE_ML_CLI_PRIVATE_FEATURES_ENABLED`` (if_else / parallel_for
    nodes; a gated when-group has none)."""
    docs = [result.job, *result.components.values()]
    return any(
        job.get("type") in ("if_else", "parallel_for")
        for doc in docs
        for job in (doc.get("jobs") or {}).values()
    )


__all__ = [
    "MAX_JOBS",
    "Compiler",
    "Result",
    "is_empty_loop",
    "runtime_items",
    "uses_component_file",
    "uses_control_flow",
]


def _is_when(node: StepNode) -> bool:
    return (node.is_group and node.group.is_condition) or (node.is_task and node.task.when is not None)


def _bodies(node: StepNode) -> list[Scope]:
    return [b for b in (node.body, node.else_body) if b is not None]


class _Gates:
    """:meth:`Compiler._plan_gates`, one rule a method."""

    def __init__(self, index: PipelineIndex) -> None:
        self.index = index
        self.depended = {p for scope in index.scopes() for ps in index.deps(scope).values() for p in ps}
        self.gated: set[str] = set()

    def plan(self) -> set[str]:
        index = self.index
        self.visit(index.root, False)
        # A `when` step whose output its group exposes: the group's output binds to its job,
        # which must then always complete (a skipped item leaves a marker, dropped by readers).
        for node in index.walk():
            if node.is_group:
                self.exposed(node)
        for node in index.walk():
            if node.is_group and node.name in self.depended and not node.group.outputs:
                for body in _bodies(node):
                    self.completion(body)
        for node in index.walk():
            if node.is_group and node.name in self.gated:
                for body in _bodies(node):
                    self.completion(body)
        return self.gated

    def gate(self, node: StepNode) -> None:
        """Gate ``node`` and every ``when`` inside it."""
        self.gated.add(node.name)
        for body in _bodies(node):
            self.visit(body, True)

    def visit(self, scope: Scope, inside: bool) -> None:
        for node in scope.steps.values():
            has_outputs = node.is_group and bool(
                node.group.outputs or (node.group.else_ is not None and node.group.else_.outputs)
            )
            if _is_when(node) and (inside or node.name in self.depended or has_outputs):
                self.gated.add(node.name)
            for body in _bodies(node):
                self.visit(body, inside or node.name in self.gated)

    def completion(self, scope: Scope) -> None:
        """Gate the last ``when`` steps of ``scope`` (through loops without outputs)."""
        deps = self.index.deps(scope)
        for name in _sinks(scope, deps):
            node = scope.steps[name]
            if _is_when(node) and name not in self.gated:
                self.gate(node)
            elif node.is_group and node.group.is_loop and not node.group.outputs:
                assert node.body is not None
                self.completion(node.body)

    def exposed(self, node: StepNode) -> None:
        """Gate the ``when`` steps whose outputs group ``node`` exposes."""
        resolved = node.resolved
        exprs = [*resolved.outputs.values(), *resolved.else_outputs.values()]
        for ref in (r.ref for e in exprs for r in refs_of(e)):
            inner = self.index.nodes.get(ref.name) if ref.kind == "step" else None
            if inner is not None and _is_when(inner) and inner.name not in self.gated:
                self.gate(inner)
