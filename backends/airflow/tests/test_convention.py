"""``python -m pipecast.runtime run --convention airflow``: what the container operators run.

Each test runs the real command in a child process with the arguments a rendered
KubernetesPodOperator/DockerOperator task would pass: ``--spec`` from the generated file's
``pipecast_spec`` macro, ``--inputs`` as ``pipecast_inputs`` renders them (values pulled from
XCom plus where to store artifacts), and the XCom channel of the operator:
``--xcom-file /airflow/xcom/return.json`` (the pod's XCom sidecar) or ``--xcom-stdout``
(DockerOperator pushes the last line of the container's output).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from af_helpers import REPO, compile_file

from pipecast.runtime.conventions import airflow as convention

pytestmark = pytest.mark.airflow

RUN = {"dag": "d", "run": "manual__2024-01-01T00:00:00+00:00", "task": "t"}


def _docs(path: Path, settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The TASKS documents of the compiled DAG file."""
    tree = ast.parse(compile_file(path, settings)[1])
    (value,) = [
        n.value for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "TASKS"
    ]
    return {k: json.loads(v) for k, v in ast.literal_eval(value).items()}


def _run(
    doc: dict[str, Any], inputs: dict[str, Any], tmp: Path, *extra: str, project: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the runtime as the container would (the step image sets PIPECAST_PYTHON_PATH)."""
    env = {**os.environ, "PIPECAST_PYTHON_PATH": str(project or tmp)}
    args = [
        sys.executable,
        "-m",
        "pipecast.runtime",
        "run",
        "--convention",
        "airflow",
        "--spec",
        convention.spec_arg(doc),
        "--inputs",
        json.dumps({**inputs, "-run": RUN}),
        "--artifact-root",
        str(tmp / "artifacts"),
        "--containers",
        "host",
        *extra,
    ]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, cwd=tmp)


def test_kubernetes_xcom_file_carries_outputs_and_artifact_paths(tmp_path):
    folder = REPO / "examples" / "churn"
    docs = _docs(
        folder / "pipeline.yaml",
        {"operator": "kubernetes", "artifact_root": "/a", "artifact_volume_claim": "c"},
    )
    xcom = tmp_path / "airflow" / "xcom" / "return.json"
    proc = _run(
        docs["ingest"],
        {"base": str(folder / "data" / "customers.csv")},
        tmp_path,
        "--xcom-file",
        str(xcom),
        project=folder,
    )
    assert proc.returncode == 0, proc.stderr
    outputs = json.loads(xcom.read_text())
    table = tmp_path / "artifacts" / "d" / "manual__2024-01-01T00_00_00_00_00" / "t" / "table"
    assert outputs == {"rows": 1500, "table": str(table)}
    assert table.read_text().startswith("customer_id,region,tenure,monthly_charges,support_calls,churned\n")
    assert len(table.read_text().splitlines()) == 1501


def test_docker_last_stdout_line_carries_outputs_and_artifacts_flow(tmp_path):
    docs = _docs(
        REPO / "examples" / "containers" / "pipeline.yaml", {"operator": "docker", "artifact_root": "/a"}
    )
    proc = _run(docs["generate"], {"count": 4, "label": "sq"}, tmp_path, "--xcom-stdout")
    assert proc.returncode == 0, proc.stderr
    outputs = json.loads(proc.stdout.strip().splitlines()[-1])
    table = outputs.pop("table")
    assert outputs == {
        "numbers": [1, 4, 9, 16],
        "total": 30,
        "mean": 7.5,
        "even": True,
        "stats": {"min": 1, "max": 16, "count": 4},
        "title": "sq: 1..4",
    }
    assert list(outputs["stats"]) == ["min", "max", "count"]  # the step's key order (SPEC §22)
    assert Path(table).read_text() == "n,square\n1,1\n2,4\n3,9\n4,16\n"
    # The next task receives the artifact's path through XCom and writes a folder artifact.
    proc = _run(docs["split"], {"table": table}, tmp_path, "--xcom-stdout")
    assert proc.returncode == 0, proc.stderr
    parts = Path(json.loads(proc.stdout.strip().splitlines()[-1])["parts"])
    assert sorted(p.read_text() for p in parts.iterdir()) == ["1,1\n2,4\n", "3,9\n4,16\n"]


def test_failure_exits_non_zero_without_pushing_outputs(tmp_path):
    (tmp_path / "boom.py").write_text("def boom(x):\n    raise ValueError(f'bad input {x}')\n")
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(
        "pipecast: 1\nname: boom\ndefaults: {image: 'steps:1'}\nsteps:\n"
        "  fail:\n    run: {python: 'boom:boom'}\n    inputs: {x: '{{ params.x }}'}\n"
        "    outputs: {y: int}\nparams: {x: {type: int, default: 3}}\n"
    )
    docs = _docs(pipeline, {"operator": "kubernetes"})
    xcom = tmp_path / "return.json"
    proc = _run(docs["fail"], {"x": 3}, tmp_path, "--xcom-file", str(xcom))
    assert proc.returncode == 1
    assert "bad input 3" in proc.stderr.strip().splitlines()[-1]
    assert not xcom.exists()


def test_missing_artifact_input_names_the_shared_root(tmp_path):
    docs = _docs(
        REPO / "examples" / "containers" / "pipeline.yaml", {"operator": "docker", "artifact_root": "/a"}
    )
    proc = _run(docs["split"], {"table": str(tmp_path / "nowhere.csv")}, tmp_path, "--xcom-stdout")
    assert proc.returncode == 1
    assert "is artifact_root shared by every worker?" in proc.stderr


def test_bad_inputs_argument_is_a_usage_error(tmp_path):
    docs = _docs(
        REPO / "examples" / "containers" / "pipeline.yaml", {"operator": "docker", "artifact_root": "/a"}
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pipecast.runtime", "run", "--convention", "airflow", "--spec",
         convention.spec_arg(docs["generate"]), "--inputs", "[1, 2]"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--inputs must be a JSON object" in proc.stderr


def test_local_artifact_paths_are_read_on_the_worker(tmp_path):
    # SPEC §14 on a self-hosted target (docs/semantics.md): a relative path is looked up in the
    # project folder, then the other code folders; absolute paths must exist; URIs pass.
    code, data = tmp_path / "code", tmp_path / "data"
    (data / "parts").mkdir(parents=True)
    code.mkdir()
    search = [str(code), str(data)]
    assert convention.local_artifact("parts", search) == str(data / "parts")
    assert convention.local_artifact(f"file://{data}/parts", search) == str(data / "parts")
    assert convention.local_artifact("s3://bucket/x", search) == "s3://bucket/x"
    with pytest.raises(convention.ConventionError, match=r"no such path .*looked in: .*code, .*data"):
        convention.local_artifact("missing/x", search)
    with pytest.raises(convention.ConventionError, match="does not exist on this worker"):
        convention.local_artifact(str(tmp_path / "nope"), search)
