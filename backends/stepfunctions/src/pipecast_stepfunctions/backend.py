"""The ``stepfunctions`` backend: pipeline → Amazon States Language + deploy files.

https://docs.aws.amazon.com/step-functions/latest/dg/welcome.html
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pipecast.backend import (
    INLINED_SUBPIPELINES,
    Backend,
    CompileResult,
    Feature,
    Report,
    Support,
    native,
    runtime,
)
from pipecast.diagnostics import Diagnostic
from pipecast.gcpause import gc_paused
from pipecast.io import dump_json
from pipecast.ir.models import Pipeline
from pipecast.passes.analysis import PipelineIndex

from .settings import StepFunctionsSettings

if TYPE_CHECKING:
    from pipecast.simulator.profiles import Profile

# Edges nested Parallel states cannot express run as waits (docs/targets/stepfunctions.md).
ORDERING = "an ordering edge: in the lowered Parallel structure, or a cross-branch wait through S3"


class StepFunctionsBackend(Backend):
    """AWS Step Functions (standard workflows). See docs/targets/stepfunctions.md."""

    name = "stepfunctions"
    title = "AWS Step Functions"
    docs_url = "https://docs.aws.amazon.com/step-functions/latest/dg/concepts-amazon-states-language.html"
    #: Executed by the suite in moto (backends/stepfunctions/tests/sfn_helpers.py).
    conformance = "sfn_helpers:StepFunctionsConformance"
    settings_model = StepFunctionsSettings
    #: A sub-pipeline with a finally is a plain group lowered like a group with a finally
    #: (emitter.emit_group_finally); the others are inlined.
    emits_plain_groups_with_finally = True
    features: ClassVar[Mapping[Feature, Support]] = {
        Feature.PYTHON_STEP: runtime(
            "the step image runs `python -m pipecast.runtime`, which calls the function"
        ),
        Feature.CONTAINER_STEP: runtime(
            "the pipecast runtime in the image fills {{ inputs.X }}/{{ outputs.Y }} and runs the command"
        ),
        Feature.STOCK_IMAGES: native(
            "compute sagemaker: ProcessingInputs/Outputs map artifacts (an output is <LocalPath>/<name> "
            "plus pipecast's marker), parameters arrive in Environment, parameter outputs are files "
            "read back by getObject; the command runs under sh (no pipecast). Cached steps, secrets "
            "and untyped inputs need the runtime; compute batch: every step runs the runtime (no file "
            "staging); compute callback: the worker runs the image unchanged"
        ),
        Feature.PARAMS: native(
            "defaults merged with the execution input (States.JsonMerge), then type-checked by a Choice"
        ),
        Feature.PARAM_OUTPUTS: native("carried in the state at $.steps.<step>.outputs"),
        Feature.ARTIFACTS: runtime(
            "S3 URIs under <artifact_root>/<pipeline>/<execution>/<step>/; the runtime uploads and downloads"
        ),
        Feature.AFTER: native(ORDERING),
        Feature.WHEN: native("Choice state"),
        Feature.ELSE: native("the Choice state's Default branch"),
        Feature.GROUP_OUTPUTS: native("a Pass state per branch / Map ResultSelector with $[*].<output>"),
        Feature.WHEN_OUTPUTS: native("each Choice branch ends in a Pass state that sets the group's outputs"),
        Feature.AFTER_GROUP: native(ORDERING),
        Feature.FOR_EACH: native("Map state (INLINE, or DISTRIBUTED by setting or width)"),
        Feature.PARALLELISM: native("Map MaxConcurrency"),
        Feature.NESTED_FOR_EACH: native("nested Map states"),
        Feature.RETRY: native(
            "Retry: MaxAttempts = attempts - 1; delays in whole seconds (at least 1, rounded up with a warning)"
        ),
        Feature.RETRY_BACKOFF: native("Retry BackoffRate"),
        Feature.RETRY_JITTER: native("Retry JitterStrategy FULL"),
        Feature.TIMEOUT: native(
            "TimeoutSeconds per attempt (whole seconds, at least 1); SageMaker MaxRuntimeInSeconds too"
        ),
        Feature.RESOURCES: native(
            "SageMaker instance type from the resources table; Batch ResourceRequirements; not enforced with compute=callback (a warning says so)"
        ),
        Feature.ACCELERATORS: native(
            "GPU instance types (SageMaker) / GPU count (Batch; the queue picks the GPU model)"
        ),
        Feature.ENV: runtime(
            "passed to the runtime in the step spec (and as container environment on SageMaker/Batch)"
        ),
        Feature.SECRETS: runtime("resolved by name from AWS Secrets Manager by the runtime at run time"),
        Feature.CACHE: runtime(
            "the runtime keeps a result cache in S3 (<artifact_root>/.pipecast-cache/<pipeline>/), keyed "
            "by the SPEC §20 signature; a hit restores the outputs without running the step "
            "(the task still starts: a worker message, a SageMaker job or a Batch job)"
        ),
        Feature.COMPONENTS: native("inlined: an ordinary task state per step"),
        Feature.SUBPIPELINES: INLINED_SUBPIPELINES,
        Feature.ARTIFACT_PARAMS: runtime(
            "the s3:// URI travels in the state like an artifact output; the runtime downloads it "
            "(a local path is refused at compile time)"
        ),
        Feature.IMPORT: native(
            "a Pass state puts the URI (States.Format of params and loop items) in the state as the "
            "'artifact' output, metadata beside it; no code runs"
        ),
        Feature.METRIC_REFS: runtime(
            "the runtime publishes each Metrics output's numbers beside the step's outputs "
            "($.steps.<step>.metrics: the callback worker's answer, or metrics.json read back after a "
            "SageMaker/Batch job), read by Choice rules and inputs; a missing name fails the step (a "
            "Fail state); a stock-image SageMaker step whose metrics are read runs the runtime"
        ),
        Feature.STRUCTURED_VALUES: runtime(
            "a task input: the literal as JSON text plus each reference's value (a JSONPath), built by "
            "the step runtime (keys in stored order, artifacts downloaded); for_each: a Pass builds "
            "the items with States.Array"
        ),
        Feature.GROUP_FINALLY: native(
            # https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html
            "the group's states in a one-branch Parallel; success runs the finally with "
            "group.status 'succeeded', the Catch (States.ALL) runs it with 'failed', then a Fail state"
        ),
        Feature.FINALLY: native(
            "the body runs in a Parallel whose Catch leads to the finally step, then Fail"
        ),
        Feature.SCHEDULE: native("an EventBridge Scheduler schedule (schedule.json)"),
        Feature.SCHEDULE_TIMEZONE: native("ScheduleExpressionTimezone of EventBridge Scheduler"),
        Feature.PIPELINE_OUTPUTS: native("the execution output's 'outputs'"),
    }

    def check_target(self, index: PipelineIndex, settings: Any, report: Report) -> None:
        """Resource requests no SageMaker processing instance type covers (compute=sagemaker),
        then every limit of the generated definition (history events, state and definition
        size, intrinsic calls, SageMaker and Batch request sizes): those are known only once it
        is built, so this builds it, with the user's settings, and :meth:`emit` returns that
        build (no second build; emit reports nothing new)."""
        self._instance_types(index, settings, report)
        if not report.errors:
            self.build_for_emit(
                index, settings, report, lambda: self._compile(index.pipeline, index, settings)
            )

    def _instance_types(self, index: PipelineIndex, settings: StepFunctionsSettings, report: Report) -> None:
        from pipecast.sizes import describe

        from .instances import pick_instance

        _check_loop_items(index, report)
        if settings.compute != "sagemaker":
            return
        for node in index.tasks():
            res = index.effective(node).resources
            if node.name in settings.instance_types or pick_instance(res) is not None:
                continue
            own = node.task.resources is not None
            report.unsupported(
                f"no SageMaker processing instance type offers {describe(res)}",
                (*node.yaml_path, "resources") if own else ("defaults", "resources"),
                step=node.name,
                code="resources",
                hint="lower the request, pick another accelerator, or set "
                f"instance_types: {{{node.name}: <ml.type>}} in the target settings",
            )

    def summary_lines(self, summary: Mapping[str, Any]) -> list[str]:
        lines = []
        if "history_events_estimate" in summary:  # 25,000 events per standard execution
            lines.append(
                f"estimated history events: {summary['history_events_estimate']:,}"
                + (
                    f" (worst case {summary['history_events_worst_case']:,})"
                    if "history_events_worst_case" in summary
                    else ""
                )
                + (f" of {summary['history_events_limit']:,}" if "history_events_limit" in summary else "")
            )
        if "state_bytes_estimate" in summary:  # 256 KiB per state (state_size.py)
            lines.append(
                f"estimated largest state: {summary['state_bytes_estimate']:,} bytes "
                f"of {summary['state_bytes_limit']:,}; IAM: iam-policy.json, iam-trust-policy.json"
            )
        if summary.get("cross_branch_waits"):  # dag_mode waits
            lines.append(
                f"{summary['cross_branch_waits']} cross-branch wait(s): dependencies nested Parallel "
                "states cannot express, kept exact through S3 (dag_mode: waits)"
            )
        return lines

    def profile(self) -> Profile:
        from pipecast_stepfunctions.profile import StepFunctionsProfile

        return StepFunctionsProfile(self.name)

    def default_filename(self, pipeline: Pipeline) -> str:
        return f"{pipeline.name}.asl.json"

    def emit(self, pipeline: Pipeline, index: PipelineIndex, settings: Any) -> CompileResult:
        settings = self.settings_of(settings)
        built: CompileResult | None = self.built(index, settings)
        return built if built is not None else self._compile(pipeline, index, settings)

    @staticmethod
    def _compile(pipeline: Pipeline, index: PipelineIndex, settings: StepFunctionsSettings) -> CompileResult:
        from .compile import compile_pipeline

        # Compiling allocates hundreds of thousands of small dicts that all stay alive; the
        # cyclic collector would rescan them again and again (super-linear time) for nothing.
        with gc_paused():
            return compile_pipeline(pipeline, index, settings)

    def validate_output(self, files: Mapping[str, str]) -> list[Diagnostic]:
        from .validate import validate_files

        return validate_files(files)

    def deploy(self, pipeline: Pipeline, files: Mapping[str, str], settings: Any, **options: Any) -> Any:
        from .deploy import deploy

        return deploy(pipeline, files, self.settings_of(settings), **options)

    def local_engine(self) -> Any:
        from .local import StepFunctionsEngine

        return StepFunctionsEngine()


def _check_loop_items(index: PipelineIndex, report: Report) -> None:
    """A ``for_each`` list literal holding references is built by ASL (no runtime runs
    there): a list holding references inside an item, and a non-string value inside a mixed
    string (ASL cannot render compact JSON, SPEC §22), cannot be built."""
    from pipecast.passes.resolve import Text, Value

    from .paths import is_built, part

    for node in index.walk():
        if not (node.is_group and node.group.is_loop and is_built(node.group.for_each)):
            continue
        base = (*node.yaml_path, "for_each")
        for_each = node.resolved.for_each
        assert isinstance(node.group.for_each, list) and for_each is not None
        stack: list[tuple[tuple[str | int, ...], Any, Value, bool]] = [
            ((*base, k), item, part(for_each, k), False) for k, item in enumerate(node.group.for_each)
        ]
        while stack:
            path, value, resolved, in_item = stack.pop()
            if isinstance(value, list) and in_item and is_built(value):
                report.unsupported(
                    "a list holding references inside a for_each item cannot be built in ASL",
                    path,
                    step=node.name,
                    code="unsupported-feature",
                    hint="make the item a mapping, or compute the list in a step and loop over its output",
                )
            elif isinstance(value, dict | list):
                items = value.items() if isinstance(value, dict) else enumerate(value)
                stack.extend(((*path, k), v, part(resolved, k), True) for k, v in items)
            elif isinstance(resolved, Text):  # a mixed string (a lone reference keeps its type)
                refs = [r.ref for r in resolved.refs]
                for ref in refs:
                    kind = (
                        "str"
                        if ref.kind == "pipeline"
                        else index.resolve(ref, node.scope, dependent=node.name).type
                    )
                    if kind != "str":
                        report.unsupported(
                            f"{{{{ {ref.path} }}}} ({kind or 'unknown type'}) inside a mixed "
                            "string of a for_each item: ASL cannot render it as compact JSON (SPEC §22)",
                            path,
                            step=node.name,
                            code="unsupported-feature",
                            hint="loop over the value itself and build the text in the step",
                        )
                        break


__all__ = ["StepFunctionsBackend", "dump_json"]
