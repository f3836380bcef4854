"""Airflow's run-time limits, checked by ``pipecast run --profile airflow``."""

from __future__ import annotations

from typing import Any

from pipecast.simulator.engine import Inst
from pipecast.simulator.profiles import Profile
from pipecast_airflow.lowering import MAX_MAP_LENGTH


class AirflowProfile(Profile):
    def on_loop(self, inst: Inst, items: list[Any]) -> None:
        # https://airflow.apache.org/docs/apache-airflow/stable/configurations-ref.html#max-map-length
        n = len(items)
        if n > MAX_MAP_LENGTH:
            self.add(
                inst.key,
                "max_map_length",
                n,
                MAX_MAP_LENGTH,
                "error",
                f"for_each over {n} items exceeds Airflow's max_map_length ({MAX_MAP_LENGTH}); the mapped "
                "task fails (raise [core] max_map_length or batch the items)",
            )
