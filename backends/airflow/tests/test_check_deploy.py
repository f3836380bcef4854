"""`validate_output` loads DAG files with Airflow's DagBag; `deploy` writes them into a dags folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipecast import registry
from pipecast.api import compile_pipeline, load_checked
from pipecast.cli import main
from pipecast.diagnostics import UserError

pytestmark = pytest.mark.airflow
REPO = Path(__file__).resolve().parents[3]
CHURN = REPO / "examples" / "churn" / "pipeline.yaml"


@pytest.fixture(scope="module")
def churn_files() -> dict[str, str]:
    return compile_pipeline(load_checked(CHURN), "airflow").files


def test_validate_output_accepts_generated_files(churn_files: dict[str, str]) -> None:
    assert registry.get("airflow").validate_output(churn_files) == []


def test_validate_output_reports_an_import_error(churn_files: dict[str, str]) -> None:
    broken = {rel: text + "\nimport pipecast_no_such_module\n" for rel, text in churn_files.items()}
    diags = registry.get("airflow").validate_output(broken)
    assert len(diags) == 1 and diags[0].severity == "error"
    assert "does not load" in diags[0].message and "pipecast_no_such_module" in diags[0].message


def test_deploy_writes_the_dag_file_atomically(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    code = main(["deploy", str(CHURN), "--target", "airflow", "--set", f"dags_folder={dags}"])
    assert code == 0, capsys.readouterr().err
    written = sorted(p.name for p in dags.iterdir())
    assert written == ["churn_training.py"]  # no temp files left behind
    assert (dags / "churn_training.py").read_text() == compile_pipeline(load_checked(CHURN), "airflow").files[
        "churn_training.py"
    ]


def test_deploy_without_a_dags_folder_is_a_user_error(churn_files: dict[str, str]) -> None:
    backend = registry.get("airflow")
    pipeline = load_checked(CHURN).pipeline
    with pytest.raises(UserError) as err:
        backend.deploy(pipeline, churn_files, backend.settings_model())
    assert "dags_folder" in (err.value.diagnostics[0].hint or "")


def test_compile_check_runs_the_target_validator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compile", str(CHURN), "--target", "airflow", "--check", "-o", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "churn_training.py").is_file()
