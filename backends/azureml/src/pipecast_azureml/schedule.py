"""``schedule`` → an Azure ML job schedule YAML (cron trigger with a Windows time zone).

Schedule YAML: https://learn.microsoft.com/azure/machine-learning/reference-yaml-schedule
Azure ML takes Windows time-zone names (``azure.ai.ml.constants.TimeZone``); SPEC §2 uses
IANA names, so pipecast maps them through CLDR's windowsZones.xml
(:mod:`pipecast_azureml.windows_zones`). An IANA zone that is not in the table is a compile
error naming the nearest one.

Azure ML cron "doesn't support" the day-of-month and month fields: "If you pass one of these
values, it's ignored and treated as *", and it numbers weekdays 0-6 from Sunday
(https://learn.microsoft.com/azure/machine-learning/how-to-schedule-pipeline-job#cron-expression).
A cron that restricts either field would run on days it does not name, so it is a compile
error; a Sunday written ``7`` becomes ``0``.
"""

from __future__ import annotations

import re
from typing import Any

from pipecast.diagnostics import Diagnostic, UserError
from pipecast.ir.models import Pipeline
from pipecast_azureml.windows_zones import IANA_TO_WINDOWS as _ZONES

#: IANA → Windows time-zone name: the full CLDR mapping (every value a member of
#: azure.ai.ml TimeZone; a test checks).
IANA_TO_WINDOWS = _ZONES

SCHEDULE_SCHEMA = "https://azuremlschemas.azureedge.net/latest/schedule.schema.json"


def windows_zone(iana: str) -> str:
    """The Windows name Azure ML takes for an IANA zone.

    Raises:
        UserError: the zone is not in :data:`IANA_TO_WINDOWS` (with the nearest one).
    """
    found = IANA_TO_WINDOWS.get(iana)
    if found is not None:
        return found
    from pipecast.passes.analysis import nearest

    best = nearest(iana, list(IANA_TO_WINDOWS))
    raise UserError(
        Diagnostic(
            f"target 'azureml': time zone {iana!r} has no Azure ML (Windows) name in pipecast's table",
            ("schedule", "timezone"),
            hint=(f"did you mean {best!r}? " if best else "")
            + "use a zone with a Windows equivalent Azure ML lists (docs/targets/azureml.md), or UTC",
            code="unsupported-timezone",
        )
    )


def azure_cron(cron: str) -> str:
    """The cron expression Azure ML runs as written (weekday 7 → 0).

    Raises:
        UserError: day-of-month or month is restricted (Azure ML would treat it as ``*``).
    """
    fields = cron.split()
    if len(fields) != 5:
        raise UserError(Diagnostic(f"{cron!r} is not a 5-field cron expression", ("schedule", "cron")))
    minute, hour, dom, month, dow = fields
    if dom != "*" or month != "*":
        raise UserError(
            Diagnostic(
                f"target 'azureml': schedule {cron!r} restricts the day of the month or the month; Azure ML "
                "cron ignores both fields (treats them as '*'), so it would run every day",
                ("schedule", "cron"),
                hint="use '*' for day-of-month and month (restrict hours, minutes and weekdays only), "
                "or trigger the job from another scheduler",
                code="unsupported-schedule",
            )
        )
    dow = re.sub(r"(?<![0-9])7(?![0-9])", "0", dow)
    return " ".join((minute, hour, dom, month, dow))


def schedule_document(pipeline: Pipeline, job_file: str) -> dict[str, Any]:
    """The schedule YAML as data: a cron trigger that creates the compiled pipeline job."""
    assert pipeline.schedule is not None
    return {
        "$schema": SCHEDULE_SCHEMA,
        "name": f"{pipeline.name}-schedule",
        "display_name": f"{pipeline.name} ({pipeline.schedule.cron}, {pipeline.schedule.timezone})",
        "description": f"Runs pipeline {pipeline.name!r} on cron {pipeline.schedule.cron!r}.",
        "trigger": {
            "type": "cron",
            "expression": azure_cron(pipeline.schedule.cron),
            "time_zone": windows_zone(pipeline.schedule.timezone),
        },
        "create_job": f"./{job_file}",
    }
