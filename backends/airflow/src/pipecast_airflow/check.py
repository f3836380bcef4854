"""Check generated DAG files with Airflow's own loader, and deploy them into a dags folder.

The check parses the files with ``DagBag`` (``airflow.dag_processing.dagbag``) in a child
process with a throwaway ``AIRFLOW_HOME``: Airflow reads its configuration once per process,
and a check must neither touch the user's Airflow home nor import Airflow into the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pipecast.diagnostics import Diagnostic, UserError
from pipecast.io import atomic_write

_PROBE = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow 2
    from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1], safe_mode=True)
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "dags": sorted(bag.dag_ids)}))
"""


def validate_files(files: Mapping[str, str], timeout: float = 120.0) -> list[Diagnostic]:
    """Load every generated ``.py`` file with ``DagBag``; one diagnostic per import error."""
    dag_files = {rel: text for rel, text in files.items() if rel.endswith(".py")}
    if not dag_files:
        return []
    with tempfile.TemporaryDirectory(prefix="pipecast-airflow-check-") as tmp:
        home = Path(tmp)
        dags = home / "dags"
        for rel, text in dag_files.items():
            (dags / rel).parent.mkdir(parents=True, exist_ok=True)
            (dags / rel).write_text(text, encoding="utf-8")
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        }
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _PROBE, str(dags)],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return [
                Diagnostic(f"airflow: DagBag did not load the files within {timeout:.0f} s", code="validator")
            ]
        if proc.returncode != 0 or not proc.stdout.strip():
            if "No module named 'airflow'" in proc.stderr:
                return [
                    Diagnostic(
                        "airflow: apache-airflow is not installed, so the DAG files were not checked",
                        hint="pip install 'pipecast-airflow[check]'",
                        severity="warning",
                        code="no-validator",
                    )
                ]
            tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
            return [Diagnostic(f"airflow: DagBag check failed: {tail[0]}", code="validator")]
        report = json.loads(proc.stdout.strip().splitlines()[-1])
    out = []
    for path, error in sorted(report["errors"].items()):
        rel = Path(path).name
        out.append(Diagnostic(f"airflow: {rel} does not load: {error.strip()}", code="validator", file=rel))
    if not report["dags"] and not out:
        out.append(Diagnostic("airflow: DagBag found no DAG in the generated files", code="validator"))
    return out


def deploy_files(files: Mapping[str, str], dags_folder: str) -> dict[str, object]:
    """Write the DAG files into the dags folder atomically (a scheduler never sees half a file).

    The step code is not copied: it must be where the ``project_dir`` setting says.
    """
    if not dags_folder:
        raise UserError(
            Diagnostic(
                "target 'airflow': deploy needs the dags folder",
                hint="pass --set dags_folder=/path/to/airflow/dags (or put it in the settings file)",
                code="settings",
            )
        )
    folder = Path(dags_folder).expanduser()
    if not folder.is_dir():
        raise UserError(
            Diagnostic(
                f"target 'airflow': dags folder {str(folder)!r} does not exist",
                hint="create it, or point --set dags_folder at your Airflow's dags folder",
                code="settings",
            )
        )
    written = []
    for rel in sorted(files):
        atomic_write(folder / rel, files[rel])
        written.append(str(folder / rel))
    return {"target": "airflow", "dags_folder": str(folder), "files": written}
