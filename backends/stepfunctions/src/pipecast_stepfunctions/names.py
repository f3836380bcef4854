"""State and resource names within the Step Functions limits.

State names, state machine names and execution names are at most 80 characters
(https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html). Longer
names are shortened deterministically: the head of the name, ``~`` and eight hex digits
of its SHA-256, so the same pipeline always gives the same names and two long names
that share a head stay distinct.

AWS *resource* names (state machines, executions, schedules, jobs) have stricter rules
than state names: ``~`` is not allowed in any of them, so :func:`aws_name` shortens with
``-`` instead and keeps only the characters the field accepts. Each rule is cited at
:data:`AWS_NAMES`, and ``backends/stepfunctions/tests/test_cloud_rules.py`` checks every generated name against the
botocore service models (patterns and lengths) and these rules.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

MAX_NAME = 80
# Characters ASL state names may not contain would confuse JSONPath/console links; the
# generated names use only step names (safe) plus these fixed suffixes.
_HASH_LEN = 8


def shorten(name: str, limit: int = MAX_NAME) -> str:
    """``name`` if it fits, else ``<head>~<hash8>`` of exactly ``limit`` characters."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:_HASH_LEN]
    return name[: limit - _HASH_LEN - 1] + "~" + digest


#: field → (pattern, max length, source). botocore (``botocore/data/<service>/*/service-2.json``)
#: gives the lengths and the patterns it has; the Step Functions and Batch names have no
#: pattern in the model, so theirs come from the API reference pages cited.
AWS_NAMES: dict[str, tuple[str, int, str]] = {
    # "must not contain whitespace, brackets < > { } [ ], wildcard characters ? *, special
    # characters " # % \ ^ | ~ ` $ & , ; : /, control characters"; 1-80 characters.
    "state_machine": (
        r"[^\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]{1,80}",
        80,
        "https://docs.aws.amazon.com/step-functions/latest/apireference/API_CreateStateMachine.html",
    ),
    "execution": (
        r"[^\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]{1,80}",
        80,
        "https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html",
    ),
    "schedule": (
        r"[0-9a-zA-Z-_.]+",
        64,
        "https://docs.aws.amazon.com/scheduler/latest/APIReference/API_CreateSchedule.html",
    ),
    "processing_job": (
        r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
        63,
        "https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateProcessingJob.html",
    ),
    # "up to 128 letters (uppercase and lowercase), numbers, hyphens, and underscores. The
    # first character must be alphanumeric"
    "batch_job": (
        r"[a-zA-Z0-9][a-zA-Z0-9_-]{0,127}",
        128,
        "https://docs.aws.amazon.com/batch/latest/APIReference/API_SubmitJob.html",
    ),
    "batch_job_definition": (
        r"[a-zA-Z0-9_-]{1,128}",
        128,
        "https://docs.aws.amazon.com/batch/latest/APIReference/API_RegisterJobDefinition.html",
    ),
}


def aws_name(name: str, limit: int, allowed: str = "A-Za-z0-9_-") -> str:
    """An AWS resource name: characters outside ``allowed`` become ``-``; when over
    ``limit``, ``<head>-<hash8>`` (``-``, not ``~``: no AWS name field accepts ``~``)."""
    clean = re.sub(f"[^{allowed}]", "-", name)
    if len(clean) <= limit:
        return clean
    digest = hashlib.sha256(clean.encode()).hexdigest()[:_HASH_LEN]
    return clean[: limit - _HASH_LEN - 1].rstrip("-_") + "-" + digest


def resource_name(name: str, limit: int) -> str:
    """A name for AWS resources that allow only ``[A-Za-z0-9-_]`` (job definitions, jobs)."""
    return aws_name(name, limit)


class StateNames:
    """Hands out unique, length-checked state names and remembers what each one is.

    Attributes:
        kinds: state name → ``(kind, step)``: what the state does for which step
            (``task``, ``map``, ``choice``, ``skip``, ...); the deploy code uses it to turn
            an execution history back into step statuses.
    """

    def __init__(self) -> None:
        self.kinds: dict[str, tuple[str, str | None]] = {}
        self.shortened: dict[str, str] = {}

    def new(self, wanted: str, kind: str, step: str | None = None) -> str:
        name = shorten(wanted)
        if name != wanted:
            self.shortened[wanted] = name
        base, n = name, 2
        while name in self.kinds:
            name = shorten(f"{base} #{n}")
            n += 1
        self.kinds[name] = (kind, step)
        return name


def state_machine_name(pipeline: Any, settings: Any) -> str:
    """``<name_prefix><pipeline>`` (at most 16 + 63 characters: always fits in 80)."""
    return aws_name(settings.name_prefix + pipeline.name, MAX_NAME)


def state_machine_arn(name: str, settings: Any) -> str:
    """The ARN a state machine of that name gets in the account of ``settings.role_arn``."""
    parts = settings.role_arn.split(":")
    return f"arn:{parts[1]}:states:{settings.region}:{parts[4]}:stateMachine:{name}"
