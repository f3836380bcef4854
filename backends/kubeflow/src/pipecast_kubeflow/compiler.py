"""The Vertex PipelineSpec compiler with Kubernetes resources.

Everything else of the spec is the Vertex backend's (:mod:`pipecast_vertex.compiler`); the
Kubernetes-only settings go in the PlatformSpec (:mod:`pipecast_kubeflow.platform`).
"""

from __future__ import annotations

import json
from typing import Any

from pipecast_vertex import naming as n
from pipecast_vertex.compiler import Compiler
from pipecast_vertex.resources import container_resources

from pipecast.ir.models import Pipeline, Resources
from pipecast.passes.analysis import PipelineIndex, StepNode
from pipecast_kubeflow.platform import GPU_RESOURCE, executor_config, pod_config


class KubeflowCompiler(Compiler):
    """Also collects each executor's ``KubernetesExecutorConfig`` (:attr:`platform`)."""

    target = "kubeflow"
    #: Kubernetes puts each Secret into the step's own variable (secretAsEnv): stock images
    #: with secrets need no runtime.
    secrets_need_runtime = False

    def __init__(self, pipeline: Pipeline, index: PipelineIndex, settings: Any) -> None:
        super().__init__(pipeline, index, settings)
        #: executor label → KubernetesExecutorConfig (JSON names), for executors that need one.
        self.platform: dict[str, dict[str, Any]] = {}
        self._node: StepNode | None = None

    def _task(self, node: StepNode, *args: Any, **kwargs: Any) -> None:
        self._node = node
        try:
            super()._task(node, *args, **kwargs)
        finally:
            self._node = None

    def _executor(self, tname: str, executor: dict[str, Any]) -> str:
        """Identical executors are shared only when their Kubernetes configs are identical too
        (two stock containers on different GPU models differ in the PlatformSpec only). A task
        pipecast adds (no step) gets what every pod gets (:func:`pod_config`)."""
        if self._node is None:
            config = pod_config(self.settings)  # type: ignore[arg-type]  # KubeflowSettings
        else:
            plan = self.stock_plan(self._node)
            config = executor_config(
                self._node,
                self.index,
                self.settings,  # type: ignore[arg-type]  # KubeflowSettings
                stock=plan is not None and plan.stock,
            )
        key = json.dumps([executor, config], sort_keys=True)
        label = self._executor_keys.get(key)
        if label is None:
            label = self._unique_name(n.executor_label(tname), self.executors)
            self._executor_keys[key] = label
            self.executors[label] = executor
            if config:
                self.platform[label] = config
        return label

    def container_resources(self, res: Resources) -> dict[str, Any] | None:
        """Requests equal to the limits, and GPUs as the ``nvidia.com/gpu`` extended resource.

        Vertex honours limits only; on Kubernetes the scheduler places pods by their
        requests, so pipecast asks for what it limits (a Guaranteed pod,
        https://kubernetes.io/docs/concepts/workloads/pods/pod-qos/). The KFP driver turns
        ``accelerator {type, count}`` into a container limit of that resource, as
        ``set_accelerator_type('nvidia.com/gpu')`` writes it; the model is chosen by node
        selector in the PlatformSpec.
        """
        out = container_resources(res.model_copy(update={"gpu": None, "accelerator": None}))
        out = dict(out or {})
        if "cpuLimit" in out:
            out["cpuRequest"], out["resourceCpuRequest"] = out["cpuLimit"], out["resourceCpuLimit"]
        if "memoryLimit" in out:
            out["memoryRequest"] = out["memoryLimit"]
            out["resourceMemoryRequest"] = out["resourceMemoryLimit"]
        if res.gpu or res.accelerator:
            count = str(res.gpu or 1)
            out["accelerator"] = {
                "type": GPU_RESOURCE,
                "count": count,
                "resourceType": GPU_RESOURCE,
                "resourceCount": count,
            }
        return out or None


def collecting(platform: dict[str, dict[str, Any]]) -> type[KubeflowCompiler]:
    """A :class:`KubeflowCompiler` that leaves its :attr:`~KubeflowCompiler.platform` in ``platform``
    (the Vertex entry point builds the compiler itself and returns only the spec)."""

    class Collecting(KubeflowCompiler):
        def __init__(self, pipeline: Pipeline, index: PipelineIndex, settings: Any) -> None:
            super().__init__(pipeline, index, settings)
            self.platform = platform

    return Collecting
