"""SPEC §15 on Azure ML: the runtime logs a Metrics output to the job through MLflow when
mlflow is importable, and leaves it in the artifact otherwise."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipecast import metrics
from pipecast.runtime.conventions.azureml import log_job_metrics


def test_without_mlflow_nothing_is_logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow -> ImportError
    metrics.log(tmp_path / "m", auc=0.5)
    assert log_job_metrics(tmp_path / "m") is False


def test_with_mlflow_the_numbers_are_logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in module with mlflow's log_metrics signature (mlflow itself is not installed here).
    (tmp_path / "mlflow.py").write_text(
        "logged = []\ndef log_metrics(metrics, step=None, synchronous=None, run_id=None):\n    logged.append(dict(metrics))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mlflow", raising=False)
    metrics.log(tmp_path / "m", auc=0.5, rows=3)
    assert log_job_metrics(tmp_path / "m") is True
    import mlflow  # type: ignore[import-not-found,unused-ignore]

    assert mlflow.logged == [{"auc": 0.5, "rows": 3.0}]
