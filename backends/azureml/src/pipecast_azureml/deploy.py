"""Deploy: submit the pipeline job with ``MLClient.jobs.create_or_update`` and create the schedule.

:func:`build_job` and :func:`build_schedule` build the SDK objects offline from the compiled
files (nothing is sent), so tests can check the request with ``_to_rest_object()``.
Docs: https://learn.microsoft.com/python/api/azure-ai-ml/azure.ai.ml.mlclient
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipecast.backend import refuse_placeholders, require_settings
from pipecast.ir.models import Pipeline
from pipecast_azureml.settings import AzureMLSettings
from pipecast_azureml.validate import enable_private_features


def _write(files: Mapping[str, str], root: Path) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")


def build_job(pipeline: Pipeline, files: Mapping[str, str], params: Mapping[str, Any] | None = None) -> Any:
    """The ``PipelineJob`` the SDK loads from the compiled files, with ``params`` as inputs."""
    enable_private_features()
    from azure.ai.ml import load_job

    with tempfile.TemporaryDirectory(prefix="pipecast-azureml-") as tmp:
        _write(files, Path(tmp))
        overrides = [{f"inputs.{k}": v} for k, v in sorted((params or {}).items())]
        job = load_job(Path(tmp) / f"{pipeline.name}.yml", params_override=overrides)
        # Components are read now: the job no longer needs the folder.
        job.component  # type: ignore[attr-defined]  # noqa: B018
    return job


def build_schedule(pipeline: Pipeline, files: Mapping[str, str]) -> Any:
    """The ``JobSchedule`` for the compiled schedule file (``None`` without a schedule)."""
    rel = f"{pipeline.name}.schedule.yml"
    if rel not in files:
        return None
    enable_private_features()
    from azure.ai.ml.entities._load_functions import load_schedule

    with tempfile.TemporaryDirectory(prefix="pipecast-azureml-") as tmp:
        _write(files, Path(tmp))
        return load_schedule(Path(tmp) / rel)


def deploy(
    pipeline: Pipeline,
    files: Mapping[str, str],
    settings: AzureMLSettings,
    *,
    params: Mapping[str, Any] | None = None,
    credential: Any = None,
    client: Any = None,
    **_: Any,
) -> dict[str, Any]:
    """Submit the job (which starts a run) and create or update the schedule.

    Args:
        params: pipeline input values for this run.
        credential: an Azure credential (default: ``DefaultAzureCredential``).
        client: an ``MLClient`` to use instead of building one (tests, notebooks).
    """
    if client is None:
        require_settings("azureml", settings, ("subscription_id", "resource_group", "workspace"))
    refuse_placeholders(files)
    job = build_job(pipeline, files, params)
    schedule = build_schedule(pipeline, files)
    if client is None:
        from azure.ai.ml import MLClient

        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        client = MLClient(credential, settings.subscription_id, settings.resource_group, settings.workspace)
    created = client.jobs.create_or_update(job, experiment_name=settings.experiment_name or pipeline.name)
    out: dict[str, Any] = {
        "job": getattr(created, "name", None),
        "studio_url": getattr(created, "studio_url", None),
    }
    if schedule is not None:
        poller = client.schedules.begin_create_or_update(schedule)
        result = poller.result() if hasattr(poller, "result") else poller
        out["schedule"] = getattr(result, "name", schedule.name)
    return out
