"""The core wheel carries what the installed tool reads at run time: the templates (Airflow
DAGs, step images, project scaffolds, HTML pages) and the examples `pipecast init` copies."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_core_wheel_ships_templates_and_examples(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    cmd = [uv, "build"] if uv else [sys.executable, "-m", "uv", "build"]
    subprocess.run([*cmd, "--wheel", "--out-dir", str(tmp_path), str(REPO)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("pipecast-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "pipecast/_templates/step-image/Dockerfile.j2",
        "pipecast/_templates/viz/report.html.j2",
        "pipecast/_examples/churn/pipeline.yaml",
        "pipecast/_examples/churn/churn/steps.py",
        "pipecast/_examples/sweep/pipeline.yaml",
        "pipecast/_examples/containers/pipeline.yaml",
    ):
        assert required in names, f"{required} is missing from {wheel.name}"
    assert any(n.startswith("pipecast/_templates/project/common/") for n in names)


@pytest.mark.slow
def test_a_backend_wheel_ships_its_own_templates(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    cmd = [uv, "build"] if uv else [sys.executable, "-m", "uv", "build"]
    source = REPO / "backends" / "airflow"
    subprocess.run(
        [*cmd, "--wheel", "--out-dir", str(tmp_path), str(source)], check=True, capture_output=True
    )
    (wheel,) = tmp_path.glob("pipecast_airflow-*.whl")
    assert "pipecast_airflow/templates/dag.py.j2" in zipfile.ZipFile(wheel).namelist()
