"""Target profiles (``--profile``): limits of a target that depend on run-time data,
checked while the simulator runs (../shared/TARGETS.md, the targets' quota pages).

Each violation names the step (run key), what was measured, the number and the limit.
``error`` violations would fail on the target; ``warning`` ones change how it runs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from pipecast.passes.analysis import is_artifact_type
from pipecast.simulator.engine import Hooks, Inst
from pipecast.simulator.values import to_record

PROFILES = ("stepfunctions", "vertex", "azureml", "airflow")

# https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html
SFN_PAYLOAD = 256 * 1024
SFN_HISTORY = 25_000
SFN_INLINE_MAP = 40
# https://airflow.apache.org/docs/apache-airflow/stable/configurations-ref.html#max-map-length
AIRFLOW_MAX_MAP = 1024
# https://cloud.google.com/vertex-ai/docs/pipelines/ (ParallelFor: at most 100 collected artifacts)
VERTEX_COLLECTED_ARTIFACTS = 100
# https://learn.microsoft.com/azure/machine-learning/resource-limits-capacity
AZUREML_MAX_STEPS = 30_000


@dataclass(frozen=True)
class Violation:
    target: str
    step: str | None
    check: str
    value: int
    limit: int
    severity: str
    message: str


class ProfileCheck(Hooks):
    """Collects violations of one target's run-time limits as the run goes."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.violations: list[Violation] = []
        self.history = 4  # ExecutionStarted, ..., ExecutionSucceeded
        self.tasks = 0

    def _add(self, step: str | None, check: str, value: int, limit: int, severity: str, message: str) -> None:
        self.violations.append(Violation(self.target, step, check, value, limit, severity, message))

    def on_loop(self, inst: Inst, items: list[Any]) -> None:
        n = len(items)
        if self.target == "airflow" and n > AIRFLOW_MAX_MAP:
            self._add(
                inst.key,
                "max_map_length",
                n,
                AIRFLOW_MAX_MAP,
                "error",
                f"for_each over {n} items exceeds Airflow's max_map_length ({AIRFLOW_MAX_MAP}); the mapped "
                "task fails (raise [core] max_map_length or batch the items)",
            )
        if self.target == "stepfunctions":
            if n > SFN_INLINE_MAP:
                self._add(
                    inst.key,
                    "inline_map_concurrency",
                    n,
                    SFN_INLINE_MAP,
                    "warning",
                    f"for_each over {n} items: an inline Map runs at most {SFN_INLINE_MAP} iterations at "
                    "once; a DISTRIBUTED Map is needed for wider fan-out",
                )
            self._payload(inst.key, "for_each items", items)
            self.history += 4 + 2 * n  # Map entered/started/succeeded/exited + per iteration

    def on_done(self, inst: Inst) -> None:
        node = inst.node
        if node.is_task:
            if inst.status in ("succeeded", "failed", "cached"):
                self.tasks += 1
            if self.target == "stepfunctions" and inst.status != "not_run":
                # TaskStateEntered, TaskScheduled, TaskStarted, TaskSucceeded, TaskStateExited;
                # each failed attempt adds TaskScheduled/Started/Failed.
                self.history += 2 + 3 * max(1, inst.attempts)
                if inst.inputs:
                    self._payload(inst.key, "state input", inst.inputs)
                if inst.outputs:
                    self._payload(inst.key, "state output", inst.outputs)
            if self.target == "azureml" and self.tasks == AZUREML_MAX_STEPS + 1:
                self._add(
                    None,
                    "steps",
                    self.tasks,
                    AZUREML_MAX_STEPS,
                    "error",
                    f"more than {AZUREML_MAX_STEPS} step runs in one pipeline job",
                )
            return
        group = node.group
        if self.target == "stepfunctions" and group.is_condition:
            self.history += 2  # ChoiceStateEntered/Exited
        if self.target == "stepfunctions" and inst.outputs:
            self._payload(inst.key, "collected outputs", inst.outputs)
        if self.target == "vertex" and group.is_loop and inst.outputs:
            for name, value in inst.outputs.items():
                count = _count_artifacts(value)
                if count > VERTEX_COLLECTED_ARTIFACTS:
                    self._add(
                        inst.key,
                        "collected_artifacts",
                        count,
                        VERTEX_COLLECTED_ARTIFACTS,
                        "error",
                        f"output {name!r} collects {count} artifacts from a ParallelFor; Vertex AI "
                        f"allows at most {VERTEX_COLLECTED_ARTIFACTS}",
                    )

    def _payload(self, step: str, what: str, value: Any) -> None:
        size = len(
            json.dumps(
                to_record(value)
                if not isinstance(value, dict)
                else {k: to_record(v) for k, v in value.items()},
                separators=(",", ":"),
            ).encode()
        )
        if size > SFN_PAYLOAD:
            self._add(
                step,
                "payload_size",
                size,
                SFN_PAYLOAD,
                "error",
                f"{what} is {size} bytes; Step Functions passes at most {SFN_PAYLOAD} bytes (256 KiB) "
                "between states: pass large values as artifacts",
            )

    def finish(self) -> None:
        if self.target == "stepfunctions" and self.history > SFN_HISTORY:
            self._add(
                None,
                "history_events",
                self.history,
                SFN_HISTORY,
                "error",
                f"this run needs about {self.history} history events; a Step Functions standard "
                f"execution fails at {SFN_HISTORY}: fan out with a DISTRIBUTED Map or split the pipeline",
            )

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {"target": self.target, "violations": [asdict(v) for v in self.violations]}
        if self.target == "stepfunctions":
            out["history_events_estimate"] = self.history
        return out


def _count_artifacts(value: Any) -> int:
    from pipecast.simulator.values import Art

    if isinstance(value, Art):
        return 1
    if isinstance(value, list):
        return sum(_count_artifacts(v) for v in value)
    return 0


__all__ = ["PROFILES", "ProfileCheck", "Violation", "is_artifact_type"]
