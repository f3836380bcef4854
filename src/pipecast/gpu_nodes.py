"""Where a GPU step's pod goes on each Kubernetes flavour: node selector and tolerations.

SPEC §8 names accelerators portably (``nvidia-t4``, ...); each managed Kubernetes labels its
GPU nodes differently, so the mapping is a per-cluster setting of the backends that emit pods
(Airflow's KubernetesPodOperator, Kubeflow). Every cluster also needs the pod to request
``nvidia.com/gpu`` (the NVIDIA device plugin's resource), which the backends do themselves.

| cluster | node selector for the accelerator | tolerations |
|---|---|---|
| ``gke`` | ``cloud.google.com/gke-accelerator`` (GKE's names) | ``nvidia.com/gpu`` Exists NoSchedule |
| ``eks`` | ``eks.amazonaws.com/instance-gpu-name`` (+ memory for A100 80GB) | ``nvidia.com/gpu`` Exists NoSchedule |
| ``aks`` | ``kubernetes.azure.com/accelerator: nvidia`` (the node pool picks the model) | ``sku=gpu`` NoSchedule, ``nvidia.com/gpu`` |
| ``plain`` | none (any node with ``nvidia.com/gpu``; the model is not chosen) | ``nvidia.com/gpu`` Exists NoSchedule |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Cluster = Literal["gke", "eks", "aks", "plain"]
CLUSTERS: tuple[Cluster, ...] = ("gke", "eks", "aks", "plain")

# https://cloud.google.com/kubernetes-engine/docs/how-to/gpus (GKE has no A10G).
GKE_LABEL = "cloud.google.com/gke-accelerator"
GKE = {
    "nvidia-t4": "nvidia-tesla-t4",
    "nvidia-l4": "nvidia-l4",
    "nvidia-v100": "nvidia-tesla-v100",
    "nvidia-a100": "nvidia-tesla-a100",
    "nvidia-a100-80gb": "nvidia-a100-80gb",
    "nvidia-h100": "nvidia-h100-80gb",
}
# EKS Auto Mode node labels (eks.amazonaws.com/instance-gpu-name, -gpu-memory in MiB):
# https://docs.aws.amazon.com/eks/latest/userguide/create-node-pool.html
EKS_LABEL = "eks.amazonaws.com/instance-gpu-name"
EKS_MEMORY_LABEL = "eks.amazonaws.com/instance-gpu-memory"
EKS = {
    "nvidia-t4": {EKS_LABEL: "t4"},
    "nvidia-l4": {EKS_LABEL: "l4"},
    "nvidia-a10g": {EKS_LABEL: "a10g"},
    "nvidia-v100": {EKS_LABEL: "v100"},
    "nvidia-a100": {EKS_LABEL: "a100", EKS_MEMORY_LABEL: "40960"},
    "nvidia-a100-80gb": {EKS_LABEL: "a100", EKS_MEMORY_LABEL: "81920"},
    "nvidia-h100": {EKS_LABEL: "h100"},
}
# AKS GPU node pools carry kubernetes.azure.com/accelerator=nvidia and, as the docs advise,
# the taint sku=gpu:NoSchedule: https://learn.microsoft.com/azure/aks/gpu-cluster
AKS_LABEL = "kubernetes.azure.com/accelerator"


@dataclass(frozen=True)
class Toleration:
    key: str
    operator: Literal["Exists", "Equal"]
    effect: str
    value: str | None = None


#: The NVIDIA device plugin's taint of GPU nodes:
#: https://github.com/NVIDIA/k8s-device-plugin#running-gpu-jobs
NVIDIA_GPU = Toleration("nvidia.com/gpu", "Exists", "NoSchedule")


@dataclass(frozen=True)
class Placement:
    """Node selector and tolerations of a GPU pod; ``note`` says what the cluster cannot pin."""

    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()
    note: str | None = None


class UnsupportedAccelerator(ValueError):
    """The cluster kind has no nodes with this accelerator (e.g. an A10G on GKE)."""

    def __init__(self, cluster: str, accelerator: str, available: list[str]) -> None:
        super().__init__(f"accelerator {accelerator!r} is not offered on {cluster.upper()}")
        self.cluster, self.accelerator, self.available = cluster, accelerator, available


def gpu_placement(cluster: Cluster, accelerator: str | None, gpu: int | None) -> Placement | None:
    """The placement of a step with these resources, or ``None`` when it needs no GPU.

    Raises:
        UnsupportedAccelerator: the accelerator does not exist on that kind of cluster.
    """
    if not accelerator and not gpu:
        return None
    if cluster == "gke":
        if not accelerator:
            return Placement(tolerations=(NVIDIA_GPU,))
        if accelerator not in GKE:
            raise UnsupportedAccelerator(cluster, accelerator, list(GKE))
        return Placement({GKE_LABEL: GKE[accelerator]}, (NVIDIA_GPU,))
    if cluster == "eks":
        if not accelerator:
            return Placement(tolerations=(NVIDIA_GPU,))
        if accelerator not in EKS:
            raise UnsupportedAccelerator(cluster, accelerator, list(EKS))
        return Placement(dict(EKS[accelerator]), (NVIDIA_GPU,))
    if cluster == "aks":
        note = (
            f"AKS labels no GPU model: {accelerator!r} is not pinned; the pod goes to any GPU node pool"
            if accelerator
            else None
        )
        return Placement(
            {AKS_LABEL: "nvidia"}, (Toleration("sku", "Equal", "NoSchedule", "gpu"), NVIDIA_GPU), note
        )
    note = (
        f"gpu_cluster 'plain' has no label for GPU models: {accelerator!r} is not pinned"
        if accelerator
        else None
    )
    return Placement(tolerations=(NVIDIA_GPU,), note=note)
