"""The Kubernetes PlatformSpec (``platforms.kubernetes``): what Vertex has no words for.

KFP's compiler writes it as a second YAML document after the PipelineSpec; the
``kfp-kubernetes`` extension fills it per executor with a ``KubernetesExecutorConfig``
(https://github.com/kubeflow/pipelines/blob/master/kubernetes_platform/proto/kubernetes_executor_config.proto).
pipecast writes the same messages the ``kfp.kubernetes`` helpers write:

=====================  ===============================================================
pipecast               KubernetesExecutorConfig
=====================  ===============================================================
secrets                ``secretAsEnv``: the Secret's key → ``PIPECAST_SECRET_<NAME>``; the
                       runtime (secret store ``env``) sets the step's own variable from it
                       (a container step that runs its image unchanged gets the variable itself)
gpu / accelerator      ``nodeSelector`` per cluster kind (table below) and a ``tolerations``
                       entry for the GPU taint; the ``nvidia.com/gpu`` limit is in the
                       container's ``resources.accelerator``
image_pull_secrets     ``imagePullSecret``
pod_labels/annotations ``podMetadata``
pvc                    ``pvcMount``
=====================  ===============================================================

GPU model labels per cluster kind:

* ``gke``: ``cloud.google.com/gke-accelerator``
  (https://cloud.google.com/kubernetes-engine/docs/how-to/gpus); GPU nodes are tainted
  ``nvidia.com/gpu:NoSchedule``.
* ``eks``: ``eks.amazonaws.com/instance-gpu-name`` (EKS Auto Mode node pools,
  https://docs.aws.amazon.com/eks/latest/userguide/create-node-pool.html; Karpenter's
  ``karpenter.k8s.aws/instance-gpu-name`` takes the same values); GPU nodes are tainted
  ``nvidia.com/gpu:NoSchedule``.
* ``aks``: no label names the GPU model; GPU nodes carry ``kubernetes.azure.com/accelerator:
  nvidia`` and AKS's guide taints GPU pools ``sku=gpu:NoSchedule``
  (https://learn.microsoft.com/en-us/azure/aks/gpu-cluster). The model is the node pool's:
  ``gpu_node_selector`` pins one.
* ``plain``: the NVIDIA device plugin's ``nvidia.com/gpu`` resource and taint only
  (https://kubernetes.io/docs/tasks/manage-gpus/scheduling-gpus/); ``gpu_node_selector``
  pins a model.
"""

from __future__ import annotations

from typing import Any

from pipecast.ir.models import Resources
from pipecast.passes.analysis import PipelineIndex, StepNode
from pipecast.runtime.secrets import env_names
from pipecast_kubeflow.settings import DNS_SUBDOMAIN, ClusterKind, KubeflowSettings

#: The extended resource the NVIDIA device plugin advertises (the container's GPU limit).
GPU_RESOURCE = "nvidia.com/gpu"

