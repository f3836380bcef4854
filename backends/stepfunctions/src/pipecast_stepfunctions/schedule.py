"""SPEC schedules as EventBridge Scheduler ``CreateSchedule`` requests (time zones included).

https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#cron-based

EventBridge cron has six fields (``min hour day-of-month month day-of-week year``), needs
``?`` in one of the two day fields, and numbers weekdays 1-7 from Sunday (cron: 0-6).
"""

from __future__ import annotations

import re
from typing import Any

from pipecast.diagnostics import Diagnostic, UserError
from pipecast.ir.models import Schedule


def _dow(field: str) -> str:
    def shift(match: re.Match[str]) -> str:
        n = int(match.group(0))
        return str(1 if n in (0, 7) else n + 1)

    # Step values (*/2) keep their step; only weekday numbers move.
    head, sep, step = field.partition("/")
    return re.sub(r"\d+", shift, head) + sep + step


def to_eventbridge_cron(cron: str) -> str:
    """``0 2 * * 1-5`` → ``cron(0 2 ? * 2-6 *)``.

    Raises:
        UserError: when both day fields are restricted (EventBridge cannot express it).
    """
    fields = cron.split()
    if len(fields) != 5:
        raise UserError(Diagnostic(f"{cron!r} is not a 5-field cron expression", ("schedule", "cron")))
    minute, hour, dom, month, dow = fields
    if dow == "*":
        dow = "?"
    elif dom == "*":
        dom = "?"
        dow = _dow(dow)
    else:
        raise UserError(
            Diagnostic(
                f"schedule {cron!r} restricts both day-of-month and day-of-week; EventBridge cron "
                "supports only one of them",
                ("schedule", "cron"),
                hint="use '*' for one of the two day fields",
                code="unsupported-feature",
            )
        )
    return f"cron({minute} {hour} {dom} {month} {dow} *)"


def schedule_request(schedule: Schedule, name: str, target_arn: str, role_arn: str) -> dict[str, Any]:
    """The ``scheduler.create_schedule`` request that starts the state machine."""
    return {
        "Name": name,
        "GroupName": "default",
        "ScheduleExpression": to_eventbridge_cron(schedule.cron),
        "ScheduleExpressionTimezone": schedule.timezone,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": "ENABLED",
        "Target": {"Arn": target_arn, "RoleArn": role_arn, "Input": "{}"},
    }
