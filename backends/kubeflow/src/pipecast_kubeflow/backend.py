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

from pipecast.backend import CompileResult, Feature, Support, approximate, native, runtime
from pipecast.diagnostics import Diagnostic, UserError
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

    def check(self, index: PipelineIndex, *, lenient: bool = False, settings: Any = None) -> list[Diagnostic]:
        """The Vertex checks (output and item shapes) plus Kubernetes names of secrets."""
        from pipecast_kubeflow.platform import secret_problem

        out = super().check(index, lenient=lenient, settings=settings)
        for node in index.tasks():
            own = node.task.secrets or {}
            for var, name in sorted(index.effective(node).secrets.items()):
                problem = secret_problem(name)
                if problem is None:
                    continue
                path = (*node.yaml_path, "secrets", var) if var in own else ("defaults", "secrets", var)
                out.append(
                    Diagnostic(
                        f"target 'kubeflow': step {node.name!r}: {problem}",
                        path,
                        hint="name the Kubernetes Secret (optionally 'secret/key' for a key other than "
                        "the 'secret_key' setting)",
                        code="invalid-secret-name",
                    )
                )
        return out

    def accelerator_problem(self, res: Resources) -> tuple[str, str] | None:
        # Which models a cluster offers depends on the 'cluster' setting: checked in emit.
        return None

    def emit(self, pipeline: Pipeline, index: PipelineIndex, settings: Any) -> CompileResult:
        from pipecast_vertex.compiler import compile_with_images

        from pipecast import yamltext
        from pipecast.io import dump_json
        from pipecast_kubeflow.compiler import collecting
        from pipecast_kubeflow.platform import platform_spec
        from pipecast_kubeflow.schedule import recurring_run

        _cluster_checks(index, settings)
        executors: dict[str, dict[str, Any]] = {}
        data, diagnostics, images = compile_with_images(pipeline, index, settings, collecting(executors))
        diagnostics += _unpinned_models(index, settings)
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


def _cluster_checks(index: PipelineIndex, settings: KubeflowSettings) -> None:
    """Accelerators the configured kind of cluster does not offer (SPEC §8: an error)."""
    from pipecast_kubeflow.platform import accelerator_problem

    errors = []
    for node in index.tasks():
        problem = accelerator_problem(index.effective(node).resources, settings)
        if problem:
            own = node.task.resources is not None
            errors.append(
                Diagnostic(
                    f"target 'kubeflow': step {node.name!r}: {problem[0]}",
                    (*node.yaml_path, "resources") if own else ("defaults", "resources"),
                    hint=problem[1],
                    code="unsupported-accelerator",
                )
            )
    if errors:
        raise UserError(errors)


def _unpinned_models(index: PipelineIndex, settings: KubeflowSettings) -> list[Diagnostic]:
    from pipecast_kubeflow.platform import model_unpinned

    out = []
    for node in index.tasks():
        res = index.effective(node).resources
        if model_unpinned(res, settings):
            out.append(
                Diagnostic(
                    f"kubeflow: step {node.name!r} asks for {res.accelerator!r}, but on a "
                    f"{settings.cluster!r} cluster no node label names the GPU model: the pod gets "
                    "any NVIDIA GPU",
                    (*node.yaml_path, "resources") if node.task.resources else ("defaults", "resources"),
                    hint="set gpu_node_selector to the labels of the node pool with that GPU "
                    "(or set 'cluster' to gke or eks)",
                    severity="warning",
                    code="accelerator-unpinned",
                )
            )
    return out
