"""Vertex AI's run-time limits, checked by ``pipecast run --profile vertex``."""

from __future__ import annotations

from pipecast.simulator.engine import Inst
from pipecast.simulator.profiles import Profile, count_artifacts

# https://cloud.google.com/vertex-ai/docs/pipelines/ (ParallelFor: at most 100 collected artifacts)
COLLECTED_ARTIFACTS = 100


class VertexProfile(Profile):
    def on_done(self, inst: Inst) -> None:
        node = inst.node
        if node.is_task or not node.group.is_loop or not inst.outputs:
            return
        for name, value in inst.outputs.items():
            count = count_artifacts(value)
            if count > COLLECTED_ARTIFACTS:
                self.add(
                    inst.key,
                    "collected_artifacts",
                    count,
                    COLLECTED_ARTIFACTS,
                    "error",
                    f"output {name!r} collects {count} artifacts from a ParallelFor; Vertex AI "
                    f"allows at most {COLLECTED_ARTIFACTS}",
                )
