"""Schedule (SPEC §2) → a Vertex AI schedule request.

The file is the body of ``POST https://{region}-aiplatform.googleapis.com/v1/projects/
{project}/locations/{region}/schedules`` (https://cloud.google.com/vertex-ai/docs/reference/
rest/v1/projects.locations.schedules#Schedule), with the pipeline spec embedded so that it
is complete on its own. Vertex reads the time zone from a ``TZ=`` prefix of the cron
expression. Settings that were not given appear as marked placeholders (``<set project>``).
"""

from __future__ import annotations

from typing import Any

from pipecast.backend import placeholder
from pipecast.ir.models import Pipeline
from pipecast_vertex.settings import VertexSettings
from pipecast_vertex.wire import wire_values

# https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.pipelineJobs#PipelineFailurePolicy
FAIL_FAST = "PIPELINE_FAILURE_POLICY_FAIL_FAST"


def cron_with_timezone(cron: str, timezone: str) -> str:
    return f"TZ={timezone} {cron}"


def parent(settings: VertexSettings) -> str:
    project = settings.project or placeholder("project")
    return f"projects/{project}/locations/{settings.region}"


def pipeline_job(pipeline: Pipeline, spec: dict[str, Any], settings: VertexSettings) -> dict[str, Any]:
    """A ``PipelineJob`` resource body (REST JSON names) for this pipeline and settings."""
    job: dict[str, Any] = {
        "displayName": pipeline.name,
        "pipelineSpec": spec,
        "runtimeConfig": {
            "gcsOutputDirectory": settings.pipeline_root or placeholder("pipeline_root"),
            "parameterValues": wire_values(
                pipeline, {k: p.default for k, p in pipeline.params.items() if p.has_default}
            ),
            # SPEC §10 fail fast, as deploy's run request (see deploy.build_job).
            "failurePolicy": FAIL_FAST,
        },
    }
    if settings.labels:
        job["labels"] = dict(settings.labels)
    if settings.service_account:
        job["serviceAccount"] = settings.service_account
    if settings.network:
        job["network"] = settings.network
    return job


def schedule_request(pipeline: Pipeline, spec: dict[str, Any], settings: VertexSettings) -> dict[str, Any]:
    """The schedule create request body; one run at a time, as a cron job usually wants."""
    assert pipeline.schedule is not None
    return {
        "displayName": f"{pipeline.name}-schedule",
        "cron": cron_with_timezone(pipeline.schedule.cron, pipeline.schedule.timezone),
        "maxConcurrentRunCount": "1",
        "createPipelineJobRequest": {
            "parent": parent(settings),
            "pipelineJob": pipeline_job(pipeline, spec, settings),
        },
    }
