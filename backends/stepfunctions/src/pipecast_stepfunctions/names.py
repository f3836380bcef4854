"""State and resource names within the Step Functions limits.

State names, state machine names and execution names are at most 80 characters
(https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html). Longer
names are shortened deterministically: the head of the name, ``~`` and eight hex digits
of its SHA-256, so the same pipeline always gives the same names and two long names
that share a head stay distinct.
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


def resource_name(name: str, limit: int) -> str:
    """A name for AWS resources that allow only ``[A-Za-z0-9-_]`` (job definitions, jobs)."""
    clean = re.sub(r"[^A-Za-z0-9_-]", "-", name)
    return shorten(clean, limit)


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
    """``<name_prefix><pipeline>``, shortened to 80 characters."""
    return shorten(settings.name_prefix + pipeline.name)


def state_machine_arn(name: str, settings: Any) -> str:
    """The ARN a state machine of that name gets in the account of ``settings.role_arn``."""
    parts = settings.role_arn.split(":")
    return f"arn:{parts[1]}:states:{settings.region}:{parts[4]}:stateMachine:{name}"
