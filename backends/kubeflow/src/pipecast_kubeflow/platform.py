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

GPU model labels and taints per cluster kind are the core table :mod:`pipecast.gpu_nodes`
(shared with Airflow's ``gpu_cluster``); ``gpu_node_selector`` adds the labels of a node pool
where no standard label names the model (``aks``, ``plain``).
"""

from __future__ import annotations

from typing import Any

from pipecast.gpu_nodes import UnsupportedAccelerator, gpu_placement, model_labels
from pipecast.ir.models import Resources
from pipecast.passes.analysis import PipelineIndex, StepNode
from pipecast.runtime.secrets import env_names
from pipecast_kubeflow.settings import DNS_SUBDOMAIN, KubeflowSettings

#: The extended resource the NVIDIA device plugin advertises (the container's GPU limit).
GPU_RESOURCE = "nvidia.com/gpu"


def accelerator_problem(res: Resources, settings: KubeflowSettings) -> tuple[str, str] | None:
    """Why the cluster cannot give this accelerator, and what to do (``None``: it can)."""
    try:
        gpu_placement(settings.cluster, res.accelerator, res.gpu)
    except UnsupportedAccelerator as exc:
        return (
            f"{exc} clusters",
            f"use one of: {', '.join(exc.available)}, or set 'cluster' to the kind of your cluster",
        )
    return None


def model_unpinned(res: Resources, settings: KubeflowSettings) -> bool:
    """An accelerator model was asked for that no node label of this cluster kind selects."""
    if not res.accelerator or settings.gpu_node_selector:
        return False
    return model_labels(settings.cluster, res.accelerator) == {}


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
    try:
        placement = gpu_placement(settings.cluster, res.accelerator, res.gpu)
    except UnsupportedAccelerator:  # an error of check_target; lenient compiles select no model
        placement = gpu_placement(settings.cluster, None, res.gpu or 1)
    if placement is not None:
        labels = {**placement.node_selector, **settings.gpu_node_selector}
        if labels:
            out["nodeSelector"] = {"labels": dict(sorted(labels.items()))}
        out["tolerations"] = [
            {
                "key": t.key,
                "operator": t.operator,
                **({"value": t.value} if t.value else {}),
                "effect": t.effect,
            }
            for t in placement.tolerations
        ]
    out.update(pod_config(settings))
    return out


def pod_config(settings: KubeflowSettings) -> dict[str, Any]:
    """What every pod of the pipeline gets from the settings (pull secrets, pod metadata, the
    PVC), also the tasks pipecast adds (a loop's ``--items``, an artifact parameter's importer)."""
    out: dict[str, Any] = {}
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
