"""The Azure ML target: a CLI v2 pipeline job YAML, component files, a schedule, and deploy.

Docs: https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-pipeline
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pipecast import stock
from pipecast.backend import (
    INLINED_SUBPIPELINES,
    Backend,
    CompileResult,
    Feature,
    Report,
    Support,
    native,
    runtime,
    unsupported,
)
from pipecast.diagnostics import Diagnostic
from pipecast_azureml.settings import AzureMLSettings

if TYPE_CHECKING:
    from pipecast.ir.models import Pipeline
    from pipecast.passes.analysis import PipelineIndex
    from pipecast.simulator.profiles import Profile

#: The environment variable Azure ML's SDK/CLI needs to load if_else and parallel_for nodes.
PRIVATE_FEATURES_ENV = "AZURE_ML_CLI_PRIVATE_FEATURES_ENABLED"


class AzureMLBackend(Backend):
    """Compiles to an Azure ML pipeline job that ``az ml job create`` submits unchanged."""

    name = "azureml"
    title = "Azure ML pipelines"
    docs_url = "https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-pipeline"
    #: No local engine: the suite checks graph equivalence (backends/azureml/tests/azml_helpers.py).
    conformance = "azml_helpers:AzureMLConformance"
    settings_model = AzureMLSettings
    features: ClassVar[Mapping[Feature, Support]] = {
        Feature.PYTHON_STEP: native("command job running the pipecast runtime"),
        Feature.CONTAINER_STEP: native(
            "command job in the step's image; ${{inputs.x}} / ${{outputs.y}} fill the command"
        ),
        Feature.STOCK_IMAGES: native(
            "${{inputs.x}} / ${{outputs.y}} in the command; every output is a uri_folder the "
            "command writes <folder>/<name> in (a parameter output: the value's text, since Azure ML "
            "has no primitive output a plain command sets); retries loop in the shell; secrets, "
            "loop items, list-of-artifact inputs and exposed parameter outputs need the runtime"
        ),
        Feature.PARAMS: native("pipeline inputs (plain values; list/dict as JSON text)"),
        Feature.PARAM_OUTPUTS: native(
            "primitive outputs: the runtime writes them to run history (azureml.pipeline.control)"
        ),
        Feature.ARTIFACTS: native("uri_folder outputs on the default datastore"),
        Feature.AFTER: native(
            "a control binding (after__X <- X.outputs.pipecast_done): Azure ML orders by data"
        ),
        Feature.WHEN: native(
            "if_else node fed by a generated condition job; needs AZURE_ML_CLI_PRIVATE_FEATURES_ENABLED"
        ),
        Feature.ELSE: native("if_else false_block (a pipeline component node)"),
        Feature.GROUP_OUTPUTS: native(
            "for_each: parallel_for aggregated outputs; when: a select job (see when-group outputs)"
        ),
        Feature.WHEN_OUTPUTS: runtime(
            "gating: both branches' jobs start, the runtime skips the branch not taken (markers), "
            "and a <group>__select job publishes the taken branch's values (one extra job, and a "
            "short container per skipped job)"
        ),
        Feature.AFTER_GROUP: native(
            "a completion output: a when-group's <group>__select job waits for both branches' last "
            "jobs; a for_each body exposes its last jobs' pipecast_done, aggregated by parallel_for"
        ),
        Feature.FOR_EACH: native(
            "parallel_for over a pipeline component body; needs the private-features env var"
        ),
        Feature.PARALLELISM: native("parallel_for max_concurrency"),
        Feature.NESTED_FOR_EACH: native("parallel_for inside a parallel_for body (validated by the SDK)"),
        Feature.RETRY: runtime("command jobs have no retry settings: the runtime retries inside the job"),
        Feature.RETRY_BACKOFF: runtime("the runtime waits min(delay * backoff^(n-1), max_delay)"),
        Feature.RETRY_JITTER: runtime("the runtime draws the jitter"),
        Feature.TIMEOUT: native("limits.timeout (with retries, the runtime times each attempt)"),
        Feature.RESOURCES: native("a VM size from the resources table → compute target or instance_type"),
        Feature.ACCELERATORS: native("GPU VM sizes from the resources table (no L4 / A10G on Azure)"),
        Feature.ENV: native("environment_variables"),
        Feature.SECRETS: runtime("the runtime reads Azure Key Vault by secret name (key_vault_url)"),
        Feature.CACHE: native("component is_deterministic (reuse) only when the step asks"),
        Feature.COMPONENTS: native(
            "a command component file per component (components/<name>.component.yml), referenced "
            "by path from each use; literal inputs and the step name are job inputs; a use whose "
            "settings change the component (runtime retry, image, cache) gets <name>-2"
        ),
        Feature.SUBPIPELINES: INLINED_SUBPIPELINES,
        Feature.ARTIFACT_PARAMS: native("a uri_folder / uri_file pipeline input with the URI as path"),
        Feature.IMPORT: native(
            "a uri_folder / uri_file pipeline input <step>__artifact with the URI as path (no job); "
            "the URI is written whole or is an artifact parameter"
        ),
        Feature.METRIC_REFS: runtime(
            "the runtime publishes each metric read elsewhere as a number output of the job that "
            "wrote the Metrics file (<output>__<metric>); conditions and inputs bind to it"
        ),
        Feature.STRUCTURED_VALUES: runtime(
            "the runtime builds the list or mapping from one input per reference (each by its "
            "type, an artifact as its local path); a for_each literal holding references gets an "
            "items job"
        ),
        Feature.GROUP_FINALLY: unsupported(
            # https://learn.microsoft.com/en-us/azure/machine-learning/reference-yaml-job-pipeline
            # https://learn.microsoft.com/en-us/azure/machine-learning/reference-yaml-component-pipeline
            # (no settings); tests/test_azureml_group_finally.py runs the SDK's _validate().
            "a job runs only when the jobs it depends on succeeded; the one job that runs after a "
            "failure is settings.on_finalize, which Azure ML refuses inside a pipeline component "
            "('On_finalize is not supported for pipeline component'), so neither a group's finally "
            "nor a sub-pipeline's",
            "move the cleanup into the pipeline's 'finally' (it sees pipeline.status), or check the status inside the group's last step",
        ),
        Feature.FINALLY: native("settings.on_finalize; pipeline.status read by the runtime from run history"),
        Feature.SCHEDULE: native("a schedule YAML (cron trigger); deploy creates it"),
        Feature.SCHEDULE_TIMEZONE: native("trigger.time_zone (IANA mapped to Windows names)"),
        Feature.PIPELINE_OUTPUTS: native("pipeline job outputs bound from jobs"),
    }

    def profile(self) -> Profile:
        from pipecast_azureml.profile import AzureMLProfile

        return AzureMLProfile(self.name)

    def check_target(self, index: PipelineIndex, settings: Any, report: Report) -> None:
        """What only Azure ML limits: time zones and crons, and what a dry compile with the
        user's settings refuses."""
        from pipecast_azureml.schedule import azure_cron, windows_zone

        schedule = index.pipeline.schedule
        if schedule is not None:
            with report.catching():
                windows_zone(schedule.timezone)
            with report.catching():
                azure_cron(schedule.cron)
        # What Azure ML cannot express depends on the pipeline's shape (outputs of when-groups,
        # waiting on a when-group, accelerators Azure lacks) and on the settings (a compute
        # cluster or serverless VM sizes): a dry compile with the user's settings finds it, so
        # the error carries the pipeline file's line like every other check. The compile is
        # kept for emit (one compile per run, not a dry one and then the real one).
        self.build_for_emit(index, settings, report, lambda: _compiled(index, settings))

    def emit(self, pipeline: Pipeline, index: PipelineIndex, settings: Any) -> CompileResult:
        from pipecast_azureml.compiler import uses_control_flow
        from pipecast_azureml.render import render_yaml
        from pipecast_azureml.schedule import schedule_document

        compiler, result = self.built(index, settings) or _compiled(index, settings)
        private = uses_control_flow(result)
        job_file = self.default_filename(pipeline)
        files = {job_file: render_yaml(result.job, private=private)}
        for rel, data in sorted(result.components.items()):
            files[rel] = render_yaml(data, private=private)
        if pipeline.schedule is not None:
            # The schedule creates the job, so it needs the same switch (header and warning).
            files[f"{pipeline.name}.schedule.yml"] = render_yaml(
                schedule_document(pipeline, job_file), private=private
            )
        diagnostics = list(result.diagnostics)
        if private:
            diagnostics.append(
                Diagnostic(
                    f"target 'azureml': this job uses if_else/parallel_for nodes; set {PRIVATE_FEATURES_ENV}=true "
                    "where you run az ml job create, az ml schedule create or the SDK",
                    severity="warning",
                    code="private-features",
                )
            )
        summary = {
            "jobs": result.jobs,
            "components": len(result.components),
            "control_bindings": len(result.control_bindings),
            "bytes": sum(len(t.encode()) for t in files.values()),
            "private_features": private,
            # SPEC §21: python steps, and container steps the command cannot fill natively.
            "runtime_images": stock.runtime_images(index, compiler.plans, settings.image),
        }
        return CompileResult(files=files, diagnostics=diagnostics, summary=summary)

    def default_filename(self, pipeline: Pipeline) -> str:
        return f"{pipeline.name}.yml"

    def validate_output(self, files: Mapping[str, str]) -> list[Diagnostic]:
        """pipecast's own checks, then ``azure.ai.ml.load_job`` + ``job._validate()``."""
        from pipecast_azureml.validate import validate_files

        return validate_files(files)

    def local_engine(self) -> Any:
        from pipecast_azureml.local import AzureMLEngine

        return AzureMLEngine()

    def deploy(self, pipeline: Pipeline, files: Mapping[str, str], settings: Any, **options: Any) -> Any:
        """Submit the job with ``MLClient.jobs.create_or_update`` and create the schedule, if any.

        Options: ``params`` (input values), ``credential``, ``run`` (ignored: submitting runs it).
        """
        from pipecast_azureml.deploy import deploy

        return deploy(pipeline, files, settings, **options)


__all__ = ["PRIVATE_FEATURES_ENV", "AzureMLBackend"]


def _compiled(index: PipelineIndex, settings: Any) -> tuple[Any, Any]:
    """The compiler (its stock-image plans) and what it compiled."""
    from pipecast_azureml.compiler import Compiler

    compiler = Compiler(index.pipeline, index, settings)
    return compiler, compiler.compile()
