"""Where a GPU step's pod goes on each Kubernetes flavour: node selector and tolerations.

SPEC §8 names accelerators portably (``nvidia-t4``, ...); each managed Kubernetes labels its
GPU nodes differently, so the mapping is a per-cluster setting of the backends that emit pods
(Airflow's ``gpu_cluster``, Kubeflow's ``cluster``). This module is the one table both use.
Every cluster also needs the pod to request ``nvidia.com/gpu`` (the NVIDIA device plugin's
resource), which the backends do themselves.

| cluster | node selector for the accelerator | tolerations |
|---|---|---|
| ``gke`` | ``cloud.google.com/gke-accelerator`` (GKE's names; no A10G) | ``nvidia.com/gpu`` Exists NoSchedule |
| ``eks`` | ``eks.amazonaws.com/instance-gpu-name`` (+ memory for A100 80GB) | ``nvidia.com/gpu`` Exists NoSchedule |
| ``aks`` | ``kubernetes.azure.com/accelerator: nvidia`` (the node pool picks the model; no L4/A10G) | ``sku=gpu`` NoSchedule |
| ``plain`` | none (any node with ``nvidia.com/gpu``; the model is not chosen) | ``nvidia.com/gpu`` Exists NoSchedule |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pipecast.ir.values import ACCELERATORS

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
# EKS Auto Mode node labels (eks.amazonaws.com/instance-gpu-name, -gpu-memory in MiB; Karpenter's
# karpenter.k8s.aws/instance-gpu-name takes the same values):
# https://docs.aws.amazon.com/eks/latest/userguide/create-node-pool.html
EKS_LABEL = "eks.amazonaws.com/instance-gpu-name"
EKS_MEMORY_LABEL = "eks.amazonaws.com/instance-gpu-memory"
EKS = {
    "nvidia-t4": {EKS_LABEL: "t4"},
    "nvidia-l4": {EKS_LABEL: "l4"},
    "nvidia-a10g": {EKS_LABEL: "a10g"},
    "nvidia-v100": {EKS_LABEL: "v100"},
    "nvidia-a100": {EKS_LABEL: "a100"},  # any A100 (40 or 80 GB)
    "nvidia-a100-80gb": {EKS_LABEL: "a100", EKS_MEMORY_LABEL: "81920"},  # MiB per GPU (p4de)
    "nvidia-h100": {EKS_LABEL: "h100"},
}
# AKS GPU node pools carry kubernetes.azure.com/accelerator=nvidia and, as the docs advise,
# the taint sku=gpu:NoSchedule: https://learn.microsoft.com/azure/aks/gpu-cluster
AKS_LABEL = "kubernetes.azure.com/accelerator"
# Azure's N-series VMs (no L4, no A10G):
# https://learn.microsoft.com/en-us/azure/virtual-machines/sizes/overview#gpu-accelerated
AKS_MODELS = ("nvidia-t4", "nvidia-v100", "nvidia-a100", "nvidia-a100-80gb", "nvidia-h100")


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


#: The taint GPU nodes carry, per cluster kind (AKS's guide taints GPU pools ``sku=gpu``).
TOLERATIONS: dict[Cluster, tuple[Toleration, ...]] = {
    "gke": (NVIDIA_GPU,),
    "eks": (NVIDIA_GPU,),
    "aks": (Toleration("sku", "Equal", "NoSchedule", "gpu"),),
    "plain": (NVIDIA_GPU,),
}
#: Labels every GPU node of a cluster kind carries, whatever its model.
GPU_NODE_LABELS: dict[Cluster, dict[str, str]] = {"aks": {AKS_LABEL: "nvidia"}}


def model_labels(cluster: Cluster, accelerator: str) -> dict[str, str] | None:
    """The node labels that select this model (``{}``: offered, but no label names it;
    ``None``: the cluster kind does not offer it)."""
    if cluster == "gke":
        return {GKE_LABEL: GKE[accelerator]} if accelerator in GKE else None
    if cluster == "eks":
        return dict(EKS[accelerator]) if accelerator in EKS else None
    if cluster == "aks":
        return {} if accelerator in AKS_MODELS else None
    return {}


def offered(cluster: Cluster) -> list[str]:
    """The portable accelerators a cluster kind offers, in SPEC order."""
    return [a for a in ACCELERATORS if model_labels(cluster, a) is not None]


def gpu_placement(cluster: Cluster, accelerator: str | None, gpu: int | None) -> Placement | None:
    """The placement of a step with these resources, or ``None`` when it needs no GPU.

    ``note`` is set when the model is asked for but no label of this cluster kind selects it.

    Raises:
        UnsupportedAccelerator: the accelerator does not exist on that kind of cluster.
    """
    if not accelerator and not gpu:
        return None
    selector = dict(GPU_NODE_LABELS.get(cluster, {}))
    note = None
    if accelerator:
        labels = model_labels(cluster, accelerator)
        if labels is None:
            raise UnsupportedAccelerator(cluster, accelerator, offered(cluster))
        selector.update(labels)
        if not labels:
            note = (
                f"AKS labels no GPU model: {accelerator!r} is not pinned; the pod goes to any GPU node pool"
                if cluster == "aks"
                else f"gpu_cluster {cluster!r} has no label for GPU models: {accelerator!r} is not pinned"
            )
    return Placement(selector, TOLERATIONS[cluster], note)
