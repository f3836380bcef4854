"""Target profiles (``pipecast run --profile <target>``): a target's limits that depend on
run-time data, checked while the simulator runs.

A backend declares its profile with ``Backend.profile()``, returning a :class:`Profile`
subclass instance that overrides the simulator's :class:`~pipecast.simulator.engine.Hooks`
(``on_loop``, ``on_done``) and :meth:`Profile.finish`, and reports each violation with
:meth:`Profile.add`: it names the step (run key), what was measured, the number and the limit.
``error`` violations would fail on the target; ``warning`` ones change how it runs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from pipecast.diagnostics import Diagnostic, UserError
from pipecast.simulator.engine import Hooks
from pipecast.simulator.values import to_record


@dataclass(frozen=True)
class Violation:
    target: str
    step: str | None
    check: str
    value: int
    limit: int
    severity: str
    message: str


class Profile(Hooks):
    """Collects violations of one target's run-time limits as the run goes."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.violations: list[Violation] = []

    def add(self, step: str | None, check: str, value: int, limit: int, severity: str, message: str) -> None:
        self.violations.append(Violation(self.target, step, check, value, limit, severity, message))

    def finish(self) -> None:
        """Called once when the run ends (checks of totals)."""

    def extra(self) -> dict[str, Any]:
        """More keys for the report (estimates the target would like to show)."""
        return {}

    def report(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "violations": [asdict(v) for v in self.violations],
            **self.extra(),
        }


def payload_size(value: Any) -> int:
    """Bytes of ``value`` as compact JSON (run-record form), as a target passes it."""
    data = to_record(value) if not isinstance(value, dict) else {k: to_record(v) for k, v in value.items()}
    return len(json.dumps(data, separators=(",", ":")).encode())


def count_artifacts(value: Any) -> int:
    """Artifacts in a (collected) value."""
    from pipecast.simulator.values import Art

    if isinstance(value, Art):
        return 1
    if isinstance(value, list):
        return sum(count_artifacts(v) for v in value)
    return 0


def profile_for(target: str) -> Profile:
    """The run-time profile a target declares.

    Raises:
        UserError: unknown target, or one that declares no profile.
    """
    from pipecast import registry

    profile = registry.get(target).profile()
    if profile is None:
        with_profiles = [n for n in registry.available() if _declares(n)]
        raise UserError(
            Diagnostic(
                f"--profile {target}: target {target!r} declares no run-time profile",
                hint=f"use one of: {', '.join(with_profiles)}" if with_profiles else None,
                code="unknown-profile",
            )
        )
    return profile


def _declares(name: str) -> bool:
    from pipecast import registry

    try:
        return registry.get(name).profile() is not None
    except UserError:
        return False


__all__ = ["Profile", "Violation", "count_artifacts", "payload_size", "profile_for"]
