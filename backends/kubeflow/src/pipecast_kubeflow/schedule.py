"""Schedule (SPEC §2) → a KFP recurring run.

The file is the body of ``POST /apis/v2beta1/recurringruns`` (``V2beta1RecurringRun``,
https://www.kubeflow.org/docs/components/pipelines/reference/api/kubeflow-pipeline-api-spec/),
as ``kfp.Client.create_recurring_run`` sends it; deploy fills in the experiment and the
pipeline version it uploaded.

KFP's cron (robfig/cron v1, as the scheduled-workflow controller parses it) has a seconds
field first: pipecast's ``30 2 * * MON-FRI`` becomes ``0 30 2 * * MON-FRI``. It takes no time
zone: the controller applies its ``CRON_SCHEDULE_TIMEZONE`` to every recurring run
(https://github.com/kubeflow/pipelines/blob/master/backend/src/crd/controller/scheduledworkflow/util/const.go),
so the pipeline's zone is recorded in the description (and the feature table calls it an
approximation).
"""

from __future__ import annotations

from typing import Any

from pipecast_vertex.wire import wire_values

from pipecast.ir.models import Pipeline
from pipecast_kubeflow.settings import KubeflowSettings

#: Ids only the KFP API knows (deploy fills them in).
BY_DEPLOY = "<filled in by deploy>"


def kfp_cron(cron: str) -> str:
    """A five-field cron → KFP's six fields (seconds first)."""
    return "0 " + " ".join(cron.split())


def recurring_run(
    pipeline: Pipeline,
    settings: KubeflowSettings,
    *,
    experiment_id: str | None = None,
    pipeline_id: str | None = None,
    version_id: str | None = None,
) -> dict[str, Any]:
    """The recurring run create body; one run at a time, no catch-up of missed runs."""
    assert pipeline.schedule is not None
    body: dict[str, Any] = {
        "display_name": f"{pipeline.name}-schedule",
        "description": f"cron {pipeline.schedule.cron!r} in {pipeline.schedule.timezone} (pipecast)",
        "experiment_id": experiment_id or BY_DEPLOY,
        "pipeline_version_reference": {
            "pipeline_id": pipeline_id or BY_DEPLOY,
            "pipeline_version_id": version_id or BY_DEPLOY,
        },
        "runtime_config": {
            "parameters": wire_values(
                pipeline, {k: p.default for k, p in pipeline.params.items() if p.has_default}
            ),
        },
        "trigger": {"cron_schedule": {"cron": kfp_cron(pipeline.schedule.cron)}},
        "max_concurrency": "1",
        "mode": "ENABLE",
        "no_catchup": True,
    }
    if settings.pipeline_root:
        body["runtime_config"]["pipeline_root"] = settings.pipeline_root
    if settings.service_account:
        body["service_account"] = settings.service_account
    return body
