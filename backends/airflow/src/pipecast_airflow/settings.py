"""Target settings of the Airflow backend (SPEC §11)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from pipecast.backend import Settings
from pipecast.gpu_nodes import Cluster


class AirflowSettings(Settings):
    """How a pipeline becomes an Airflow DAG file.

    Attributes:
        airflow_version: ``"3"`` (``airflow.sdk`` imports, the default) or ``"2"`` (Airflow 2.7+).
        operator: ``python`` (tasks run the step through the pipecast runtime on the worker),
            ``kubernetes`` (one pod per step, KubernetesPodOperator) or ``docker`` (DockerOperator).
        project_dir: the pipeline project's folder (its step modules) as the workers see it,
            put first on ``sys.path`` when a python step imports its module (SPEC §3.1). A
            relative path is resolved at run time against the folder of the DAG file, so the
            default ``.`` means "the step modules are deployed beside the DAG file in the dags
            folder" and ``../my-project`` a project deployed next to the dags folder; an
            absolute path is used as is. Code installed as a package needs nothing here.
        python_path: more folders put on ``sys.path`` after ``project_dir`` (relative ones
            resolved the same way).
        artifact_root: a folder every worker (and, for container operators, every container) can
            reach, where artifacts are stored; empty: ``$AIRFLOW_HOME/pipecast-artifacts``.
        secret_store: where secrets are read by name: ``airflow`` (Airflow Variables) or ``env``.
        start_date: the DAG's ``start_date`` (``YYYY-MM-DD``) in the schedule's time zone.
        tags: DAG tags.
        namespace: Kubernetes namespace of the step pods.
        artifact_volume_claim: Kubernetes PVC mounted at ``artifact_root`` in step pods
            (needed for artifacts with the kubernetes operator).
        secret_key: the key inside each Kubernetes secret that holds the value.
        gpu_cluster: the kind of Kubernetes cluster step pods run on, which decides how a GPU
            step is placed (:mod:`pipecast.gpu_nodes`): ``gke`` (default;
            ``cloud.google.com/gke-accelerator``), ``eks`` (EKS Auto Mode's
            ``eks.amazonaws.com/instance-gpu-name``), ``aks`` (GPU node pools, ``sku=gpu`` taint;
            the model is not pinned) or ``plain`` (any node with ``nvidia.com/gpu``).
        docker_url: the Docker daemon the docker operator talks to.
        container_steps_on_host: with operator ``python``, run container steps' commands on the
            worker host (the image is ignored, with a warning) instead of failing to compile.
        dags_folder: where ``pipecast deploy`` writes the DAG file (your Airflow's dags folder).
    """

    airflow_version: Literal["2", "3"] = "3"
    operator: Literal["python", "kubernetes", "docker"] = "python"
    project_dir: str = "."
    python_path: list[str] = Field(default_factory=list)
    artifact_root: str = ""
    secret_store: Literal["airflow", "env"] = "airflow"
    start_date: str = Field("2024-01-01", pattern=r"^\d{4}-\d{2}-\d{2}$")
    tags: list[str] = Field(default_factory=lambda: ["pipecast"])
    namespace: str = "default"
    artifact_volume_claim: str = ""
    secret_key: str = "value"
    gpu_cluster: Cluster = "gke"
    docker_url: str = "unix://var/run/docker.sock"
    container_steps_on_host: bool = True
    dags_folder: str = ""

    @field_validator("start_date")
    @classmethod
    def _real_date(cls, value: str) -> str:
        import datetime

        try:
            datetime.date.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a calendar date (YYYY-MM-DD): {exc}") from None
        return value
