"""Build the KFP v2 ``PipelineSpec`` protobuf for a validated pipeline.

Mapping (https://www.kubeflow.org/docs/components/pipelines/reference/pipeline-spec/ and
https://cloud.google.com/vertex-ai/docs/pipelines/build-pipeline):

==========================  =================================================================
pipecast                    PipelineSpec
==========================  =================================================================
params                      ``root.inputDefinitions.parameters`` (typed, with defaults)
task step                   a task → ``comp-<task>`` → ``exec-<task>`` (container running
                            ``python -m pipecast.runtime run --convention kfp``)
parameter / artifact out    ``outputDefinitions.parameters`` / ``.artifacts`` (system.*);
                            list/dict values cross as JSON text (see :mod:`pipecast_vertex.wire`)
reference to a sibling      ``taskOutputParameter`` / ``taskOutputArtifact``
reference from outside      a channel input ``pipelinechannel--...`` of each enclosing DAG
for_each                    a DAG task with ``parameterIterator`` and ``iteratorPolicy``;
                            group outputs are collected (``LIST`` / ``isArtifactList``)
when (no else)              a DAG task with ``triggerPolicy.condition`` (CEL)
when + else                 a DAG of two condition tasks; outputs via ``valueFromOneof``
after                       ``dependentTasks``
retry                       ``retryPolicy`` (maxRetryCount = attempts - 1)
cache                       ``cachingOptions.enableCache`` (false unless the step asks)
finally                     exit handler: the steps in ``pipeline--body``, the finally task
                            with ``ALL_UPSTREAM_TASKS_COMPLETED`` and a ``taskFinalStatus``
group finally (§18)         the group's task runs ``comp-<group>--exit-handler``: the group's
                            own task and ``<group>--finally``, the same exit task over it
sub-pipeline with finally   a DAG task of its steps (other sub-pipelines are inlined first)
==========================  =================================================================

Mixed strings (``"s3://{{ params.b }}/x"``), ``pipeline.*`` and loop-item keys are rendered
by the runtime: the task receives each referenced value as a channel input and the
template goes in ``--templates``. Literal inputs are embedded in the step spec.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, struct_pb2
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

from pipecast import stock
from pipecast.backend import placeholder
from pipecast.diagnostics import Diagnostic, UserError
from pipecast.ir import condition as cond
from pipecast.ir import values
from pipecast.ir.models import ContainerRun, GroupStep, Pipeline, PythonRun, Resources
from pipecast.ir.refs import Ref
from pipecast.passes.analysis import ANY, PipelineIndex, Scope, StepNode, element_type, is_artifact_type
from pipecast.passes.resolve import ListOf, RefNode, StepOutput, has_template_text, refs_of
from pipecast.runtime.conventions.kfp import encode, encode_item, textual, view_suffix
from pipecast.runtime.spec import InputSpec, StepSpec, step_spec, without_max_age
from pipecast.stock import StockPlan
from pipecast_vertex import naming as n
from pipecast_vertex.collected import wrap_collected_conditions
from pipecast_vertex.conditions import negate, to_cel
from pipecast_vertex.resources import container_resources
from pipecast_vertex.settings import VertexSettings
from pipecast_vertex.wire import (
    BOOL_SUFFIX,
    DOUBLE_SUFFIX,
    ITEMS_SUFFIX,
    METRIC_INFIX,
    NATIVE_SUFFIX,
    doubled_outputs,
    item_is_json,
    iterated_outputs,
    metric_key,
    metric_outputs,
    native_outputs,
    self_gated,
)

SCHEMA_VERSION = "2.1.0"
SDK_VERSION = "pipecast-0.1.0"
PT = pb.ParameterType.ParameterTypeEnum
_PARAM_TYPES = {
    "str": PT.STRING,
    "int": PT.NUMBER_INTEGER,
    "float": PT.NUMBER_DOUBLE,
    "bool": PT.BOOLEAN,
    "list": PT.LIST,
    "dict": PT.STRUCT,
    ANY: PT.STRING,  # what kfp declares for loop items of untyped lists
}
_ARTIFACTS = {
    "Dataset": "system.Dataset",
    "Model": "system.Model",
    "Metrics": "system.Metrics",
    "Artifact": "system.Artifact",
}

VERTEX_MAX_BACKOFF_S = 3600


def parameter_type(type_name: str) -> int:
    if element_type(type_name) is not None and type_name != ANY:
        return PT.LIST
    return _PARAM_TYPES[type_name]


def param_wire(type_name: str) -> int:
    """The KFP type a pipeline parameter travels as: ints, lists and dicts as JSON text
    (``STRING``; a protobuf ``Value`` holds every number as a double, SPEC §22 "Numbers are
    exact"), the rest natively (see :mod:`pipecast_vertex.wire`)."""
    if is_artifact_type(type_name):
        return PT.STRING  # SPEC §14: the URI, imported by a task pipecast adds
    return PT.STRING if textual(type_name) else parameter_type(type_name)


def artifact_base(type_name: str) -> tuple[str, bool]:
    """``Model`` → (system.Model, False); ``list[Model]`` → (system.Model, True)."""
    inner, is_list = type_name, False
    while (el := element_type(inner)) is not None and el != ANY:
        inner, is_list = el, True
    return _ARTIFACTS.get(inner, "system.Artifact"), is_list


#: What starts every KFP placeholder: the launcher replaces ``{{$}}``, ``{{$.inputs...}}``,
#: ``{{$.pipeline_job_name}}``... anywhere in a container's command, args and env
#: (https://www.kubeflow.org/docs/components/pipelines/user-guides/components/container-components/).
KFP_PLACEHOLDER = "{{$"


def kfp_inert(json_text: str) -> str:
    """JSON text in which no KFP placeholder can start: ``{{$`` only occurs inside JSON
    strings (user text), where ``\\u0024`` is the same ``$`` to a JSON reader, but not to KFP."""
    return json_text.replace(KFP_PLACEHOLDER, "{{\\u0024")


@dataclass(frozen=True)
class Chan:
    """A value that crosses a DAG boundary.

    Attributes:
        kind: ``param``, ``step`` (a step or group output), ``loop`` (a loop item), ``key``
            (a key of a loop item a condition reads, selected where the item enters),
            ``status``, ``run_id``, ``task`` (an output of a task pipecast adds, named by
            its KFP task name, in the same DAG as its reader) or ``import`` (the artifact of
            an artifact parameter, imported in the top DAG).
        name: the parameter, step or group name.
        key: the output name for ``step``.
        type: the pipecast type.
        wire: the KFP parameter type the value travels as (parameters only).
        json: whether the value carries JSON text the runtime decodes by ``type``.
    """

    kind: str
    name: str
    key: str | None
    type: str
    wire: int = PT.STRING
    json: bool = False

    @property
    def input_name(self) -> str:
        if self.kind == "param":
            return n.param_channel(self.name)
        if self.kind == "step":
            return n.output_channel(self.name, self.key or "")
        if self.kind == "loop":
            return n.item_channel(self.name)
        if self.kind == "key":
            return n.item_key_channel(self.name, self.key or "")
        if self.kind == "task":
            return n.output_channel(self.name, self.key or "")
        if self.kind == "import":
            return n.output_channel(n.param_importer(self.name), "artifact")
        return n.STATUS_INPUT if self.kind == "status" else n.RUN_ID_INPUT

    @property
    def artifact(self) -> bool:
        return self.kind in ("step", "import") and is_artifact_type(self.type)


Needs = dict[str, Chan]


class Compiler:
    """Compiles one pipeline; use :func:`compile_with_images`.

    Dialects (the Kubeflow backend) subclass it and override :attr:`target` and
    :meth:`container_resources`.
    """

    #: The target named in diagnostics.
    target = "vertex"
    #: Whether a container step's secrets need the runtime (Vertex: Secret Manager is read by it).
    secrets_need_runtime = True

    def __init__(self, pipeline: Pipeline, index: PipelineIndex, settings: VertexSettings) -> None:
        self.p = pipeline
        self.index = index
        self.settings = settings
        self.spec = pb.PipelineSpec()
        self.executors: dict[str, dict[str, Any]] = {}
        self._executor_keys: dict[str, str] = {}
        #: serialized ComponentSpec of a component file's use → its shared name (SPEC §16).
        self._component_keys: dict[bytes, str] = {}
        self.diagnostics: list[Diagnostic] = []
        #: Container steps' stock-image plans (SPEC §21), by step name.
        self.plans: dict[str, StockPlan] = {}
        #: (step, output) pairs a loop iterates: they get a companion ``<output>--items``.
        self.iterated = iterated_outputs(index)
        #: (step, output) pairs a list/dict pipeline output reads: a companion ``<output>--native``.
        self.native = native_outputs(index)
        #: (step, Metrics output) → the metrics read from it: float outputs ``<o>-metric-<m>``.
        self.metrics = metric_outputs(index)
        #: (step, int output) pairs a condition compares with a float: ``<o>-double`` outputs.
        self.doubled = doubled_outputs(index)
        #: Steps with a ``when`` whose runtime evaluates it (see :func:`pipecast_vertex.wire.self_gated`).
        self.self_gated = self_gated(index)
        #: Artifact parameters read (SPEC §14): each gets an importer task in the top DAG.
        self.imported_params: set[str] = set()

    # ------------------------------------------------------------------ entry

    def build(self) -> pb.PipelineSpec:
        spec = self.spec
        spec.pipeline_info.name = self.p.name
        if self.p.description:
            spec.pipeline_info.description = self.p.description
        spec.schema_version = SCHEMA_VERSION
        spec.sdk_version = SDK_VERSION
        if self.settings.pipeline_root:
            spec.default_pipeline_root = self.settings.pipeline_root
        root = spec.root
        for name, param in self.p.params.items():
            pdef = root.input_definitions.parameters[name]
            pdef.parameter_type = param_wire(param.type)
            if param.description:
                pdef.description = param.description
            if param.has_default:
                pdef.default_value.CopyFrom(_value(encode(param.type, param.default)))
                pdef.is_optional = True
        if self.index.finally_node is None:
            needs = self._scope(self.index.root, root.dag, top=True)
            assert not needs, needs
            self._pipeline_outputs(root, root.dag, producer_prefix=None)
        else:
            body = pb.ComponentSpec()
            needs = self._scope(self.index.root, body.dag, top=False)
            comp = n.component_name(n.BODY_TASK)
            task = root.dag.tasks[n.BODY_TASK]
            task.task_info.name = n.BODY_TASK
            task.component_ref.name = comp
            self._declare_needs(body, needs)
            self._bind_all(task, needs, self.index.root, top=True)
            self._pipeline_outputs(body, body.dag, producer_prefix=None)
            if self.p.outputs:
                _forward_outputs(body, root, n.BODY_TASK)
            spec.components[comp].CopyFrom(body)
            self._finally(root.dag)
        wrap_collected_conditions(spec)
        return spec

    # ------------------------------------------------------------------ scopes

    def _scope(self, scope: Scope, dag: pb.DagSpec, *, top: bool) -> Needs:
        """Add the tasks of ``scope`` to ``dag``; return the channels it needs from outside."""
        needs: Needs = {}
        deps = self.index.deps(scope)
        for name in self.index.toposort(scope):
            node = scope.steps[name]
            task = dag.tasks[n.task_name(name)]
            task.task_info.name = n.task_name(name)
            for dep in deps[name]:
                task.dependent_tasks.append(n.task_name(dep))
            if node.is_task:
                if node.task.when is not None and name not in self.self_gated:
                    self._when_task(node, task, scope, needs, top)
                else:
                    self._task(node, task, scope, needs, top)
            elif node.group.is_loop:
                self._loop(node, task, dag, scope, needs, top)
            elif node.group.is_plain:
                self._plain_group(node, task, scope, needs, top)
            else:
                self._when_group(node, task, scope, needs, top)
            if node.is_group and node.finally_node is not None:
                self._group_finally(node, task, scope, needs, top)
        if scope is self.index.root:
            self._param_importers(dag, needs, top)
        return needs

    def _param_importers(self, dag: pb.DagSpec, needs: Needs, top: bool) -> None:
        """SPEC §14 artifact parameters: a run cannot be given a root artifact input as a URI
        (``PipelineJob.runtimeConfig`` takes parameter values, and ``inputArtifacts`` only
        names existing Vertex ML Metadata artifacts:
        https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.pipelineJobs#RuntimeConfig),
        so the parameter is its URI (``STRING``) and a task ``param--<name>`` imports it with
        KFP's importer (``reimport: false``), as ``dsl.importer`` compiles. Every task of the
        DAG that binds its artifact waits for it (kfp.local orders tasks by dependentTasks)."""
        for name in sorted(self.imported_params):
            tname = n.param_importer(name)
            task = dag.tasks[tname]
            task.task_info.name = tname
            task.component_ref.name = n.component_name(tname)
            comp = self.spec.components[task.component_ref.name]
            comp.input_definitions.parameters["uri"].parameter_type = PT.STRING
            self._declare_output(comp, "artifact", self.p.params[name].type)
            self._bind(task.inputs, "uri", Chan("param", name, None, "str", PT.STRING), None, needs, top)
            importer = {
                "artifactUri": {"runtimeParameter": "uri"},
                "typeSchema": {
                    "schemaTitle": artifact_base(self.p.params[name].type)[0],
                    "schemaVersion": "0.0.1",
                },
                "reimport": False,
            }
            comp.executor_label = self._executor(tname, {"importer": importer})
            for other in dag.tasks.values():
                reads = any(
                    a.task_output_artifact.producer_task == tname for a in other.inputs.artifacts.values()
                )
                if reads and tname not in other.dependent_tasks:
                    other.dependent_tasks.append(tname)

    # ------------------------------------------------------------------ channels

    def _chan(self, ref: Ref, scope: Scope, user: str | None) -> Chan:
        """The channel a reference reads (pipeline.* included)."""
        if ref.kind == "param" and is_artifact_type(self.p.params[ref.name].type):
            self.imported_params.add(ref.name)  # SPEC §14: an importer task in the top DAG
            return Chan("import", ref.name, "artifact", self.p.params[ref.name].type)
        if ref.kind == "param":
            type_ = self.p.params[ref.name].type
            return Chan("param", ref.name, None, type_, param_wire(type_), textual(type_))
        if ref.kind == "loop":
            group = self.index.loop_vars(scope)[ref.name]
            item = self.index.loop_item_type(group)
            is_json = item_is_json(self.index, group)
            return Chan(
                "loop", group.name, None, item, PT.STRING if is_json else parameter_type(item), is_json
            )
        if ref.kind == "pipeline":
            return Chan("status" if ref.name == "status" else "run_id", ref.name, None, "str")
        if ref.kind == "group":  # SPEC §18: group.status, from its body's final status
            return Chan("status", ref.name, None, "str")
        if ref.metric is not None:  # SPEC §15: the float the producing step's runtime publishes
            return Chan("step", ref.name, metric_key(ref.key or "", ref.metric), "float", PT.NUMBER_DOUBLE)
        target = self.index.nodes[ref.name]
        out_type = self.index.output_type(target, ref.key or "") or ANY
        if is_artifact_type(out_type):
            return Chan("step", ref.name, ref.key, out_type)
        wire = self._out_wire(target, ref.key or "")
        json = (textual(out_type) and wire != PT.NUMBER_INTEGER) or (  # a stock image's int is native
            out_type in ("float", "bool") and wire == PT.STRING  # a self-gated step's (wire.py)
        )
        return Chan("step", ref.name, ref.key, out_type, wire, json)

    def _out_wire(self, node: StepNode, key: str) -> int:
        """The KFP type of a step's or group's parameter output (see :mod:`pipecast_vertex.wire`)."""
        if key.endswith(ITEMS_SUFFIX) or (node.is_group and node.group.is_loop):
            return PT.LIST
        if METRIC_INFIX in key or key.endswith(DOUBLE_SUFFIX):
            return PT.NUMBER_DOUBLE
        if key.endswith(BOOL_SUFFIX):
            return PT.BOOLEAN
        if key.endswith(NATIVE_SUFFIX):
            return parameter_type(self.index.output_type(node, key.removesuffix(NATIVE_SUFFIX)) or ANY)
        if node.is_group:
            out = node.resolved.outputs[key]
            assert isinstance(out, StepOutput)
            if out.ref.metric is not None:
                return PT.NUMBER_DOUBLE
            return self._out_wire(self.index.nodes[out.ref.name], out.output)
        return self._task_out_wire(node, key)

    def _task_out_wire(self, node: StepNode, key: str) -> int:
        """A task's parameter output: lists, dicts and ints as JSON text (``STRING``), except
        the int a stock image writes (its text, maybe with a newline, is parsed by the KFP
        launcher as NUMBER_INTEGER: exact up to 2**53 only)."""
        type_ = node.task.outputs[key]
        plan = self.stock_plan(node)
        if type_ == "int" and plan is not None and not plan.reasons:
            return parameter_type(type_)
        if type_ in ("float", "bool") and node.name in self.self_gated:
            return PT.STRING  # JSON text, or the skipped marker (a string, as the driver checks)
        return PT.STRING if textual(type_) else parameter_type(type_)

    def _local(self, chan: Chan, scope: Scope | None) -> bool:
        """Whether a step channel is produced by a sibling in ``scope`` (a direct edge).

        ``scope`` is ``None`` for a DAG pipecast adds (condition wrapper, branches): nothing
        is produced inside it, so every value comes in as a channel.
        """
        if chan.kind == "import":
            return scope is self.index.root
        return scope is not None and chan.kind == "step" and self.index.nodes[chan.name].scope is scope

    def _bind(
        self,
        inputs: pb.TaskInputsSpec,
        input_name: str,
        chan: Chan,
        scope: Scope | None,
        needs: Needs,
        top: bool,
        selector: str | None = None,
    ) -> None:
        """Bind task input ``input_name`` to ``chan`` as seen from ``scope``."""
        if chan.kind == "run_id":
            inputs.parameters[input_name].runtime_value.constant.string_value = "{{$.pipeline_job_uuid}}"
            return
        if chan.artifact:
            spec = inputs.artifacts[input_name]
            if self._local(chan, scope):
                producer = n.param_importer(chan.name) if chan.kind == "import" else n.task_name(chan.name)
                spec.task_output_artifact.producer_task = producer
                spec.task_output_artifact.output_artifact_key = chan.key or ""
            else:
                spec.component_input_artifact = chan.input_name
                needs[chan.input_name] = chan
            return
        pspec = inputs.parameters[input_name]
        if chan.kind == "key":
            # Selected from the item in the loop's body DAG and handed down as its own input
            # (kfp.local's condition evaluator reads a condition's values from the enclosing
            # DAG's inputs, never through the condition task's selector).
            if scope is not None and scope.owner == chan.name and scope.branch == "body":
                pspec.component_input_parameter = n.item_channel(chan.name)
                pspec.parameter_expression_selector = f'parseJson(string_value)["{chan.key}"]'
            else:
                pspec.component_input_parameter = chan.input_name
                needs[chan.input_name] = chan
            return
        if chan.kind == "task" and scope is not None:
            pspec.task_output_parameter.producer_task = chan.name
            pspec.task_output_parameter.output_parameter_key = chan.key or ""
        elif chan.kind == "step" and self._local(chan, scope):
            pspec.task_output_parameter.producer_task = n.task_name(chan.name)
            pspec.task_output_parameter.output_parameter_key = chan.key or ""
        elif chan.kind == "param" and top:
            pspec.component_input_parameter = chan.name
        else:
            pspec.component_input_parameter = chan.input_name
            own_item = (
                chan.kind == "loop"
                and scope is not None
                and scope.owner == chan.name
                and scope.branch == "body"
            )
            if not own_item:
                needs[chan.input_name] = chan
        if selector:
            pspec.parameter_expression_selector = selector

    def _bind_all(self, task: pb.PipelineTaskSpec, needs: Needs, scope: Scope, top: bool) -> Needs:
        """Bind every channel a child DAG needs, from the parent's scope; return the parent's needs."""
        parent_needs: Needs = {}
        for name in sorted(needs):
            self._bind(task.inputs, name, needs[name], scope, parent_needs, top)
        return parent_needs

    @staticmethod
    def _declare(defs: pb.ComponentInputsSpec, name: str, type_name: str, wire: int | None = None) -> None:
        """Declare an input: an artifact by its type, a parameter by ``wire`` (or its type)."""
        if is_artifact_type(type_name):
            schema, is_list = artifact_base(type_name)
            art = defs.artifacts[name]
            art.artifact_type.schema_title = schema
            art.artifact_type.schema_version = "0.0.1"
            if is_list:
                art.is_artifact_list = True
        else:
            defs.parameters[name].parameter_type = parameter_type(type_name) if wire is None else wire

    def _declare_needs(self, comp: pb.ComponentSpec, needs: Needs) -> None:
        for name in sorted(needs):
            chan = needs[name]
            if chan.kind == "status":
                comp.input_definitions.parameters[name].parameter_type = PT.TASK_FINAL_STATUS
            else:
                self._declare(comp.input_definitions, name, chan.type, chan.wire)

    # ------------------------------------------------------------------ tasks

    def _task(
        self, node: StepNode, task: pb.PipelineTaskSpec, scope: Scope | None, needs: Needs, top: bool
    ) -> None:
        """A task step: component, executor and input bindings."""
        step = node.task
        tname = n.task_name(node.name)
        comp_name = n.component_name(tname)
        comp = self.spec.components[comp_name]
        task.component_ref.name = comp_name
        templates: dict[str, dict[str, Any]] = {}
        json_inputs: set[str] = set()
        constants: set[str] = set()
        shared = self._shares_component(node)
        resolved = node.resolved.inputs
        for name, value in step.inputs.items():
            structured = isinstance(value, list | dict) and has_template_text(value)
            if not structured and (not isinstance(value, str) or "{{" not in value):
                if shared and self._constant_input(node, name, value, task, comp, json_inputs):
                    constants.add(name)
                continue  # literal: embedded in the step spec
            rv = resolved[name]
            ref = rv.ref if isinstance(rv, RefNode) else None
            if (ref is not None and ref.kind in ("param", "step")) or (
                ref is not None and ref.kind == "loop" and ref.key is None
            ):
                chan = self._chan(ref, node.scope, node.name)
                self._declare(comp.input_definitions, name, chan.type, chan.wire)
                self._bind(task.inputs, name, chan, scope, needs, top)
                if chan.json:
                    json_inputs.add(name)
                continue
            templates[name] = {
                "template": value,
                "refs": self._template_refs(node, rv, ref, task, comp, scope, needs, top, json_inputs),
            }
        gate = None
        if node.name in self.self_gated:
            assert node.resolved.when is not None
            gate = {
                "when": step.when,
                "refs": self._bind_refs(
                    node, cond.paths(node.resolved.when), task, comp, scope, needs, top, json_inputs
                ),
            }
        self._task_outputs(node, comp)
        if step.import_ is not None:
            self._importer(node, task, comp, scope, needs, top)
            return
        eff = self.index.effective(node)
        plan = self.stock_plan(node)
        if plan is not None and plan.stock:
            self._stock_task(node, task, comp, eff)
            return
        self._runtime_task(node, task, comp, eff, templates, json_inputs, constants, gate)
        if shared:
            self._share_component(node, task, comp_name)

    # ------------------------------------------------------------------ components (SPEC §16)

    def _shares_component(self, node: StepNode) -> bool:
        """Whether the step is a use of a component file that gets the file's one ComponentSpec
        (a python or runtime-run container step; not a finally step, whose component gains
        the status input afterwards, nor an import or a stock image)."""
        step = node.task
        is_finally = node is self.index.finally_node or node.finally_of is not None
        if step.component is None or step.import_ is not None or is_finally:
            return False
        plan = self.stock_plan(node)
        return plan is None or not plan.stock

    def _constant_input(
        self,
        node: StepNode,
        name: str,
        value: Any,
        task: pb.PipelineTaskSpec,
        comp: pb.ComponentSpec,
        json_inputs: set[str],
    ) -> bool:
        """A literal input of a component use as a task input with a constant value (what kfp
        writes for a constant argument: ``runtimeValue.constant``,
        https://github.com/kubeflow/pipelines/blob/master/api/v2alpha1/pipeline_spec.proto), so
        the executor is the same for every use. Ints, lists and dicts travel as JSON text
        (exact, SPEC §22) like step outputs; ``False`` when the value stays in the spec."""
        type_ = self.index.value_type(value, node.scope, node.name) or ANY
        const = struct_pb2.Value()
        if value is None or type_ == ANY:
            return False
        if textual(type_):
            const.string_value, wire = json.dumps(value), PT.STRING  # keys in stored order (SPEC §22)
        elif type_ == "str" and isinstance(value, str):
            const.string_value, wire = value, PT.STRING
        elif type_ == "bool" and isinstance(value, bool):
            const.bool_value, wire = value, PT.BOOLEAN
        elif type_ == "float" and isinstance(value, int | float) and not isinstance(value, bool):
            const.number_value, wire = float(value), PT.NUMBER_DOUBLE
        else:
            return False
        if KFP_PLACEHOLDER in const.string_value:
            return False  # KFP substitutes placeholders in constants too: kept in the (inert) spec
        if wire == PT.STRING and textual(type_):
            json_inputs.add(name)
        task.inputs.parameters[name].runtime_value.constant.CopyFrom(const)
        self._declare(comp.input_definitions, name, type_, wire)
        return True

    def _share_component(self, node: StepNode, task: pb.PipelineTaskSpec, comp_name: str) -> None:
        """Point the task at the component file's ComponentSpec: one per distinct spec (the
        same inputs, outputs and executor), named ``comp-<component>--component[-<k>]``."""
        assert node.task.component is not None
        comp = self.spec.components[comp_name]
        key = comp.SerializeToString(deterministic=True)
        name = self._component_keys.get(key)
        if name is None:
            name = self._unique_name(
                n.component_name(n.task_name(node.task.component.name), "component"), self.spec.components
            )
            self._component_keys[key] = name
            self.spec.components[name].CopyFrom(comp)
        del self.spec.components[comp_name]
        task.component_ref.name = name

    @staticmethod
    def _unique_name(base: str, taken: Any) -> str:
        """``base``, or ``base-2``, ``base-3`` ... the first one not in ``taken``."""
        name, k = base, 1
        while name in taken:
            k += 1
            name = f"{base}-{k}"
        return name

    def _template_refs(
        self,
        node: StepNode,
        rv: Any,
        ref: Ref | None,
        task: pb.PipelineTaskSpec,
        comp: pb.ComponentSpec,
        scope: Scope | None,
        needs: Needs,
        top: bool,
        json_inputs: set[str],
    ) -> dict[str, list[Any]]:
        """The references of an input the runtime renders: each declared and bound as the
        component's own input, keyed by its path (what ``--templates`` tells the runtime)."""
        # A mixed string, one reference, or a list/mapping literal holding them (SPEC §19: the
        # runtime builds the value from the separate inputs with the same render as everywhere).
        return self._bind_refs(
            node, (part.ref for part in refs_of(rv)), task, comp, scope, needs, top, json_inputs
        )

    def _bind_refs(
        self,
        node: StepNode,
        found: Iterable[Ref],
        task: pb.PipelineTaskSpec,
        comp: pb.ComponentSpec,
        scope: Scope | None,
        needs: Needs,
        top: bool,
        json_inputs: set[str],
    ) -> dict[str, list[Any]]:
        """Declare and bind each reference as an input of the component; ``{path: [channel
        input, loop-item key, type]}``, what the runtime looks values up with."""
        refs: dict[str, list[Any]] = {}
        for seg in found:
            if seg.kind == "pipeline" and seg.name == "name":
                continue
            chan = self._chan(seg, node.scope, node.name)
            # The type converts the value back exactly (a float 3.0 arrives as 3 natively).
            refs[seg.path] = [chan.input_name, seg.key if seg.kind == "loop" else None, chan.type]
            if chan.json:
                json_inputs.add(chan.input_name)
            if chan.input_name not in comp.input_definitions.parameters and not chan.artifact:
                if chan.kind == "status":
                    comp.input_definitions.parameters[chan.input_name].parameter_type = PT.TASK_FINAL_STATUS
                else:
                    self._declare(comp.input_definitions, chan.input_name, chan.type, chan.wire)
            elif chan.artifact:
                self._declare(comp.input_definitions, chan.input_name, chan.type)
            if chan.kind == "status":
                continue  # bound by _finally
            self._bind(task.inputs, chan.input_name, chan, scope, needs, top)
        return refs

    def _task_outputs(self, node: StepNode, comp: pb.ComponentSpec) -> None:
        """The component's output definitions (and the extra items/native outputs)."""
        for name, type_ in node.task.outputs.items():
            if values.is_artifact(type_):
                art = comp.output_definitions.artifacts[name]
                art.artifact_type.schema_title = _ARTIFACTS[type_]
                art.artifact_type.schema_version = "0.0.1"
                for metric in self.metrics.get((node.name, name), []):
                    comp.output_definitions.parameters[
                        metric_key(name, metric)
                    ].parameter_type = PT.NUMBER_DOUBLE
            else:
                outs = comp.output_definitions.parameters
                outs[name].parameter_type = self._task_out_wire(node, name)
                if (node.name, name) in self.iterated:
                    outs[name + ITEMS_SUFFIX].parameter_type = PT.LIST
                if (node.name, name) in self.native:
                    outs[name + NATIVE_SUFFIX].parameter_type = parameter_type(type_)
                if (node.name, name) in self.doubled:
                    view = view_suffix(type_)
                    outs[name + view].parameter_type = PT.BOOLEAN if view == BOOL_SUFFIX else PT.NUMBER_DOUBLE

    def _runtime_task(
        self,
        node: StepNode,
        task: pb.PipelineTaskSpec,
        comp: pb.ComponentSpec,
        eff: Any,
        templates: dict[str, dict[str, Any]],
        json_inputs: set[str],
        constants: AbstractSet[str] = frozenset(),
        gate: dict[str, Any] | None = None,
    ) -> None:
        """A step run by the pipecast runtime: retry policy, cache, the step spec and the
        container that runs ``python -m pipecast.runtime run``.

        A use of a component file (:meth:`_shares_component`) keeps what differs per use out
        of the executor: its literal inputs are task constants (``constants``) and the step
        name arrives as the task input ``pipecast--step``, so equal uses share the executor."""
        tname = n.task_name(node.name)
        shared = self._shares_component(node)
        # Vertex caps backoff_max_duration at 1 hour ("higher value will be capped to this
        # limit", RetryPolicy in https://github.com/kubeflow/pipelines/blob/master/api/v2alpha1/pipeline_spec.proto):
        # a longer max_delay, like jitter, is retried by the runtime, with SPEC §6's exact timing.
        runtime_retry = eff.retry.attempts > 1 and (
            eff.retry.jitter or eff.retry.max_delay > VERTEX_MAX_BACKOFF_S
        )
        if eff.retry.attempts > 1 and not runtime_retry:
            rp = task.retry_policy
            rp.max_retry_count = eff.retry.attempts - 1
            rp.backoff_duration.FromNanoseconds(round(eff.retry.delay * 1e9))
            rp.backoff_factor = eff.retry.backoff
            rp.backoff_max_duration.FromNanoseconds(round(eff.retry.max_delay * 1e9))
        task.caching_options.enable_cache = eff.cache
        spec = step_spec(
            self.index,
            node,
            retry_in_runtime=runtime_retry,
            timeout_in_runtime=True,
            secret_store=self.settings.secret_store,
            # The spec then carries the step's SPEC §20 definition digest and `version`: both
            # enter Vertex's cache key (it hashes the executor's command), so changing the
            # version reruns the step. The runtime keeps no cache of its own here (no store).
            cache_store="",
        )
        # max_age is not part of the signature, and Vertex's cache has no expiry
        # (PipelineTaskSpec.CachingOptions: enable_cache, cache_key).
        spec, warning = without_max_age(
            spec, node, self.target, "Vertex reuses a cached result whatever its age"
        )
        if warning is not None:
            self.diagnostics.append(warning)
        if shared:
            assert node.task.component is not None
            inputs = {
                k: v.model_copy(update={"value": None, "literal": False}) if k in constants else v
                for k, v in spec.inputs.items()
            }
            spec = spec.model_copy(update={"step": node.task.component.name, "inputs": inputs})
            comp.input_definitions.parameters[n.STEP_INPUT].parameter_type = PT.STRING
            task.inputs.parameters[n.STEP_INPUT].runtime_value.constant.string_value = node.name
            tname = n.task_name(node.task.component.name) + "--component"
        image = eff.image or self.settings.image
        if not image:
            image = placeholder("image")
            self.diagnostics.append(
                Diagnostic(
                    f"{self.target}: step {node.name!r} has no image; the spec holds the placeholder {image!r}",
                    node.yaml_path,
                    hint="set defaults.image (or the step's image), or --set image=<registry/image:tag>",
                    severity="warning",
                    code="placeholder",
                )
            )
        args = ["--spec", kfp_inert(spec.to_arg()), "--convention", "kfp", "--executor-input", "{{$}}"]
        if templates:
            args += ["--templates", kfp_inert(json.dumps(templates, sort_keys=True, separators=(",", ":")))]
        if json_inputs:
            args += ["--json-inputs", kfp_inert(json.dumps(sorted(json_inputs), separators=(",", ":")))]
        if gate is not None:
            args += ["--when", kfp_inert(json.dumps(gate, sort_keys=True, separators=(",", ":")))]
        container: dict[str, Any] = {
            "image": image,
            "command": [self.settings.python, "-m", "pipecast.runtime", "run"],
            "args": args,
        }
        # The runtime sets the step's variables from the spec too; a value KFP would substitute
        # is left to it (the spec's JSON escapes the placeholder).
        env = {k: v for k, v in eff.env.items() if KFP_PLACEHOLDER not in v}
        if env:
            container["env"] = [{"name": k, "value": v} for k, v in sorted(env.items())]
        resources = self.container_resources(eff.resources)
        if resources:
            container["resources"] = resources
        comp.executor_label = self._executor(tname, {"container": container})

    def _importer(
        self,
        node: StepNode,
        task: pb.PipelineTaskSpec,
        comp: pb.ComponentSpec,
        scope: Scope | None,
        needs: Needs,
        top: bool,
    ) -> None:
        """An import step (SPEC §14) as KFP's importer node: an ``importer`` executor reading
        the URI from the task's ``uri`` input, ``reimport: false`` (what ``dsl.importer``
        compiles to: https://www.kubeflow.org/docs/components/pipelines/user-guides/components/importer-component/).
        """
        spec = node.task.import_
        assert spec is not None
        uri_input = "uri"
        comp.input_definitions.parameters[uri_input].parameter_type = PT.STRING
        uri = node.resolved.import_uri
        ref = uri.ref if isinstance(uri, RefNode) else None
        if ref is not None and ref.kind == "param" and is_artifact_type(self.p.params[ref.name].type):
            # An artifact parameter's value is its URI (SPEC §14), imported as it is.
            self._bind(
                task.inputs, uri_input, Chan("param", ref.name, None, "str", PT.STRING), scope, needs, top
            )
        elif ref is not None:
            chan = self._chan(ref, node.scope, node.name)
            self._bind(task.inputs, uri_input, chan, scope, needs, top)
        else:
            # A literal (checked to be remote by the local-path rule); a URI mixing text and
            # references is refused by check_target, since the importer reads one parameter.
            task.inputs.parameters[uri_input].runtime_value.constant.string_value = spec.uri
        importer: dict[str, Any] = {
            "artifactUri": {"runtimeParameter": uri_input},
            "typeSchema": {"schemaTitle": _ARTIFACTS[spec.type], "schemaVersion": "0.0.1"},
            "reimport": False,
        }
        if spec.metadata:
            importer["metadata"] = spec.metadata
        comp.executor_label = self._executor(n.task_name(node.name), {"importer": importer})

    def container_resources(self, res: Resources) -> dict[str, Any] | None:
        """The container ``resources`` of a task (a dialect maps accelerators its own way)."""
        return container_resources(res)

    # ------------------------------------------------------------------ stock images (SPEC §21)

    def stock_plan(self, node: StepNode) -> StockPlan | None:
        """Whether a container step runs its image unchanged (``None`` for a python step).

        Kept per step in :attr:`plans` for the compile summary (images that need the runtime).
        """

        def reasons(run: ContainerRun) -> list[str]:
            eff = self.index.effective(node)
            out = []
            if eff.retry.attempts > 1 and eff.retry.max_delay > VERTEX_MAX_BACKOFF_S:
                out.append("retry max_delay is over Vertex's 1 h backoff cap (the runtime retries)")
            if eff.secrets and self.secrets_need_runtime:
                out.append(stock.SECRETS_REASON)
            if node.name in self.self_gated:
                out.append("its 'when' is evaluated at run time (its outputs are read beyond its DAG)")
            return out

        def input_reason(slot: stock.Slot, ref: Ref) -> str | None:
            chan = self._chan(ref, node.scope, node.name)
            if chan.artifact and artifact_base(chan.type)[1]:
                return f"input {slot.name!r} is a list of artifacts (no single local path)"
            return None

        def later(run: ContainerRun) -> list[str]:
            out = []
            for name in node.task.outputs:
                if (node.name, name) in self.iterated:
                    out.append(f"a for_each iterates output {name!r} (the runtime writes its items)")
                if (node.name, name) in self.native:
                    out.append(f"pipeline output from {name!r} (the runtime writes it natively)")
                if (node.name, name) in self.metrics:
                    out.append(f"metrics of {name!r} are read (the runtime publishes them)")
                if (node.name, name) in self.doubled:
                    out.append(f"a condition compares {name!r} with a float (the runtime writes it as one)")
            return out

        return stock.plan(self.plans, node, reasons, input_reason, later)

    def _stock_task(
        self, node: StepNode, task: pb.PipelineTaskSpec, comp: pb.ComponentSpec, eff: Any
    ) -> None:
        """A container step as a KFP container component: the command with KFP placeholders, as
        the kfp SDK writes them (https://www.kubeflow.org/docs/components/pipelines/user-guides/
        components/container-components/), and no pipecast inside the image."""
        run = node.task.run
        assert isinstance(run, ContainerRun)
        tname = n.task_name(node.name)
        if eff.retry.attempts > 1:
            if eff.retry.jitter:
                self.diagnostics.append(
                    Diagnostic(
                        f"{self.target}: step {node.name!r} runs its image unchanged and retryPolicy has no "
                        "jitter: it retries without jitter (SPEC §6)",
                        node.yaml_path,
                        severity="warning",
                        code="jitter-ignored",
                    )
                )
            rp = task.retry_policy
            rp.max_retry_count = eff.retry.attempts - 1
            rp.backoff_duration.FromNanoseconds(round(eff.retry.delay * 1e9))
            rp.backoff_factor = eff.retry.backoff
            rp.backoff_max_duration.FromNanoseconds(round(eff.retry.max_delay * 1e9))
        task.caching_options.enable_cache = eff.cache

        def fill(slot: stock.Slot) -> str:
            if slot.kind == "outputs":
                if values.is_artifact(node.task.outputs[slot.name]):
                    return f"{{{{$.outputs.artifacts['{slot.name}'].path}}}}"
                return f"{{{{$.outputs.parameters['{slot.name}'].output_file}}}}"
            value = node.task.inputs[slot.name]
            if stock.input_kind(value) == "literal":
                return self._user_text(stock.literal_text(value))
            if slot.name in comp.input_definitions.artifacts:
                return f"{{{{$.inputs.artifacts['{slot.name}'].path}}}}"
            return f"{{{{$.inputs.parameters['{slot.name}']}}}}"

        command = stock.render_args(run.command, fill, self._user_text)
        args = stock.render_args(run.args, fill, self._user_text)
        if eff.timeout is not None:
            # PipelineTaskSpec has no timeout (https://www.kubeflow.org/docs/components/pipelines/
            # reference/pipeline-spec/): coreutils/busybox `timeout` ends the attempt, no pipecast
            # needed (docs/semantics.md, "Stock images").
            command = ["timeout", stock.seconds_text(eff.timeout), *command]
        container: dict[str, Any] = {"image": run.image, "command": command}
        if args:
            container["args"] = args
        if eff.env:
            for k, v in eff.env.items():
                self._refuse_placeholder(node, ("env", k), v)
            container["env"] = [{"name": k, "value": v} for k, v in sorted(eff.env.items())]
        resources = self.container_resources(eff.resources)
        if resources:
            container["resources"] = resources
        comp.executor_label = self._executor(tname, {"container": container})

    def _refuse_placeholder(self, node: StepNode, where: tuple[str, ...], text: str) -> None:
        """A stock image has no runtime to hand it text KFP would substitute: refuse it."""
        if KFP_PLACEHOLDER in text:
            raise UserError(
                Diagnostic(
                    f"{self.target}: step {node.name!r} runs its image unchanged and {'.'.join(where)} holds "
                    f"{KFP_PLACEHOLDER!r}, which KFP replaces with run-time values (it has no escape)",
                    (*node.yaml_path, *where),
                    hint="remove '{{$' from the text, or pass it as an input value instead",
                    code="kfp-placeholder",
                )
            )

    def _user_text(self, text: str) -> str:
        """User text written into a command (kept apart from the placeholders pipecast writes)."""
        if KFP_PLACEHOLDER in text:
            raise UserError(
                Diagnostic(
                    f"{self.target}: a container command holds {KFP_PLACEHOLDER!r} in its own text, which KFP "
                    "replaces with run-time values (it has no escape)",
                    hint="remove '{{$' from the command, or pass the text as an input",
                    code="kfp-placeholder",
                )
            )
        return text

    def _executor(self, tname: str, executor: dict[str, Any]) -> str:
        """Register an executor; identical executors are shared (one label)."""
        key = json.dumps(executor, sort_keys=True)
        label = self._executor_keys.get(key)
        if label is None:
            label = self._unique_name(n.executor_label(tname), self.executors)
            self._executor_keys[key] = label
            self.executors[label] = executor
        return label

    def _when_task(
        self, node: StepNode, task: pb.PipelineTaskSpec, scope: Scope, needs: Needs, top: bool
    ) -> None:
        """``when`` on a task: a condition DAG (``comp-<task>--when``) holding the task."""
        tname = n.task_name(node.name)
        comp_name = n.component_name(tname, "when")
        body = pb.ComponentSpec()
        inner = body.dag.tasks[tname]
        inner.task_info.name = tname
        inner_needs: Needs = {}
        self._task(node, inner, None, inner_needs, top=False)
        # The condition DAG hands on the task's outputs, so readers bind to them (SPEC §22:
        # a reader inherits the condition, pipecast.passes.lower.guard_readers).
        produced = self.spec.components[inner.component_ref.name].output_definitions
        for key, param in produced.parameters.items():
            body.output_definitions.parameters[key].CopyFrom(param)
            vp = body.dag.outputs.parameters[key].value_from_parameter
            vp.producer_subtask, vp.output_parameter_key = tname, key
        for key, art in produced.artifacts.items():
            body.output_definitions.artifacts[key].CopyFrom(art)
            sel = body.dag.outputs.artifacts[key].artifact_selectors.add()
            sel.producer_subtask, sel.output_artifact_key = tname, key
        self._condition(
            task, node.task.when or "", node, scope, inner_needs, needs, top, negated=False, comp=body
        )
        self._declare_needs(body, inner_needs)
        task.component_ref.name = comp_name
        self.spec.components[comp_name].CopyFrom(body)

    def _condition(
        self,
        task: pb.PipelineTaskSpec,
        text: str,
        node: StepNode,
        scope: Scope | None,
        body_needs: Needs,
        needs: Needs,
        top: bool,
        *,
        negated: bool,
        comp: pb.ComponentSpec,
    ) -> None:
        """Set ``triggerPolicy.condition`` and bind the body's and the condition's channels."""
        expr = node.resolved.when
        assert expr is not None, text
        extra: dict[str, Chan] = {}

        def lookup(ref: Ref) -> tuple[str, ...]:
            if ref.kind == "loop" and ref.key is not None:
                item = self._chan(Ref("loop", ref.name), node.scope, node.name)
                key = Chan("key", item.name, ref.key, ANY)
                extra[key.input_name] = key
                return key.input_name, ANY
            chan = self._chan(ref, node.scope, node.name)
            body_needs.setdefault(chan.input_name, chan)
            if ref.kind == "step" and ref.metric is None and (ref.name, ref.key or "") in self.doubled:
                suffix = view_suffix(chan.type)
                typed = ("bool", PT.BOOLEAN) if suffix == BOOL_SUFFIX else ("float", PT.NUMBER_DOUBLE)
                view = Chan("step", ref.name, (ref.key or "") + suffix, *typed)
                body_needs.setdefault(view.input_name, view)
                return chan.input_name, chan.type, view.input_name
            return chan.input_name, chan.type

        cel = to_cel(expr, lookup)
        task.trigger_policy.condition = negate(cel) if negated else cel
        for name in sorted(body_needs):
            self._bind(task.inputs, name, body_needs[name], scope, needs, top)
        for name, key in sorted(extra.items()):
            self._bind(task.inputs, name, key, scope, needs, top)
            comp.input_definitions.parameters[name].parameter_type = PT.STRING

    def _when_group(
        self, node: StepNode, task: pb.PipelineTaskSpec, scope: Scope, needs: Needs, top: bool
    ) -> None:
        group = node.group
        tname = n.task_name(node.name)
        assert node.body is not None
        then_comp = pb.ComponentSpec()
        then_needs = self._scope(node.body, then_comp.dag, top=False)
        self._group_outputs(then_comp, node, node.body, group.outputs, collect=False)
        if group.else_ is None:
            self._condition(
                task, group.when or "", node, scope, then_needs, needs, top, negated=False, comp=then_comp
            )
            self._declare_needs(then_comp, then_needs)
            task.component_ref.name = n.component_name(tname)
            self.spec.components[task.component_ref.name].CopyFrom(then_comp)
            return
        # if/else: a DAG of two condition tasks, like kfp's dsl.If/dsl.Else.
        assert node.else_body is not None
        else_comp = pb.ComponentSpec()
        else_needs = self._scope(node.else_body, else_comp.dag, top=False)
        self._group_outputs(else_comp, node, node.else_body, group.else_.outputs, collect=False)
        branches = pb.ComponentSpec()
        branch_needs: Needs = {}
        for suffix, comp, body_needs, negated in (
            ("then", then_comp, then_needs, False),
            ("else", else_comp, else_needs, True),
        ):
            btask = branches.dag.tasks[f"{tname}--{suffix}"]
            btask.task_info.name = f"{tname}--{suffix}"
            self._condition(
                btask,
                group.when or "",
                node,
                None,
                body_needs,
                branch_needs,
                False,
                negated=negated,
                comp=comp,
            )
            self._declare_needs(comp, body_needs)
            btask.component_ref.name = n.component_name(tname, suffix)
            self.spec.components[btask.component_ref.name].CopyFrom(comp)
        # Branch-task inputs are bound as channels of the branches DAG, which the outer task binds.
        for name in [
            *group.outputs,
            *sorted(set(then_comp.output_definitions.parameters) - set(group.outputs)),
        ]:
            if name in then_comp.output_definitions.artifacts:
                branches.output_definitions.artifacts[name].CopyFrom(
                    then_comp.output_definitions.artifacts[name]
                )
                spec = branches.dag.outputs.artifacts[name]
                for suffix in ("then", "else"):
                    sel = spec.artifact_selectors.add()
                    sel.producer_subtask, sel.output_artifact_key = f"{tname}--{suffix}", name
            else:
                branches.output_definitions.parameters[name].CopyFrom(
                    then_comp.output_definitions.parameters[name]
                )
                oneof = branches.dag.outputs.parameters[name].value_from_oneof
                for suffix in ("then", "else"):
                    sel = oneof.parameter_selectors.add()
                    sel.producer_subtask, sel.output_parameter_key = f"{tname}--{suffix}", name
        self._declare_needs(branches, branch_needs)
        for name in sorted(branch_needs):
            self._bind(task.inputs, name, branch_needs[name], scope, needs, top)
        task.component_ref.name = n.component_name(tname, "branches")
        self.spec.components[task.component_ref.name].CopyFrom(branches)

    def _group_outputs(
        self, comp: pb.ComponentSpec, node: StepNode, body: Scope, outputs: dict[str, str], *, collect: bool
    ) -> None:
        """DAG outputs of a group body: one step output each (collected into lists by a loop).

        A ``when`` group output a loop iterates also passes on the companion ``--items`` list.
        """
        resolved = node.resolved
        values_ = resolved.outputs if outputs is node.group.outputs else resolved.else_outputs
        for name in outputs:
            produced = values_[name]
            assert isinstance(produced, StepOutput)  # checked by Backend.check
            ref = produced.ref
            target = self.index.nodes[ref.name]
            key = produced.output
            if ref.metric is not None:  # SPEC §15: the float output the step publishes
                key, inner = metric_key(key, ref.metric), "float"
            else:
                inner = self.index.output_type(target, key) or ANY
            type_ = f"list[{inner}]" if collect else inner
            if is_artifact_type(inner):
                self._declare_output(comp, name, type_)
                sel = comp.dag.outputs.artifacts[name].artifact_selectors.add()
                sel.producer_subtask, sel.output_artifact_key = n.task_name(ref.name), key
                for metric in [] if collect else self.metrics.get((node.name, name), []):
                    forwarded = metric_key(name, metric)  # the metrics read through the group
                    comp.output_definitions.parameters[forwarded].parameter_type = PT.NUMBER_DOUBLE
                    vp = comp.dag.outputs.parameters[forwarded].value_from_parameter
                    vp.producer_subtask, vp.output_parameter_key = (
                        n.task_name(ref.name),
                        metric_key(key, metric),
                    )
                continue
            pairs = [(name, key)]
            if not collect and (node.name, name) in self.iterated:
                pairs.append((name + ITEMS_SUFFIX, key + ITEMS_SUFFIX))
            if not collect and (node.name, name) in self.native:
                pairs.append((name + NATIVE_SUFFIX, key + NATIVE_SUFFIX))
            if not collect and (node.name, name) in self.doubled:
                view = view_suffix(inner)
                pairs.append((name + view, key + view))
            for out_name, src in pairs:
                wire = PT.LIST if collect else self._out_wire(target, src)
                comp.output_definitions.parameters[out_name].parameter_type = wire
                vp = comp.dag.outputs.parameters[out_name].value_from_parameter
                vp.producer_subtask, vp.output_parameter_key = n.task_name(ref.name), src

    @staticmethod
    def _declare_output(comp: pb.ComponentSpec, name: str, type_name: str) -> None:
        schema, is_list = artifact_base(type_name)
        art = comp.output_definitions.artifacts[name]
        art.artifact_type.schema_title = schema
        art.artifact_type.schema_version = "0.0.1"
        if is_list:
            art.is_artifact_list = True

    def _loop(
        self,
        node: StepNode,
        task: pb.PipelineTaskSpec,
        dag: pb.DagSpec,
        scope: Scope,
        needs: Needs,
        top: bool,
    ) -> None:
        """for_each: a DAG task with a ``parameterIterator`` over the items."""
        group = node.group
        tname = n.task_name(node.name)
        assert node.body is not None
        if group.for_each == [] and group.outputs:
            self._empty_loop(node, task)  # a literal []: no loop, the empty lists
            return
        body = pb.ComponentSpec()
        body_needs = self._scope(node.body, body.dag, top=False)
        self._group_outputs(body, node, node.body, group.outputs, collect=True)
        item = n.item_channel(node.name)
        item_json = item_is_json(self.index, node)
        body.input_definitions.parameters[item].parameter_type = (
            PT.STRING if item_json else parameter_type(self.index.loop_item_type(node))
        )
        items_chan, subvar = self._loop_items(node, task, dag, body, scope, needs, top)
        if items_chan is not None:
            body_needs.setdefault(items_chan.input_name, items_chan)
        self._declare_needs(body, body_needs)
        if items_chan is not None and subvar is None and self._guarded(body):
            self._guarded_loop(node, task, body, body_needs, items_chan, scope, needs, top)
            return
        # kfp.local replaces every taskOutputParameter input of a loop task with the loop
        # item, and reads the items by input name only; a loop that takes step outputs gets
        # a plain wrapper DAG so the loop task itself only sees component inputs. Vertex
        # runs both shapes alike.
        # A loop with its own finally is wrapped too: the exit task reads the final status of a
        # plain DAG task (kfp.local records none for a failed loop task, and kfp's ExitHandler
        # likewise puts a ParallelFor inside the exit-handler DAG).
        wrap = node.finally_node is not None or any(
            c.kind == "task" or (c.kind == "step" and not c.artifact and self._local(c, scope))
            for c in body_needs.values()
        )
        if wrap:
            wrapper = pb.ComponentSpec()
            loop_task = wrapper.dag.tasks[f"{tname}--loop"]
            loop_task.task_info.name = f"{tname}--loop"
            for name in sorted(body_needs):
                chan = body_needs[name]
                if chan.artifact:
                    loop_task.inputs.artifacts[name].component_input_artifact = name
                else:
                    loop_task.inputs.parameters[name].component_input_parameter = name
            self._declare_needs(wrapper, body_needs)
            _forward_outputs(body, wrapper, loop_task.task_info.name)
            if subvar is not None:
                sub, outer, selector = subvar
                wrapper_needs: Needs = {}
                self._bind(loop_task.inputs, sub, outer, None, wrapper_needs, False, selector=selector)
                self._declare_needs(wrapper, wrapper_needs)
                body_needs.update(wrapper_needs)
            self._iterate(loop_task, node, items_chan, subvar[0] if subvar else None)
            loop_task.component_ref.name = n.component_name(tname, "loop")
            self.spec.components[loop_task.component_ref.name].CopyFrom(body)
            for name in sorted(body_needs):
                self._bind(task.inputs, name, body_needs[name], scope, needs, top)
            task.component_ref.name = n.component_name(tname)
            self.spec.components[task.component_ref.name].CopyFrom(wrapper)
            return
        for name in sorted(body_needs):
            self._bind(task.inputs, name, body_needs[name], scope, needs, top)
        if subvar is not None:
            sub, outer, selector = subvar
            self._bind(task.inputs, sub, outer, scope, needs, top, selector=selector)
        self._iterate(task, node, items_chan, subvar[0] if subvar else None)
        task.component_ref.name = n.component_name(tname)
        self.spec.components[task.component_ref.name].CopyFrom(body)

    def _loop_items(
        self,
        node: StepNode,
        task: pb.PipelineTaskSpec,
        dag: pb.DagSpec,
        body: pb.ComponentSpec,
        scope: Scope,
        needs: Needs,
        top: bool,
    ) -> tuple[Chan | None, tuple[str, Chan, str] | None]:
        """What a loop iterates: the channel of a run-time list (``None``: a literal list), and
        for a key of an enclosing loop's item (input, outer item channel, selector)."""
        items = node.resolved.for_each
        items_ref = items.ref if isinstance(items, RefNode) else None
        # A key of an enclosing loop's item: iterate an input selected from the item with
        # ``parseJson(string_value)["key"]``, as kfp 2.17 compiles ``ParallelFor(item.key)``.
        subvar: tuple[str, Chan, str] | None = None
        if items_ref is not None and items_ref.kind == "loop" and items_ref.key is not None:
            outer = self._chan(Ref("loop", items_ref.name), scope, node.name)
            sub = n.item_key_channel(outer.name, items_ref.key)
            subvar = (sub, outer, f'parseJson(string_value)["{items_ref.key}"]')
            body.input_definitions.parameters[sub].parameter_type = PT.STRING
            items_ref = None
        items_chan = None if items_ref is None else self._chan(items_ref, scope, node.name)
        if items_chan is not None and items_chan.kind == "param" and items_chan.json:
            items_chan = self._items_task(node, task, dag, scope, needs, top, items_chan)
        elif isinstance(items, ListOf):  # SPEC §19: the list is built at run time
            items_chan = self._items_task(node, task, dag, scope, needs, top, None)
        if items_chan is not None and (items_chan.name, items_chan.key) in self.iterated:
            # Iterate the native companion list, not the JSON text (see pipecast_vertex.wire).
            key = (items_chan.key or "") + ITEMS_SUFFIX
            items_chan = Chan("step", items_chan.name, key, items_chan.type, PT.LIST)
        return items_chan, subvar

    @staticmethod
    def _guarded(body: pb.ComponentSpec) -> bool:
        """Whether a loop over a run-time list gets the empty-list guard: it has outputs, all
        parameters (collected lists; an empty artifact list has no task to come from)."""
        outs = body.output_definitions
        return bool(outs.parameters) and not outs.artifacts

    def _guarded_loop(
        self,
        node: StepNode,
        task: pb.PipelineTaskSpec,
        body: pb.ComponentSpec,
        body_needs: Needs,
        items_chan: Chan,
        scope: Scope,
        needs: Needs,
        top: bool,
    ) -> None:
        """A loop over a run-time list whose outputs something reads, in kfp's
        ``dsl.If``/``dsl.Else`` + ``dsl.OneOf`` shape (a ``condition-branches`` DAG): the
        then-branch ``<g>--then`` (items ``!= []``) holds the ``ParallelFor`` task ``<g>--loop``,
        the else-branch ``<g>--else`` a task ``<g>--empty`` that yields ``[]``, and each group
        output is ``valueFromOneof`` of the two (kfp's OneOf compile:
        https://www.kubeflow.org/docs/components/pipelines/user-guides/core-functions/control-flow/).
        On KFP a ParallelFor over ``[]`` collects ``[]`` already; kfp.local's
        ``_run_parallel_for_task`` stores no outputs for it (``if not loop_tasks: return``), and
        an empty list takes the else-branch, so both read the same (docs/targets/vertex.md)."""
        tname = n.task_name(node.name)
        # The list again under a name kfp.local's condition evaluator reads as a parent input
        # (it parses ``pipelinechannel--<task>--<output>`` as a task output of this DAG).
        items = n.items_channel(node.name)
        guard = pb.ComponentSpec()
        self._declare_needs(guard, body_needs)
        guard.input_definitions.parameters[items].parameter_type = PT.LIST
        then = pb.ComponentSpec()
        self._declare_needs(then, body_needs)
        loop_task = then.dag.tasks[f"{tname}--loop"]
        loop_task.task_info.name = f"{tname}--loop"
        for name in sorted(body_needs):
            if body_needs[name].artifact:
                loop_task.inputs.artifacts[name].component_input_artifact = name
            else:
                loop_task.inputs.parameters[name].component_input_parameter = name
        for out, definition in body.output_definitions.parameters.items():
            then.output_definitions.parameters[out].CopyFrom(definition)
            vp = then.dag.outputs.parameters[out].value_from_parameter
            vp.producer_subtask, vp.output_parameter_key = loop_task.task_info.name, out
        self._iterate(loop_task, node, items_chan)
        loop_task.component_ref.name = n.component_name(tname, "loop")
        self.spec.components[loop_task.component_ref.name].CopyFrom(body)
        nonempty = f"inputs.parameter_values['{items}'] != []"
        # The list of a step that evaluates its own ``when``: skipped, it publishes ``[]`` as the
        # list the loop iterates and the marker as its text; the else-branch's task reads that
        # text, so it is skipped too and the loop's outputs carry the marker (absent, not ``[]``:
        # a for_each over a skipped step's list is skipped with it, SPEC §22).
        text = None
        if items_chan.kind == "step" and items_chan.name in self.self_gated:
            key = (items_chan.key or "").removesuffix(ITEMS_SUFFIX)
            text = Chan("step", items_chan.name, key, items_chan.type, PT.STRING, json=True)
            guard.input_definitions.parameters[text.input_name].parameter_type = PT.STRING
        else_comp = self._empty_outputs(node, body, None if text is None else text.input_name)
        for suffix, comp, cond_text in (("then", then, nonempty), ("else", else_comp, negate(nonempty))):
            branch = guard.dag.tasks[f"{tname}--{suffix}"]
            branch.task_info.name = f"{tname}--{suffix}"
            comp.input_definitions.parameters[items].parameter_type = PT.LIST
            for name in sorted(comp.input_definitions.parameters):
                branch.inputs.parameters[name].component_input_parameter = name
            for name in sorted(comp.input_definitions.artifacts):
                branch.inputs.artifacts[name].component_input_artifact = name
            branch.trigger_policy.condition = cond_text
            branch.component_ref.name = n.component_name(tname, suffix)
            self.spec.components[branch.component_ref.name].CopyFrom(comp)
        for out, definition in body.output_definitions.parameters.items():
            guard.output_definitions.parameters[out].CopyFrom(definition)
            oneof = guard.dag.outputs.parameters[out].value_from_oneof
            for suffix in ("then", "else"):
                sel = oneof.parameter_selectors.add()
                sel.producer_subtask, sel.output_parameter_key = f"{tname}--{suffix}", out
        for name in sorted(body_needs):
            self._bind(task.inputs, name, body_needs[name], scope, needs, top)
        self._bind(task.inputs, items, items_chan, scope, needs, top)
        if text is not None and text.input_name not in body_needs:
            self._bind(task.inputs, text.input_name, text, scope, needs, top)
        task.component_ref.name = n.component_name(tname)
        self.spec.components[task.component_ref.name].CopyFrom(guard)

    def _empty_outputs(
        self, node: StepNode, body: pb.ComponentSpec, source: str | None = None
    ) -> pb.ComponentSpec:
        """A DAG whose every (collected) parameter output is ``[]``: one task ``<g>--empty``
        (the runtime's ``identity`` on the literal ``[]``; the native list is its ``--items``
        companion, the JSON text ``"[]"`` its own output).

        ``source``: the DAG input holding the loop's list as JSON text, which the task reads
        instead of the literal (it is ``[]`` there, or the skipped marker, which skips it)."""
        tname = f"{n.task_name(node.name)}--empty"
        comp = pb.ComponentSpec()
        empty = comp.dag.tasks[tname]
        empty.task_info.name = tname
        empty.component_ref.name = n.component_name(tname)
        inner = self.spec.components[empty.component_ref.name]
        inner.output_definitions.parameters["output"].parameter_type = PT.STRING
        value = InputSpec(type="list", value=[], literal=True)
        extra: list[str] = []
        # The list the group outputs read: the ``--items`` view, or with a source the
        # ``--native`` one, which a skipped task marks (its ``--items`` view is ``[]``).
        view = ITEMS_SUFFIX
        if source is not None:
            view = NATIVE_SUFFIX
            comp.input_definitions.parameters[source].parameter_type = PT.STRING
            inner.input_definitions.parameters["value"].parameter_type = PT.STRING
            empty.inputs.parameters["value"].component_input_parameter = source
            value = InputSpec(type="list")
            extra = ["--json-inputs", kfp_inert(json.dumps(["value"], separators=(",", ":")))]
        inner.output_definitions.parameters["output" + view].parameter_type = PT.LIST
        for out, definition in body.output_definitions.parameters.items():
            comp.output_definitions.parameters[out].CopyFrom(definition)
            vp = comp.dag.outputs.parameters[out].value_from_parameter
            vp.producer_subtask, vp.output_parameter_key = tname, "output" + view
        spec = StepSpec(
            pipeline=self.p.name,
            step=f"{node.name}--empty",
            run=PythonRun(python="pipecast.runtime.builtins:identity"),
            inputs={"value": value},
            outputs={"output": "list"},
        )
        args = [
            "--spec",
            kfp_inert(spec.to_arg()),
            "--convention",
            "kfp",
            "--executor-input",
            "{{$}}",
            *extra,
        ]
        image = self.p.defaults.image or self.settings.image or placeholder("image")
        container = {"image": image, "command": [self.settings.python, "-m", "pipecast.runtime", "run"]}
        inner.executor_label = self._executor(tname, {"container": {**container, "args": args}})
        return comp

    def _empty_loop(self, node: StepNode, task: pb.PipelineTaskSpec) -> None:
        """A ``for_each`` over a literal ``[]`` with outputs: the group completes with empty
        lists (SPEC §22), so it is the DAG of :meth:`_empty_outputs`, with no loop."""
        body = pb.ComponentSpec()
        assert node.body is not None
        self._group_outputs(body, node, node.body, node.group.outputs, collect=True)
        if body.output_definitions.artifacts:
            raise UserError(
                Diagnostic(
                    f"{self.target}: for_each group {node.name!r} over [] has artifact outputs, "
                    "and an empty artifact list has no task to come from",
                    (*node.yaml_path, "for_each"),
                    hint="remove the group, or loop over a non-empty list",
                    code="empty-artifact-loop",
                )
            )
        tname = n.task_name(node.name)
        task.component_ref.name = n.component_name(tname)
        self.spec.components[task.component_ref.name].CopyFrom(self._empty_outputs(node, body))

    def _items_task(
        self,
        node: StepNode,
        task: pb.PipelineTaskSpec,
        dag: pb.DagSpec,
        scope: Scope,
        needs: Needs,
        top: bool,
        param: Chan | None,
    ) -> Chan:
        """A loop over a pipeline parameter: the parameter travels as JSON text, and a
        ``parameterIterator`` needs a native list. A task ``<loop>--items`` beside the loop runs
        the runtime's ``identity`` on it, which writes the ``--items`` companion (compound
        items as JSON text, so they stay exact, see :mod:`pipecast_vertex.wire`); the loop
        iterates that. Returns the channel of the companion.

        ``param`` ``None``: the loop's ``for_each`` is a list literal holding references
        (SPEC §19), which the task's runtime builds from its separate inputs (``--templates``)."""
        tname = f"{n.task_name(node.name)}--items"
        items = dag.tasks[tname]
        items.task_info.name = tname
        items.component_ref.name = n.component_name(tname)
        task.dependent_tasks.append(tname)
        comp = self.spec.components[items.component_ref.name]
        comp.output_definitions.parameters["output"].parameter_type = PT.STRING
        comp.output_definitions.parameters["output" + ITEMS_SUFFIX].parameter_type = PT.LIST
        type_ = param.type if param is not None else "list"
        json_inputs: set[str] = set()
        templates: dict[str, Any] = {}
        if param is not None:
            comp.input_definitions.parameters["value"].parameter_type = PT.STRING
            self._bind(items.inputs, "value", param, scope, needs, top)
            json_inputs.add("value")
        else:
            rv = node.resolved.for_each
            refs = self._template_refs(node, rv, None, items, comp, scope, needs, top, json_inputs)
            templates["value"] = {"template": node.group.for_each, "refs": refs}
            # kfp.local orders tasks by dependentTasks only: wait for the siblings it reads.
            producers = {b.task_output_parameter.producer_task for b in items.inputs.parameters.values()}
            producers |= {b.task_output_artifact.producer_task for b in items.inputs.artifacts.values()}
            items.dependent_tasks.extend(sorted(p for p in producers if p))
        spec = StepSpec(
            pipeline=self.p.name,
            step=f"{node.name}--items",
            run=PythonRun(python="pipecast.runtime.builtins:identity"),
            inputs={"value": InputSpec(type=type_)},
            outputs={"output": type_},
        )
        args = ["--spec", kfp_inert(spec.to_arg()), "--convention", "kfp", "--executor-input", "{{$}}"]
        if templates:
            args += ["--templates", kfp_inert(json.dumps(templates, sort_keys=True, separators=(",", ":")))]
        if json_inputs:
            args += ["--json-inputs", kfp_inert(json.dumps(sorted(json_inputs), separators=(",", ":")))]
        image = self.p.defaults.image or self.settings.image or placeholder("image")
        container = {"image": image, "command": [self.settings.python, "-m", "pipecast.runtime", "run"]}
        comp.executor_label = self._executor(tname, {"container": {**container, "args": args}})
        return Chan("task", tname, "output" + ITEMS_SUFFIX, type_, PT.LIST)

    def _iterate(
        self,
        task: pb.PipelineTaskSpec,
        node: StepNode,
        items_chan: Chan | None,
        items_input: str | None = None,
    ) -> None:
        group: GroupStep = node.group
        it = task.parameter_iterator
        it.item_input = n.item_channel(node.name)
        if items_input is not None:
            it.items.input_parameter = items_input
        elif items_chan is None:
            items = group.for_each
            if item_is_json(self.index, node):
                item_type = self.index.loop_item_type(node)
                items = [encode_item(item_type, v) for v in items]
            it.items.raw = json.dumps(items, sort_keys=True, separators=(",", ":"))
        else:
            it.items.input_parameter = items_chan.input_name
        if group.parallelism:
            task.iterator_policy.parallelism_limit = group.parallelism

    # ------------------------------------------------------------------ pipeline level

    def _pipeline_outputs(self, comp: pb.ComponentSpec, dag: pb.DagSpec, producer_prefix: str | None) -> None:
        for name, value in self.index.resolved.outputs.items():
            assert isinstance(value, StepOutput)
            ref = value.ref
            target = self.index.nodes[ref.name]
            type_ = self.index.output_type(target, ref.key or "") or ANY
            if ref.metric is not None:  # SPEC §15: the float output the step publishes
                comp.output_definitions.parameters[name].parameter_type = PT.NUMBER_DOUBLE
                vp = dag.outputs.parameters[name].value_from_parameter
                vp.producer_subtask = n.task_name(ref.name)
                vp.output_parameter_key = metric_key(ref.key or "", ref.metric)
            elif is_artifact_type(type_):
                self._declare_output(comp, name, type_)
                sel = dag.outputs.artifacts[name].artifact_selectors.add()
                sel.producer_subtask, sel.output_artifact_key = n.task_name(ref.name), ref.key or ""
            else:
                key = ref.key or ""
                if (ref.name, key) in self.native:
                    key += NATIVE_SUFFIX  # a list/dict as kfp declares it, not JSON text
                wire = self._out_wire(target, key)
                comp.output_definitions.parameters[name].parameter_type = wire
                vp = dag.outputs.parameters[name].value_from_parameter
                vp.producer_subtask, vp.output_parameter_key = n.task_name(ref.name), key

    def _finally(self, dag: pb.DagSpec) -> None:
        """The pipeline's exit task: after ``pipeline--body``, whatever happened."""
        node = self.index.finally_node
        assert node is not None
        needs: Needs = {}
        self._exit_task(node, dag, n.FINALLY_TASK, n.BODY_TASK, self.index.root, needs, top=True)
        assert not needs, needs

    def _exit_task(
        self,
        node: StepNode,
        dag: pb.DagSpec,
        tname: str,
        producer: str,
        scope: Scope | None,
        needs: Needs,
        top: bool,
    ) -> pb.PipelineTaskSpec:
        """A ``finally`` step as KFP's exit task (what ``dsl.ExitHandler`` compiles to): task
        ``tname`` in ``dag`` runs after ``producer`` whatever happened
        (``triggerPolicy.strategy: ALL_UPSTREAM_TASKS_COMPLETED``) and takes its
        ``PipelineTaskFinalStatus``
        (https://www.kubeflow.org/docs/components/pipelines/user-guides/core-functions/execute-kfp-pipelines-locally/
        and ``PipelineTaskSpec.TriggerPolicy`` in
        https://github.com/kubeflow/pipelines/blob/master/api/v2alpha1/pipeline_spec.proto)."""
        task = dag.tasks[tname]
        task.task_info.name = tname
        self._task(node, task, scope, needs, top=top)
        comp = self.spec.components[task.component_ref.name]
        # Always take the status: it is what marks an exit task (kfp.local looks for it).
        comp.input_definitions.parameters[n.STATUS_INPUT].parameter_type = PT.TASK_FINAL_STATUS
        comp.input_definitions.parameters[n.STATUS_INPUT].is_optional = True
        task.inputs.parameters[n.STATUS_INPUT].task_final_status.producer_task = producer
        task.dependent_tasks.append(producer)
        task.trigger_policy.strategy = (
            pb.PipelineTaskSpec.TriggerPolicy.TriggerStrategy.ALL_UPSTREAM_TASKS_COMPLETED
        )
        return task

    def _group_finally(
        self, node: StepNode, task: pb.PipelineTaskSpec, scope: Scope, needs: Needs, top: bool
    ) -> None:
        """A group's own ``finally`` (SPEC §18). kfp allows ``dsl.ExitHandler`` only in a
        pipeline's outermost scope, so the group is lowered to what an exit handler compiles
        to, one level down: the group's task ``task`` (already compiled, in the DAG that holds
        it) keeps its name, inputs, dependencies and condition but runs a DAG
        ``comp-<group>--exit-handler`` holding the group's own task (its loop, branches or
        steps, every input read from the handler) and ``<group>--finally``, the exit task
        over it. Readers of the group's outputs and steps after it wait for the handler, so
        for its finally (docs/semantics.md); a skipped ``when`` group skips both."""
        fin = node.finally_node
        assert fin is not None
        tname = task.task_info.name
        group_comp = self.spec.components[task.component_ref.name]
        handler = pb.ComponentSpec()
        body = handler.dag.tasks[tname]
        body.task_info.name = tname
        body.component_ref.name = task.component_ref.name
        defs = group_comp.input_definitions
        for name in task.inputs.parameters:
            handler.input_definitions.parameters[name].CopyFrom(defs.parameters[name])
            body.inputs.parameters[name].component_input_parameter = name
        for name in task.inputs.artifacts:
            handler.input_definitions.artifacts[name].CopyFrom(defs.artifacts[name])
            body.inputs.artifacts[name].component_input_artifact = name
        _forward_outputs(group_comp, handler, tname)
        fin_needs: Needs = {}
        self._exit_task(fin, handler.dag, n.task_name(fin.name), tname, None, fin_needs, top=False)
        fresh = {k: c for k, c in fin_needs.items() if k not in task.inputs.parameters}
        fresh = {k: c for k, c in fresh.items() if k not in task.inputs.artifacts}
        self._declare_needs(handler, fresh)
        for name in sorted(fresh):
            self._bind(task.inputs, name, fresh[name], scope, needs, top)
        task.component_ref.name = n.component_name(tname, "exit-handler")
        self.spec.components[task.component_ref.name].CopyFrom(handler)

    def _plain_group(
        self, node: StepNode, task: pb.PipelineTaskSpec, scope: Scope, needs: Needs, top: bool
    ) -> None:
        """A plain group (a sub-pipeline keeping its ``finally``, SPEC §17): a DAG task of its
        steps, as kfp compiles a pipeline used as a component."""
        assert node.body is not None
        comp = pb.ComponentSpec()
        body_needs = self._scope(node.body, comp.dag, top=False)
        self._group_outputs(comp, node, node.body, node.group.outputs, collect=False)
        self._declare_needs(comp, body_needs)
        for name in sorted(body_needs):
            self._bind(task.inputs, name, body_needs[name], scope, needs, top)
        task.component_ref.name = n.component_name(n.task_name(node.name))
        self.spec.components[task.component_ref.name].CopyFrom(comp)


def _forward_outputs(src: pb.ComponentSpec, dst: pb.ComponentSpec, producer: str) -> None:
    """Declare ``src``'s outputs on the DAG ``dst`` and take each from its task ``producer``."""
    for out, definition in src.output_definitions.parameters.items():
        dst.output_definitions.parameters[out].CopyFrom(definition)
        vp = dst.dag.outputs.parameters[out].value_from_parameter
        vp.producer_subtask, vp.output_parameter_key = producer, out
    for out, art in src.output_definitions.artifacts.items():
        dst.output_definitions.artifacts[out].CopyFrom(art)
        sel = dst.dag.outputs.artifacts[out].artifact_selectors.add()
        sel.producer_subtask, sel.output_artifact_key = producer, out


def _value(v: Any) -> struct_pb2.Value:
    out = struct_pb2.Value()
    json_format.ParseDict(v, out)
    return out


def compile_with_images(
    pipeline: Pipeline,
    index: PipelineIndex,
    settings: VertexSettings,
    compiler_class: type[Compiler] = Compiler,
) -> tuple[dict[str, Any], list[Diagnostic], dict[str, list[str]]]:
    """The PipelineSpec as JSON data (``MessageToDict``), warnings, and the images that need the
    pipecast runtime (image → steps)."""
    compiler = compiler_class(pipeline, index, settings)
    spec = compiler.build()
    data = json_format.MessageToDict(spec, preserving_proto_field_name=False)
    # deploymentSpec is a free Struct: the executors are plain JSON already, so they skip the
    # protobuf round trip (a third of the compile time on large pipelines).
    data["deploymentSpec"] = {"executors": compiler.executors}
    images = stock.runtime_images(index, compiler.plans, settings.image)
    return data, compiler.diagnostics, images
