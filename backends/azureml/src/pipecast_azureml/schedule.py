"""``schedule`` → an Azure ML job schedule YAML (cron trigger with a Windows time zone).

Schedule YAML: https://learn.microsoft.com/azure/machine-learning/reference-yaml-schedule
Azure ML takes Windows time-zone names (``azure.ai.ml.constants.TimeZone``); SPEC §2 uses
IANA names, so pipecast maps them through the table below (from CLDR's windowsZones.xml,
the canonical zone of each Windows zone plus common aliases). An IANA zone that is not in
the table is a compile error naming the nearest one.
"""

from __future__ import annotations

from typing import Any

from pipecast.diagnostics import Diagnostic, UserError
from pipecast.ir.models import Pipeline

#: IANA → Windows time-zone name (every value is a member of azure.ai.ml TimeZone; a test checks).
IANA_TO_WINDOWS: dict[str, str] = {
    "UTC": "UTC",
    "Etc/UTC": "UTC",
    "Etc/GMT": "UTC",
    "GMT": "UTC",
    "Europe/London": "GMT Standard Time",
    "Europe/Dublin": "GMT Standard Time",
    "Europe/Lisbon": "GMT Standard Time",
    "Atlantic/Reykjavik": "Greenwich Standard Time",
    "Europe/Berlin": "W. Europe Standard Time",
    "Europe/Amsterdam": "W. Europe Standard Time",
    "Europe/Rome": "W. Europe Standard Time",
    "Europe/Stockholm": "W. Europe Standard Time",
    "Europe/Vienna": "W. Europe Standard Time",
    "Europe/Zurich": "W. Europe Standard Time",
    "Europe/Oslo": "W. Europe Standard Time",
    "Europe/Paris": "Romance Standard Time",
    "Europe/Brussels": "Romance Standard Time",
    "Europe/Madrid": "Romance Standard Time",
    "Europe/Copenhagen": "Romance Standard Time",
    "Europe/Warsaw": "Central European Standard Time",
    "Europe/Prague": "Central Europe Standard Time",
    "Europe/Budapest": "Central Europe Standard Time",
    "Europe/Athens": "GTB Standard Time",
    "Europe/Bucharest": "GTB Standard Time",
    "Europe/Helsinki": "FLE Standard Time",
    "Europe/Kiev": "FLE Standard Time",
    "Europe/Kyiv": "FLE Standard Time",
    "Europe/Istanbul": "Turkey Standard Time",
    "Europe/Moscow": "Russian Standard Time",
    "Africa/Cairo": "Egypt Standard Time",
    "Africa/Johannesburg": "South Africa Standard Time",
    "Africa/Lagos": "W. Central Africa Standard Time",
    "Africa/Nairobi": "E. Africa Standard Time",
    "Asia/Jerusalem": "Israel Standard Time",
    "Asia/Dubai": "Arabian Standard Time",
    "Asia/Riyadh": "Arab Standard Time",
    "Asia/Tehran": "Iran Standard Time",
    "Asia/Karachi": "Pakistan Standard Time",
    "Asia/Kolkata": "India Standard Time",
    "Asia/Calcutta": "India Standard Time",
    "Asia/Kathmandu": "Nepal Standard Time",
    "Asia/Dhaka": "Bangladesh Standard Time",
    "Asia/Bangkok": "SE Asia Standard Time",
    "Asia/Jakarta": "SE Asia Standard Time",
    "Asia/Shanghai": "China Standard Time",
    "Asia/Hong_Kong": "China Standard Time",
    "Asia/Singapore": "Singapore Standard Time",
    "Asia/Taipei": "Taipei Standard Time",
    "Asia/Seoul": "Korea Standard Time",
    "Asia/Tokyo": "Tokyo Standard Time",
    "Australia/Perth": "W. Australia Standard Time",
    "Australia/Adelaide": "Cen. Australia Standard Time",
    "Australia/Brisbane": "E. Australia Standard Time",
    "Australia/Sydney": "AUS Eastern Standard Time",
    "Australia/Melbourne": "AUS Eastern Standard Time",
    "Pacific/Auckland": "New Zealand Standard Time",
    "Pacific/Honolulu": "Hawaiian Standard Time",
    "America/Anchorage": "Alaskan Standard Time",
    "America/Los_Angeles": "Pacific Standard Time",
    "America/Vancouver": "Pacific Standard Time",
    "America/Tijuana": "Pacific Standard Time (Mexico)",
    "America/Phoenix": "US Mountain Standard Time",
    "America/Denver": "Mountain Standard Time",
    "America/Edmonton": "Mountain Standard Time",
    "America/Chicago": "Central Standard Time",
    "America/Winnipeg": "Central Standard Time",
    "America/Mexico_City": "Central Standard Time (Mexico)",
    "America/New_York": "Eastern Standard Time",
    "America/Toronto": "Eastern Standard Time",
    "America/Detroit": "Eastern Standard Time",
    "America/Bogota": "SA Pacific Standard Time",
    "America/Lima": "SA Pacific Standard Time",
    "America/Caracas": "Venezuela Standard Time",
    "America/Halifax": "Atlantic Standard Time",
    "America/Santiago": "Pacific SA Standard Time",
    "America/Sao_Paulo": "E. South America Standard Time",
    "America/Argentina/Buenos_Aires": "Argentina Standard Time",
    "America/Buenos_Aires": "Argentina Standard Time",
    "America/St_Johns": "Newfoundland Standard Time",
}

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
            + "use a zone listed in docs/targets/azureml.md (same UTC offset and DST rules), or UTC",
            code="unsupported-timezone",
        )
    )


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
            "expression": pipeline.schedule.cron,
            "time_zone": windows_zone(pipeline.schedule.timezone),
        },
        "create_job": f"./{job_file}",
    }
