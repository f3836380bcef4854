"""Azure ML's run-time limits, checked by ``pipecast run --profile azureml``."""

from __future__ import annotations

from pipecast.simulator.engine import Inst
from pipecast.simulator.profiles import Profile
from pipecast_azureml.compiler import MAX_JOBS


class AzureMLProfile(Profile):
    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.tasks = 0

    def on_done(self, inst: Inst) -> None:
        # https://learn.microsoft.com/azure/machine-learning/resource-limits-capacity
        if not inst.node.is_task or inst.status not in ("succeeded", "failed", "cached"):
            return
        self.tasks += 1
        if self.tasks == MAX_JOBS + 1:
            self.add(
                None,
                "steps",
                self.tasks,
                MAX_JOBS,
                "error",
                f"more than {MAX_JOBS} step runs in one pipeline job",
            )
