"""The harness (``pipecast_airflow.harness``) with KubernetesPodOperator's pod run on this host: the task's
rendered ``cmds`` + ``arguments`` run as a local process, with the two paths a pod provides
mapped to folders of this task (the XCom volume ``/airflow/xcom``, and the pod's private
``/tmp/pipecast-outputs``), and ``return.json`` becomes the task's XCom as the provider's
sidecar makes it. ``python`` on the PATH is the caller's (tests/fixtures/bare_python.py), so a
stock step's command runs where pipecast is NOT importable.

Usage: ``python pods.py JOBS_JSON`` (as ``python -m pipecast_airflow.harness``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from pipecast_airflow import harness


def _execute(self: Any, context: Any) -> Any:
    from airflow.exceptions import AirflowException

    scratch = Path(tempfile.mkdtemp(prefix="pipecast-pod-"))
    (scratch / "xcom").mkdir()
    mapping = {"/airflow/xcom": str(scratch / "xcom"), "/tmp/pipecast-outputs": str(scratch / "outputs")}

    def local(arg: str) -> str:
        for pod_path, here in mapping.items():
            arg = arg.replace(pod_path, here)
        return arg

    argv = [local(a) for a in [*(self.cmds or []), *(self.arguments or [])]]
    env = {**os.environ, **{e.name: e.value for e in (self.env_vars or [])}}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    print(proc.stdout, proc.stderr, sep="\n")
    if proc.returncode != 0:
        raise AirflowException(f"pod exited with {proc.returncode}: {proc.stderr[-2000:]}")
    if self.do_xcom_push:
        return json.loads((scratch / "xcom" / "return.json").read_text())
    return None


def main() -> None:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    KubernetesPodOperator.execute = _execute  # type: ignore[method-assign]
    harness.main()


if __name__ == "__main__":
    main()
