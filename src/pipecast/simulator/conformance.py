"""The ``local`` target's conformance hooks: the simulator executes the pipeline itself."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence

from pipecast.conformance import Conformance, Job, Record


class LocalConformance(Conformance):
    """Runs each case in the simulator (host processes); the plan must list every step."""

    def validate(self, job: Job, records: Sequence[Record] | None = None) -> list[str]:
        plan = json.loads(next(iter(job.files.values())))
        index = job.loaded.index
        expected = {n.name for n in index.walk()} | ({"finally"} if index.finally_node else set())
        got = set(plan["steps"])
        return [] if got == expected else [f"plan steps {sorted(got)} != pipeline steps {sorted(expected)}"]

    def execute(self, job: Job) -> list[Record]:
        from pipecast.simulator import run_pipeline

        with contextlib.chdir(job.work):
            return [
                run_pipeline(
                    job.loaded,
                    params=dict(params),
                    run_dir=job.work / f"runs{i}",
                    containers="host",
                    secrets=dict(job.secrets),
                    max_parallel=4,
                    seed=1,
                )
                for i, params in enumerate(job.runs)
            ]
