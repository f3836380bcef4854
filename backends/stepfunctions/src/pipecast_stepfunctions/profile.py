"""Step Functions' run-time limits, checked by ``pipecast run --profile stepfunctions``.

https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html: 256 KiB of payload
between states, 25,000 history events per standard execution; an inline Map runs at most 40
iterations at once.
"""

from __future__ import annotations

from typing import Any

from pipecast.simulator.engine import Inst
from pipecast.simulator.profiles import Profile, payload_size
from pipecast_stepfunctions.settings import StepFunctionsSettings

PAYLOAD = 256 * 1024
HISTORY: int = StepFunctionsSettings.model_fields["max_history_events"].default
INLINE_MAP: int = StepFunctionsSettings.model_fields["distributed_map_threshold"].default


class StepFunctionsProfile(Profile):
    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.history = 4  # ExecutionStarted, ..., ExecutionSucceeded

    def on_loop(self, inst: Inst, items: list[Any]) -> None:
        n = len(items)
        if n > INLINE_MAP:
            self.add(
                inst.key,
                "inline_map_concurrency",
                n,
                INLINE_MAP,
                "warning",
                f"for_each over {n} items: an inline Map runs at most {INLINE_MAP} iterations at "
                "once; a DISTRIBUTED Map is needed for wider fan-out",
            )
        self._payload(inst.key, "for_each items", items)
        self.history += 4 + 2 * n  # Map entered/started/succeeded/exited + per iteration

    def on_done(self, inst: Inst) -> None:
        node = inst.node
        if node.is_task:
            if inst.status != "not_run":
                # TaskStateEntered, TaskScheduled, TaskStarted, TaskSucceeded, TaskStateExited;
                # each failed attempt adds TaskScheduled/Started/Failed.
                self.history += 2 + 3 * max(1, inst.attempts)
                if inst.inputs:
                    self._payload(inst.key, "state input", inst.inputs)
                if inst.outputs:
                    self._payload(inst.key, "state output", inst.outputs)
            return
        if node.group.is_condition:
            self.history += 2  # ChoiceStateEntered/Exited
        if inst.outputs:
            self._payload(inst.key, "collected outputs", inst.outputs)

    def _payload(self, step: str, what: str, value: Any) -> None:
        size = payload_size(value)
        if size > PAYLOAD:
            self.add(
                step,
                "payload_size",
                size,
                PAYLOAD,
                "error",
                f"{what} is {size} bytes; Step Functions passes at most {PAYLOAD} bytes (256 KiB) "
                "between states: pass large values as artifacts",
            )

    def finish(self) -> None:
        if self.history > HISTORY:
            self.add(
                None,
                "history_events",
                self.history,
                HISTORY,
                "error",
                f"this run needs about {self.history} history events; a Step Functions standard "
                f"execution fails at {HISTORY}: fan out with a DISTRIBUTED Map or split the pipeline",
            )

    def extra(self) -> dict[str, Any]:
        return {"history_events_estimate": self.history}
