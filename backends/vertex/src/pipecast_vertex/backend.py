"""The Vertex AI Pipelines target: a KFP v2 PipelineSpec, a schedule request, and deploy.

Docs: https://cloud.google.com/vertex-ai/docs/pipelines/introduction and
https://www.kubeflow.org/docs/components/pipelines/reference/pipeline-spec/
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pipecast.backend import (
    INLINED_SUBPIPELINES,
    Backend,
    CompileResult,
    Feature,
    Report,
    Settings,
    Support,
    native,
    runtime,
)
from pipecast.diagnostics import Diagnostic
from pipecast.passes.analysis import is_artifact_type
from pipecast.passes.resolve import RefNode, StepOutput, Value
from pipecast_vertex.settings import VertexSettings

if TYPE_CHECKING:
    from pipecast.ir.models import Pipeline, Resources
    from pipecast.passes.analysis import PipelineIndex
    from pipecast.simulator.profiles import Profile


class VertexBackend(Backend):
    """Compiles to a KFP v2 PipelineSpec that Vertex AI Pipelines (or Kubeflow) runs unchanged."""

    name = "vertex"
    title = "Vertex AI Pipelines"
    docs_url = "https://cloud.google.com/vertex-ai/docs/pipelines/introduction"
    #: Executed by the suite in kfp.local (backends/vertex/tests/kfp_local.py).
    conformance = "kfp_local:VertexConformance"
    settings_model: ClassVar[type[Settings]] = VertexSettings
    #: A sub-pipeline keeping its finally (SPEC §17-§18) is a DAG task with an exit handler.
    emits_plain_groups_with_finally = True
    features: ClassVar[Mapping[Feature, Support]] = {
        Feature.PYTHON_STEP: native("container executor running the pipecast runtime"),
        Feature.CONTAINER_STEP: native(
            "container component: the image runs unchanged, KFP placeholders fill {{ inputs/outputs }}"
        ),
        Feature.STOCK_IMAGES: native(
            "KFP placeholders in command/args, retryPolicy (no jitter: a warning), the image's own "
            "`timeout` for timeouts; a step whose inputs the runtime builds (mixed strings, "
            "pipeline.*, loop-item keys), that reads Secret Manager secrets or whose list output a "
            "for_each iterates keeps the runtime (compile lists its image)"
        ),
        Feature.PARAMS: native("root.inputDefinitions.parameters, typed, with defaults"),
        Feature.PARAM_OUTPUTS: native("outputDefinitions.parameters (executor_output.json)"),
        Feature.ARTIFACTS: native("system.Dataset/Model/Metrics/Artifact under the pipeline root"),
        Feature.AFTER: native("dependentTasks"),
        Feature.WHEN: native("condition sub-DAG with triggerPolicy.condition (CEL)"),
        Feature.ELSE: native("two condition tasks; outputs through valueFromOneof"),
        Feature.GROUP_OUTPUTS: native("DAG outputs; collected lists for for_each"),
        Feature.WHEN_OUTPUTS: native("dagOutputs valueFromOneof over the condition branches"),
        Feature.AFTER_GROUP: native("dependentTasks on the group's sub-DAG task"),
        Feature.FOR_EACH: native("parameterIterator"),
        Feature.PARALLELISM: native("iteratorPolicy.parallelismLimit"),
        Feature.NESTED_FOR_EACH: native("nested parameterIterator DAGs"),
        Feature.RETRY: native("retryPolicy (maxRetryCount = attempts - 1, backoff fields)"),
        Feature.RETRY_BACKOFF: native("retryPolicy.backoffFactor takes any factor"),
        Feature.RETRY_JITTER: runtime("retryPolicy has no jitter: such steps retry inside the runtime"),
        Feature.TIMEOUT: runtime("PipelineTaskSpec has no timeout: the runtime kills the attempt"),
        Feature.RESOURCES: native("container resource limits (Vertex honours limits only)"),
        Feature.ACCELERATORS: native("container accelerator {type, count}; see the accelerator table"),
        Feature.ENV: native("container env"),
        Feature.SECRETS: runtime("the runtime reads Google Secret Manager by secret name"),
        Feature.CACHE: native("cachingOptions.enableCache (off unless the step asks)"),
        Feature.COMPONENTS: native(
            "one ComponentSpec + executor per component file and container; each use's literal "
            "inputs and step name are task constants"
        ),
        Feature.SUBPIPELINES: native(
            f"{INLINED_SUBPIPELINES.note}; one with its own finally is a DAG task of its steps "
            "with that finally as its exit task (<step>--finally)"
        ),
        Feature.STRUCTURED_VALUES: runtime(
            "the consuming step's runtime builds the list/mapping from separate inputs "
            "(--templates); a for_each over such a list iterates what a task `<loop>--items` builds"
        ),
        Feature.GROUP_FINALLY: native(
            # kfp 2.17 allows dsl.ExitHandler only in a pipeline's outermost scope
            # (pipeline_spec_builder), so the group gets the shape an exit handler compiles to.
            "the group's task runs a DAG of the group's own task and an exit task over it "
            "(ALL_UPSTREAM_TASKS_COMPLETED + taskFinalStatus, mapped to group.status)"
        ),
        Feature.FINALLY: native("exit handler: ALL_UPSTREAM_TASKS_COMPLETED + taskFinalStatus"),
        Feature.SCHEDULE: native("a Vertex schedule request (<name>.schedule.json); deploy creates it"),
        Feature.SCHEDULE_TIMEZONE: native("cron with a TZ= prefix"),
        Feature.PIPELINE_OUTPUTS: native("root DAG outputs"),
        Feature.IMPORT: native(
            "importer node (`importer` executor, reimport: false); the URI is a "
            "literal, one param or one loop item"
        ),
        Feature.METRIC_REFS: runtime(
            "the producing step's runtime also publishes each metric the pipeline reads as a "
            "float output parameter `<output>-metric-<name>`, which conditions and inputs read"
        ),
        Feature.ARTIFACT_PARAMS: native(
            "a str runtime parameter (the URI) and an importer task `param--<name>` (root "
            "artifact inputs cannot be given to a run as URIs)"
        ),
    }

    #: The most one pipeline step may ask for: 96 CPUs and 624 GB of memory
    #: (https://cloud.google.com/vertex-ai/docs/pipelines/machine-types); ``None``: no fixed limit
    #: (a dialect running on its own cluster).
    step_limits: ClassVar[tuple[float, int] | None] = (96, 624 * 10**9)

    def check_target(self, index: PipelineIndex, settings: Any, report: Report) -> None:
        """What only Vertex limits: import URIs, accelerators, output and item shapes, and
        resource requests over what one Vertex AI pipeline step can get."""
        self._check_imports(index, report)
        for node in index.tasks():
            problem = self.accelerator_problem(index.effective(node).resources)
            if problem:
                own = node.task.resources is not None
                report.unsupported(
                    problem[0],
                    (*node.yaml_path, "resources") if own else ("defaults", "resources"),
                    step=node.name,
                    hint=problem[1],
                    code="unsupported-accelerator",
                )
        self._check_shapes(index, report)
        self._check_step_limits(index, report)

    def _check_imports(self, index: PipelineIndex, report: Report) -> None:
        for node in index.tasks():
            spec = node.task.import_
            if spec is not None and "{{" in spec.uri and not isinstance(node.resolved.import_uri, RefNode):
                report.unsupported(
                    "import.uri mixes text and references; KFP's importer reads its URI from one parameter",
                    (*node.yaml_path, "import", "uri"),
                    code="import-uri",
                    hint="build the whole URI in a str parameter (or a loop item) and write "
                    "uri: '{{ params.X }}'",
                    step=node.name,
                )

    def _check_step_limits(self, index: PipelineIndex, report: Report) -> None:
        if self.step_limits is None:
            return
        max_cpu, max_memory = self.step_limits
        for node in index.tasks():
            res = index.effective(node).resources
            over = []
            if res.cpu is not None and res.cpu > max_cpu:
                over.append(f"cpu {res.cpu:g}")
            if res.memory_bytes is not None and res.memory_bytes > max_memory:
                over.append(f"memory {res.memory}")
            if over:
                own = node.task.resources is not None
                report.unsupported(
                    f"asks for {' and '.join(over)}; a Vertex AI pipeline step gets at most "
                    f"{max_cpu:g} CPUs and {max_memory // 10**9} GB of memory",
                    (*node.yaml_path, "resources") if own else ("defaults", "resources"),
                    step=node.name,
                    code="resources",
                    hint="ask for less, or split the work over several steps",
                )

    def profile(self) -> Profile:
        from pipecast_vertex.profile import VertexProfile

        return VertexProfile(self.name)

    def _check_shapes(self, index: PipelineIndex, report: Report) -> None:
        """Group and pipeline outputs that are not one step output; for_each over artifacts or
        over a loop item that travels as JSON text."""
        from pipecast_vertex.wire import item_is_json

        for node in index.walk():
            if not node.is_group:
                continue
            group = node.group
            resolved = node.resolved
            exprs: list[tuple[tuple[str, ...], str, Value]] = [
                (("outputs", k), v, resolved.outputs[k]) for k, v in group.outputs.items()
            ]
            if group.else_ is not None:
                exprs += [
                    (("else", "outputs", k), v, resolved.else_outputs[k])
                    for k, v in group.else_.outputs.items()
                ]
            for rel, expr, value in exprs:
                report.add(
                    *_output_shape(self.name, expr, value, (*node.yaml_path, *rel), f"group {node.name!r}")
                )
            if group.is_loop:
                ref = resolved.for_each.ref if isinstance(resolved.for_each, RefNode) else None
                if ref is not None and ref.kind == "step":
                    res_type = index.output_type(index.nodes[ref.name], ref.key or "") or "any"
                    if is_artifact_type(res_type):
                        report.add(
                            Diagnostic(
                                f"target {self.name!r}: group {node.name!r} fans out over artifacts "
                                f"({res_type}); pipecast compiles for_each to a parameterIterator",
                                (*node.yaml_path, "for_each"),
                                hint="fan out over a list of parameters (for example the artifacts' "
                                "names) and pass the collected artifacts as one input",
                                code="unsupported-feature",
                            )
                        )
                if ref is not None and ref.kind == "loop" and ref.key is None:
                    outer = index.loop_vars(node.scope).get(ref.name)
                    if outer is not None and item_is_json(index, outer):
                        report.add(
                            Diagnostic(
                                f"target {self.name!r}: group {node.name!r} fans out over a loop item that "
                                "travels as JSON text (a list item of a step output or a literal list); "
                                "KFP iterators need a list parameter",
                                (*node.yaml_path, "for_each"),
                                hint="fan out over a pipeline parameter, or add a step that returns "
                                "the inner list and fan out over its output",
                                code="unsupported-feature",
                            )
                        )
        for name, expr in index.pipeline.outputs.items():
            value = index.resolved.outputs[name]
            report.add(*_output_shape(self.name, expr, value, ("outputs", name), "the pipeline"))

    def accelerator_problem(self, res: Resources) -> tuple[str, str] | None:
        """Why this target cannot satisfy a resource request, and what to do (``None``: it can)."""
        from pipecast_vertex.resources import accelerator_problem

        return accelerator_problem(res)

    def emit(self, pipeline: Pipeline, index: PipelineIndex, settings: Any) -> CompileResult:
        from pipecast import yamltext
        from pipecast.io import dump_json
        from pipecast_vertex.compiler import compile_with_images
        from pipecast_vertex.schedule import schedule_request

        data, diagnostics, images = compile_with_images(pipeline, index, settings)
        text = dump_json(data) if settings.format == "json" else yamltext.dump(data)
        files = {self.spec_filename(pipeline, settings): text}
        if pipeline.schedule is not None:
            files[f"{pipeline.name}.schedule.json"] = dump_json(schedule_request(pipeline, data, settings))
        summary = {
            "tasks": sum(1 for _ in index.tasks()),
            "components": len(data.get("components", {})),
            "executors": len(data["deploymentSpec"]["executors"]),
            "bytes": len(text.encode()),
            "runtime_images": images,
        }
        return CompileResult(files=files, diagnostics=diagnostics, summary=summary)

    @staticmethod
    def spec_filename(pipeline: Pipeline, settings: VertexSettings) -> str:
        return f"{pipeline.name}.{settings.format}"

    def default_filename(self, pipeline: Pipeline) -> str:
        return f"{pipeline.name}.yaml"

    def validate_output(self, files: Mapping[str, str]) -> list[Diagnostic]:
        """Strict protobuf parse, pipecast's reference checks, and kfp's component loader."""
        from pipecast_vertex.validate import validate_files

        return validate_files(files)

    def deploy(self, pipeline: Pipeline, files: Mapping[str, str], settings: Any, **options: Any) -> Any:
        """Submit a run with ``aiplatform.PipelineJob`` and create the schedule, if any.

        Options: ``params`` (run-time parameter values), ``credentials``.
        """
        from pipecast_vertex.deploy import deploy

        return deploy(pipeline, files, settings, **options)

    def local_engine(self) -> Any:
        """kfp.local with the subprocess runner (Kubeflow, a subclass, gets its own)."""
        from pipecast.verify.kfp_local import KfpEngine

        # pipecast[verify-vertex] installs kfp, the engine of every KFP dialect (kubeflow too).
        return KfpEngine(self.name, self.title or self.name, "verify-vertex")


def _output_shape(
    target: str, expr: str, value: Value, path: tuple[str | int, ...], owner: str
) -> list[Diagnostic]:
    if isinstance(value, StepOutput):
        return []
    return [
        Diagnostic(
            f"target {target!r}: an output of {owner} must be exactly one step output reference "
            f"({json.dumps(expr)} is not): KFP DAG outputs come from tasks",
            path,
            hint="add a step that computes the value and expose its output",
            code="unsupported-feature",
        )
    ]
