"""The Kubeflow Pipelines target: the Vertex backend's PipelineSpec plus the Kubernetes PlatformSpec.

A dialect of :mod:`pipecast_vertex` (the way a sqlglot dialect extends another): the DAG,
conditions, loops, retries, caching and the exit handler are the Vertex compiler's, because
Kubeflow Pipelines runs the same KFP v2 PipelineSpec. What differs is Kubernetes: secrets are
Kubernetes Secrets, GPUs are node selectors and tolerations, and pods get pull secrets,
labels, annotations and volumes (:mod:`pipecast_kubeflow.platform`); deploy talks to the KFP
API with ``kfp.Client`` (:mod:`pipecast_kubeflow.deploy`).

Docs: https://www.kubeflow.org/docs/components/pipelines/ and
https://www.kubeflow.org/docs/components/pipelines/user-guides/core-functions/platform-specific-features/
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pipecast_vertex.backend import VertexBackend

from pipecast.backend import CompileResult, Feature, Report, Support, approximate, native, runtime
from pipecast.diagnostics import Diagnostic
from pipecast_kubeflow.settings import KubeflowSettings

if TYPE_CHECKING:
    from pipecast.ir.models import Pipeline, Resources
    from pipecast.passes.analysis import PipelineIndex
    from pipecast.simulator.profiles import Profile

SCHEDULE_SUFFIX = ".schedule.json"


class KubeflowBackend(VertexBackend):
    """Compiles to the PipelineSpec + PlatformSpec YAML that ``kfp dsl compile`` writes."""

    name = "kubeflow"
    title = "Kubeflow Pipelines"
    docs_url = "https://www.kubeflow.org/docs/components/pipelines/"
    #: Executed by the suite in kfp.local (backends/kubeflow/tests/kubeflow_helpers.py).
    conformance = "kubeflow_helpers:KubeflowConformance"
    settings_model = KubeflowSettings
    step_limits = None  # the cluster's nodes bound a step, not Vertex AI
    features: ClassVar[Mapping[Feature, Support]] = {
        **VertexBackend.features,
        Feature.RETRY: native(
            "retryPolicy: the KFP driver retries the task's pod maxRetryCount = attempts - 1 times, "
            "waiting backoffDuration x backoffFactor^n, at most backoffMaxDuration"
        ),
        Feature.TIMEOUT: runtime(
            "PipelineTaskSpec has no timeout and the KFP driver enforces none per task: the runtime "
            "kills the attempt"
        ),
        Feature.RESOURCES: native("container requests = limits (the scheduler places pods by requests)"),
        Feature.ACCELERATORS: native(
            "nvidia.com/gpu limit + node selector and toleration per cluster kind (setting 'cluster')"
        ),
        Feature.SECRETS: native(
            "Kubernetes Secrets as env (secretAsEnv → PIPECAST_SECRET_<NAME>); the runtime sets "
            "the step's variable"
        ),
        Feature.STOCK_IMAGES: native(
            "KFP placeholders in command/args, retryPolicy (no jitter: a warning), the image's own "
            "`timeout`; secrets arrive in the step's variables from Kubernetes (secretAsEnv); a step "
            "whose inputs the runtime builds (mixed strings, pipeline.*, loop-item keys) or whose list "
            "output a for_each iterates keeps the runtime (compile lists its image)"
        ),
        Feature.SCHEDULE: native(
            f"a KFP recurring run (<name>{SCHEDULE_SUFFIX}, cron with a seconds field); deploy creates it"
        ),
        Feature.SCHEDULE_TIMEZONE: approximate(
            "KFP recurring runs take no time zone: the scheduled-workflow controller applies its "
            "CRON_SCHEDULE_TIMEZONE (UTC unless the cluster sets it) to every cron",
            "write the cron in UTC (timezone: UTC), or set CRON_SCHEDULE_TIMEZONE on "
            "ml-pipeline-scheduledworkflow to the pipeline's zone",
        ),
    }

    def profile(self) -> Profile:
        """No run-time limits of Vertex's (its cap of 100 collected artifacts is Vertex AI's)."""
        from pipecast.simulator.profiles import Profile

        return Profile(self.name)

    def check_target(self, index: PipelineIndex, settings: Any, report: Report) -> None:
        """What the cluster and Kubernetes refuse: secret names that are not Kubernetes object
        names, accelerators the cluster kind does not offer (SPEC §8), and (a warning) models
        no node label selects."""
        from pipecast_kubeflow.platform import accelerator_problem, model_unpinned, secret_problem

        super().check_target(index, settings, report)  # Vertex's (import URIs; no step limits here)
        for node in index.tasks():
            eff = index.effective(node)
            own = node.task.secrets or {}
            for var, name in sorted(eff.secrets.items()):
                problem = secret_problem(name)
                if problem is not None:
                    report.unsupported(
                        problem,
                        (*node.yaml_path, "secrets", var) if var in own else ("defaults", "secrets", var),
                        code="invalid-secret-name",
                        hint="name the Kubernetes Secret (optionally 'secret/key' for a key other than "
                        "the 'secret_key' setting)",
                        step=node.name,
                    )
            where = (
                (*node.yaml_path, "resources")
                if node.task.resources is not None
                else ("defaults", "resources")
            )
            accel = accelerator_problem(eff.resources, settings)
            if accel is not None:
                report.unsupported(
                    accel[0], where, code="unsupported-accelerator", hint=accel[1], step=node.name
                )
            elif model_unpinned(eff.resources, settings):
                report.unsupported(
                    f"asks for {eff.resources.accelerator!r}, but on a {settings.cluster!r} cluster no node "
                    "label names the GPU model: the pod gets any NVIDIA GPU",
                    where,
                    code="accelerator-unpinned",
                    hint="set gpu_node_selector to the labels of the node pool with that GPU "
                    "(or set 'cluster' to gke or eks)",
                    step=node.name,
                    severity="warning",
                )

    def accelerator_problem(self, res: Resources) -> tuple[str, str] | None:
        # Which models a cluster offers depends on the 'cluster' setting: see check_target.
        return None

    def emit(self, pipeline: Pipeline, index: PipelineIndex, settings: Any) -> CompileResult:
        from pipecast_vertex.compiler import compile_with_images

        from pipecast import yamltext
        from pipecast.io import dump_json
        from pipecast_kubeflow.compiler import collecting
        from pipecast_kubeflow.platform import platform_spec
        from pipecast_kubeflow.schedule import recurring_run

        executors: dict[str, dict[str, Any]] = {}
        data, diagnostics, images = compile_with_images(pipeline, index, settings, collecting(executors))
        platform = platform_spec(executors)
        # Two YAML documents, as kfp's compiler writes a pipeline with a PlatformSpec.
        text = yamltext.dump(data)
        if platform is not None:
            text += "---\n" + yamltext.dump(platform)
        files = {f"{pipeline.name}.yaml": text}
        if pipeline.schedule is not None:
            files[f"{pipeline.name}{SCHEDULE_SUFFIX}"] = dump_json(recurring_run(pipeline, settings))
        summary = {
            "tasks": sum(1 for _ in index.tasks()),
            "components": len(data.get("components", {})),
            "executors": len(data["deploymentSpec"]["executors"]),
            "platform executors": len(platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"])
            if platform
            else 0,
            "bytes": len(text.encode()),
            "runtime_images": images,
        }
        return CompileResult(files=files, diagnostics=diagnostics, summary=summary)

    @staticmethod
    def spec_filename(pipeline: Pipeline, settings: Any) -> str:
        return f"{pipeline.name}.yaml"

    def validate_output(self, files: Mapping[str, str]) -> list[Diagnostic]:
        """The Vertex checks of the PipelineSpec, kfp-kubernetes' protobuf for the PlatformSpec."""
        from pipecast_kubeflow.validate import validate_files

        return validate_files(files)

    def deploy(self, pipeline: Pipeline, files: Mapping[str, str], settings: Any, **options: Any) -> Any:
        """Upload (a new version when the pipeline exists), schedule, and ``--run``.

        Options: ``params`` (run-time parameter values), ``run`` (start a run and follow it),
        ``client`` (a ``kfp.Client``; built from the settings when absent).
        """
        from pipecast_kubeflow.deploy import deploy

        return deploy(pipeline, files, settings, **options)