#: Portable accelerator → node labels that select it, per cluster kind (None: not offered there).
MODEL_LABELS: dict[ClusterKind, dict[str, dict[str, str] | None]] = {
    "gke": {
        "nvidia-t4": {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"},
        "nvidia-l4": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
        "nvidia-a10g": None,  # an AWS-only GPU (g5 instances)
        "nvidia-v100": {"cloud.google.com/gke-accelerator": "nvidia-tesla-v100"},
        "nvidia-a100": {"cloud.google.com/gke-accelerator": "nvidia-tesla-a100"},
        "nvidia-a100-80gb": {"cloud.google.com/gke-accelerator": "nvidia-a100-80gb"},
        "nvidia-h100": {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
    },
    "eks": {
        "nvidia-t4": {"eks.amazonaws.com/instance-gpu-name": "t4"},
        "nvidia-l4": {"eks.amazonaws.com/instance-gpu-name": "l4"},
        "nvidia-a10g": {"eks.amazonaws.com/instance-gpu-name": "a10g"},
        "nvidia-v100": {"eks.amazonaws.com/instance-gpu-name": "v100"},
        "nvidia-a100": {"eks.amazonaws.com/instance-gpu-name": "a100"},
        "nvidia-a100-80gb": {
            "eks.amazonaws.com/instance-gpu-name": "a100",
            "eks.amazonaws.com/instance-gpu-memory": "81920",  # MiB per GPU (p4de)
        },
        "nvidia-h100": {"eks.amazonaws.com/instance-gpu-name": "h100"},
    },
    # Azure N-series VMs: https://learn.microsoft.com/en-us/azure/virtual-machines/sizes/overview#gpu-accelerated
    "aks": {
        "nvidia-t4": {},
        "nvidia-l4": None,
        "nvidia-a10g": None,
        "nvidia-v100": {},
        "nvidia-a100": {},
        "nvidia-a100-80gb": {},
        "nvidia-h100": {},
    },
    "plain": {},
}
#: Labels every GPU node of a cluster kind carries.
GPU_NODE_LABELS: dict[ClusterKind, dict[str, str]] = {"aks": {"kubernetes.azure.com/accelerator": "nvidia"}}
#: The taints of GPU nodes (key, operator, value, effect), per cluster kind.
GPU_TAINTS: dict[ClusterKind, list[tuple[str, str, str, str]]] = {
    "gke": [(GPU_RESOURCE, "Exists", "", "NoSchedule")],
    "eks": [(GPU_RESOURCE, "Exists", "", "NoSchedule")],
    "aks": [("sku", "Equal", "gpu", "NoSchedule")],
    "plain": [(GPU_RESOURCE, "Exists", "", "NoSchedule")],
}


def accelerator_problem(res: Resources, settings: KubeflowSettings) -> tuple[str, str] | None:
    """Why the cluster cannot give this accelerator, and what to do (``None``: it can)."""
    if not res.accelerator:
        return None
    table = MODEL_LABELS[settings.cluster]
    if res.accelerator in table and table[res.accelerator] is None:
        offered = ", ".join(k for k, v in table.items() if v is not None)
        return (
            f"accelerator {res.accelerator!r} is not offered on {settings.cluster.upper()} clusters",
            f"use one of: {offered}, or set 'cluster' to the kind of your cluster",
        )
    return None


def model_unpinned(res: Resources, settings: KubeflowSettings) -> bool:
    """An accelerator model was asked for that no node label of this cluster kind selects."""
    if not res.accelerator or settings.gpu_node_selector:
        return False
    return not MODEL_LABELS[settings.cluster].get(res.accelerator)


def secret_ref(name: str, default_key: str) -> tuple[str, str]:
    """A pipecast secret name → (Kubernetes Secret, key): ``name`` or ``name/key``."""
    secret, _, key = name.partition("/")
    return secret, key or default_key


def secret_problem(name: str) -> str | None:
    secret, _, key = name.partition("/")
    if not DNS_SUBDOMAIN.match(secret) or len(secret) > 253:
        return f"secret {name!r} is not a Kubernetes Secret name (lower-case letters, digits, '-', '.')"
    if "/" in name and not key:
        return f"secret {name!r} names no key after '/'"
    return None


def executor_config(
    node: StepNode, index: PipelineIndex, settings: KubeflowSettings, *, stock: bool = False
) -> dict[str, Any]:
    """The ``KubernetesExecutorConfig`` (JSON names) of one task step; ``{}`` when it needs none.

    ``stock``: the step runs its image without the pipecast runtime, so each Secret goes into
    the step's own variable rather than the runtime's ``PIPECAST_SECRET_<NAME>``.
    """
    eff = index.effective(node)
    out: dict[str, Any] = {}
    if eff.secrets:
        by_secret: dict[str, list[dict[str, str]]] = {}
        if stock:
            pairs = sorted((var, name) for var, name in eff.secrets.items())
        else:
            pairs = [(env_names(name)[0], name) for name in sorted(set(eff.secrets.values()))]
        for var, name in pairs:
            secret, key = secret_ref(name, settings.secret_key)
            by_secret.setdefault(secret, []).append({"envVar": var, "secretKey": key})
        # The form kfp.kubernetes.use_secret_as_env writes (kfp-kubernetes 2.17).
        out["secretAsEnv"] = [
            {
                "keyToEnv": pairs,
                "optional": False,
                "secretName": secret,
                "secretNameParameter": {"runtimeValue": {"constant": secret}},
            }
            for secret, pairs in sorted(by_secret.items())
        ]
    res = eff.resources
    if res.gpu or res.accelerator:
        labels = dict(GPU_NODE_LABELS.get(settings.cluster, {}))
        labels.update(MODEL_LABELS[settings.cluster].get(res.accelerator or "") or {})
        labels.update(settings.gpu_node_selector)
        if labels:
            out["nodeSelector"] = {"labels": dict(sorted(labels.items()))}
        out["tolerations"] = [
            {"key": key, "operator": op, **({"value": value} if value else {}), "effect": effect}
            for key, op, value, effect in GPU_TAINTS[settings.cluster]
        ]
    if settings.image_pull_secrets:
        out["imagePullSecret"] = [
            {"secretName": s, "secretNameParameter": {"runtimeValue": {"constant": s}}}
            for s in settings.image_pull_secrets
        ]
    if settings.pod_labels or settings.pod_annotations:
        meta: dict[str, Any] = {}
        if settings.pod_annotations:
            meta["annotations"] = dict(sorted(settings.pod_annotations.items()))
        if settings.pod_labels:
            meta["labels"] = dict(sorted(settings.pod_labels.items()))
        out["podMetadata"] = meta
    if settings.pvc is not None:
        out["pvcMount"] = [
            {
                "constant": settings.pvc.name,
                "mountPath": settings.pvc.mount_path,
                "pvcNameParameter": {"runtimeValue": {"constant": settings.pvc.name}},
            }
        ]
    return out


def platform_spec(executors: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The PlatformSpec document for executor label → ``KubernetesExecutorConfig`` (``None``: empty)."""
    if not executors:
        return None
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": dict(sorted(executors.items()))}}}}
