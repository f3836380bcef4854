"""The Vertex PipelineSpec compiler with Kubernetes resources.

Everything else of the spec is the Vertex backend's (:mod:`pipecast_vertex.compiler`); the
Kubernetes-only settings go in the PlatformSpec (:mod:`pipecast_kubeflow.platform`).
"""

from __future__ import annotations

from typing import Any

from pipecast_vertex.compiler import Compiler
from pipecast_vertex.resources import container_resources

from pipecast.ir.models import Resources
from pipecast_kubeflow.platform import GPU_RESOURCE


class KubeflowCompiler(Compiler):
    target = "kubeflow"

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
