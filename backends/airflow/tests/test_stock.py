"""Container steps on stock images with operator ``kubernetes`` (SPEC §21), executed by
``dag.test()`` with each pod's rendered command run on this host (``pods.py``) and ``python``
a bare venv where pipecast is not importable; and the docker operator's artifact rule."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from af_helpers import CASES, compile_file, place

from pipecast.api import compile_pipeline, load_checked
from pipecast.diagnostics import UserError
from tests.fixtures.bare_python import shim_dir

pytestmark = pytest.mark.airflow

PODS = Path(__file__).parent / "pods.py"

EXTRA = """
  probe:
    run:
      image: python:3.11-slim
      command: [python, -c, "import importlib.util, sys; assert importlib.util.find_spec('pipecast') is None; open(sys.argv[1], 'w').write(sys.executable)", "{{ outputs.python }}"]
    outputs: {python: str}
"""


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    text = (CASES / "stock_image.yaml").read_text()
    text = text.replace("params:", 'defaults: {image: "python:3.11-slim", timeout: 60s}\nparams:', 1)
    (project / "stock.yaml").write_text(text + EXTRA)
    shutil.copy(CASES / "cstep.py", project)
    return project


def test_stock_steps_run_without_pipecast_in_pods(airflow_env, tmp_path: Path) -> None:
    project = _project(tmp_path)
    art = tmp_path / "artifacts"
    settings = {"operator": "kubernetes", "artifact_root": str(art), "artifact_volume_claim": "pvc"}
    name, text = compile_file(project / "stock.yaml", settings)
    assert "pipecast.runtime" not in text.split("t_scale = ")[1].split("t_make >> t_scale")[0]
    path = place(airflow_env.dags, name, text)
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(shim_dir()), os.environ.get("PATH", "")]),
        "PYTHONPATH": str(project),
    }
    jobs = [{"file": str(path), "dag_id": "stock-image"}]
    proc = subprocess.run(
        [sys.executable, str(PODS), json.dumps(jobs)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PIPECAST-RESULT ")]
    assert lines, proc.stderr[-4000:]
    result = json.loads(lines[0].split(" ", 1)[1])
    assert result["state"] == "success", json.dumps(result, indent=1)[-4000:]
    tasks = result["tasks"]
    assert tasks["probe"]["xcom"]["-stock"]  # the wrapper's hand-over, read back by decode_stock
    from pipecast.runtime.conventions.airflow import decode_stock

    assert "pipecast-bare-venv-" in decode_stock(tasks["probe"]["xcom"])["python"]
    scale = decode_stock(tasks["scale"]["xcom"])
    assert scale["n"] == 9 and scale["label"] == "stock:a,bb,ccc"
    assert Path(scale["parts"]).is_dir() and str(art) in scale["parts"]
    assert tasks["count"]["xcom"]["output"] == 3
    assert tasks["double"]["xcom"]["output"] == 18


def test_docker_operator_without_artifact_root_is_an_error(tmp_path: Path) -> None:
    project = _project(tmp_path)
    loaded = load_checked(project / "stock.yaml")
    with pytest.raises(UserError) as err:
        compile_pipeline(loaded, "airflow", {"operator": "docker"})
    (diag,) = err.value.diagnostics
    assert "lost when its container exits" in diag.message and diag.code == "unsupported-feature"
    assert diag.line is not None
    ok = compile_pipeline(loaded, "airflow", {"operator": "docker", "artifact_root": str(tmp_path)})
    text = next(iter(ok.files.values()))
    assert "DockerOperator(" in text and "pipecast_out('scale', 'parts', ti, run_id)" in text
