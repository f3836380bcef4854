"""Target settings of the Kubeflow backend (SPEC §11): the KFP API, the cluster, and the pods.

Nothing here is required to compile: what a deploy needs (``host``) and what the spec must
hold (``image``) are written as marked placeholders (``<set image>``) when missing, and
``deploy`` refuses to run until they are set.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipecast.backend import Settings
from pipecast.gpu_nodes import Cluster

# Kubernetes object names (Secrets, PVCs): DNS-1123 subdomains,
# https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#dns-subdomain-names
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Label keys: an optional DNS prefix and a name of at most 63 characters; values at most 63,
# https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
#: Object stores the KFP launcher reads and writes (its pipeline root schemes),
#: https://www.kubeflow.org/docs/components/pipelines/concepts/pipeline-root/
ROOT_SCHEMES = ("s3://", "gs://", "minio://")

ClusterKind = Cluster  # the kinds of pipecast.gpu_nodes


class Pvc(BaseModel):
    """A PersistentVolumeClaim mounted into every step pod.

    Attributes:
        name: the claim's name (it must exist in the namespace).
        mount_path: where the steps see it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    mount_path: str = "/mnt/pipecast"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not DNS_SUBDOMAIN.match(v) or len(v) > 253:
            raise ValueError(f"{v!r} is not a Kubernetes object name (lower-case letters, digits, '-', '.')")
        return v

    @field_validator("mount_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"mount_path must be an absolute path, got {v!r}")
        return v


class KubeflowSettings(Settings):
    """Settings for ``--target kubeflow``.

    Attributes:
        host: the KFP API endpoint ``kfp.Client(host=...)`` talks to (deploy only).
        namespace: the Kubeflow profile namespace runs go to (multi-user installs).
        experiment: the experiment runs and recurring runs belong to.
        pipeline_root: ``s3://``, ``gs://`` or ``minio://`` folder for run artifacts
            (``defaultPipelineRoot``; unset: the installation's default, MinIO).
        service_account: the Kubernetes service account of the run's pods.
        cluster: the kind of cluster, for GPUs: ``gke``, ``eks``, ``aks`` or ``plain``
            (which node label selects an accelerator model; see :mod:`pipecast_kubeflow.platform`).
        gpu_node_selector: extra node labels every GPU step selects (a node pool on AKS or a
            plain cluster, where no standard label names the GPU model).
        image_pull_secrets: Kubernetes secrets to pull step images with.
        pod_labels: labels on every step pod.
        pod_annotations: annotations on every step pod.
        pvc: a PersistentVolumeClaim mounted into every step pod (``{name, mount_path}``).
        secret_key: the key inside each Kubernetes Secret that holds the value (a secret
            named ``name/key`` picks its own key).
        image: image for python steps that set none (``defaults.image`` wins).
        python: the interpreter in the images that runs ``-m pipecast.runtime``.
        enable_caching: the run-level caching switch passed on deploy; ``None`` keeps
            each step's ``cache`` setting.
        poll_interval: seconds between two status requests while ``deploy --run`` follows a run.
    """

    host: str | None = None
    namespace: str | None = None
    experiment: str = "Default"
    pipeline_root: str | None = None
    service_account: str | None = None
    cluster: ClusterKind = "plain"
    gpu_node_selector: dict[str, str] = Field(default_factory=dict)
    image_pull_secrets: list[str] = Field(default_factory=list)
    pod_labels: dict[str, str] = Field(default_factory=dict)
    pod_annotations: dict[str, str] = Field(default_factory=dict)
    pvc: Pvc | None = None
    secret_key: str = "value"
    image: str | None = None
    python: str = "python"
    enable_caching: bool | None = None
    poll_interval: float = Field(5.0, gt=0)

    @property
    def secret_store(self) -> Literal["env"]:
        """Kubernetes Secrets reach the step as environment variables (``secretAsEnv``)."""
        return "env"

    @field_validator("pipeline_root")
    @classmethod
    def _root(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(ROOT_SCHEMES):
            raise ValueError(f"pipeline_root must start with one of {', '.join(ROOT_SCHEMES)}, got {v!r}")
        return v

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^\s/]+", v):
            raise ValueError(f"host must be an http(s):// URL of the KFP API, got {v!r}")
        return v

    @field_validator("image_pull_secrets")
    @classmethod
    def _secrets(cls, v: list[str]) -> list[str]:
        for name in v:
            if not DNS_SUBDOMAIN.match(name):
                raise ValueError(f"image pull secret {name!r} is not a Kubernetes object name")
        return v

    @field_validator("pod_labels", "gpu_node_selector")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            if not label_key_ok(key) or not _LABEL_VALUE.match(value):
                raise ValueError(
                    f"label {key}={value!r}: keys are [prefix/]name and names and values hold at most "
                    "63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
                )
        return v

    @field_validator("pod_annotations")
    @classmethod
    def _annotations(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            if not label_key_ok(key):
                raise ValueError(f"annotation key {key!r} must be [prefix/]name like a label key")
            # KFP's Argo compiler copies podMetadata into the Workflow's executor template
            # (argocompiler extendPodMetadata), where Argo replaces every '{{...}}' (and runs
            # '{{=...}}' expressions) and has no way to escape it:
            # https://argo-workflows.readthedocs.io/en/latest/variables/
            if "{{" in value:
                raise ValueError(
                    f"annotation {key}={value!r} holds '{{{{', which Argo Workflows would replace or "
                    "evaluate as a template variable; write the value without '{{'"
                )
        return v


def label_key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (not DNS_SUBDOMAIN.match(prefix) or len(prefix) > 253):
        return False
    return bool(_LABEL_NAME.match(name))
