"""Deploy: submit a run with ``google.cloud.aiplatform.PipelineJob`` and create the schedule.

:func:`build_job` builds the job offline (no network until ``submit``), so tests can check
the exact request with ``job.to_dict()``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipecast.backend import refuse_placeholders, require_settings
from pipecast.ir.models import Pipeline
from pipecast_vertex.settings import VertexSettings
from pipecast_vertex.wire import wire_values


def _spec_text(pipeline: Pipeline, files: Mapping[str, str], settings: VertexSettings) -> tuple[str, str]:
    name = f"{pipeline.name}.{settings.format}"
    text = files[name]
    refuse_placeholders({name: text})
    return name, text


def build_job(
    pipeline: Pipeline,
    files: Mapping[str, str],
    settings: VertexSettings,
    *,
    params: Mapping[str, Any] | None = None,
    credentials: Any = None,
    job_id: str | None = None,
) -> Any:
    """An ``aiplatform.PipelineJob`` for the compiled spec (nothing is sent yet)."""
    from google.cloud import aiplatform

    require_settings("vertex", settings, ("project", "pipeline_root"))
    name, text = _spec_text(pipeline, files, settings)
    values = {k: p.default for k, p in pipeline.params.items() if p.has_default}
    values.update(params or {})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(text)
        return aiplatform.PipelineJob(
            display_name=pipeline.name,
            template_path=str(path),
            job_id=job_id,
            pipeline_root=settings.pipeline_root,
            parameter_values=wire_values(pipeline, values),
            enable_caching=settings.enable_caching,
            # SPEC §10: after a failure no new step starts (Vertex's default keeps starting
            # independent tasks): runtimeConfig.failurePolicy PIPELINE_FAILURE_POLICY_FAIL_FAST.
            # https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.pipelineJobs#RuntimeConfig
            failure_policy="fast",
            labels=dict(settings.labels) or None,
            project=settings.project,
            location=settings.region,
            credentials=credentials,
        )


def deploy(
    pipeline: Pipeline,
    files: Mapping[str, str],
    settings: VertexSettings,
    *,
    params: Mapping[str, Any] | None = None,
    credentials: Any = None,
    **_: Any,
) -> dict[str, Any]:
    """Submit one run and, when the pipeline has a schedule, create the schedule."""
    job = build_job(pipeline, files, settings, params=params, credentials=credentials)
    job.submit(service_account=settings.service_account, network=settings.network)
    result: dict[str, Any] = {"job": job.resource_name}
    if pipeline.schedule is not None:
        from pipecast_vertex.schedule import cron_with_timezone

        schedule = job.create_schedule(
            cron=cron_with_timezone(pipeline.schedule.cron, pipeline.schedule.timezone),
            display_name=f"{pipeline.name}-schedule",
            max_concurrent_run_count=1,
            service_account=settings.service_account,
            network=settings.network,
        )
        result["schedule"] = schedule.resource_name
    return result
