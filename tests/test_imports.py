"""SPEC §14: artifact parameters and import steps — read in place by the simulator, relative to
the pipeline file's folder, and rejected as local paths by every cloud target at compile time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipecast import registry
from pipecast.api import compile_pipeline, load_checked
from pipecast.cli import main
from pipecast.diagnostics import UserError
from pipecast.registry import available
from pipecast.simulator import run_pipeline

PIPELINE = """\
pipecast: 1
name: imp
params:
  raw: {type: Dataset, default: data/base.csv}
steps:
  base:
    import: {uri: "{{ params.raw }}", type: Dataset, metadata: {source: test}}
  count:
    run: {python: "isteps:count"}
    inputs: {table: "{{ steps.base.outputs.artifact }}"}
    outputs: {n: int}
"""


def _project(tmp_path: Path, text: str = PIPELINE) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "base.csv").write_text("a\n1\n2\n3\n")
    (tmp_path / "isteps.py").write_text("def count(table):\n    return len(open(table).read().split()) - 1\n")
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_simulator_reads_a_relative_path_from_the_pipeline_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "proj").mkdir()
    path = _project(tmp_path / "proj")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # never the working directory
    record = run_pipeline(load_checked(path), run_dir=tmp_path / "runs")
    assert record["status"] == "succeeded", record
    base = record["steps"]["base"]
    assert base["outputs"]["artifact"] == (tmp_path / "proj" / "data" / "base.csv").as_uri()
    assert base["metadata"] == {"artifact": {"source": "test"}}
    assert record["steps"]["count"]["outputs"] == {"n": 3}
    assert record["params"]["raw"] == "data/base.csv"


def test_a_missing_local_file_fails_the_import_step(tmp_path: Path) -> None:
    path = _project(tmp_path)
    os.remove(tmp_path / "data" / "base.csv")
    record = run_pipeline(load_checked(path), run_dir=tmp_path / "runs")
    assert record["status"] == "failed"
    assert "does not exist" in record["steps"]["base"]["error"]
    assert record["steps"]["count"]["status"] == "not_run"


# Targets that cannot read the user's disk (Airflow reads local paths on its worker, see
# docs/semantics.md, like the simulator).
CLOUD = sorted(b for b in available() if not registry.get(b).reads_local_files)


@pytest.mark.parametrize("target", CLOUD)
def test_cloud_targets_reject_a_local_path_naming_the_step(tmp_path: Path, target: str) -> None:
    path = _project(tmp_path)
    with pytest.raises(UserError) as err:
        compile_pipeline(load_checked(path), target)
    local = [d for d in err.value.diagnostics if d.code == "local-path"]
    assert [(d.line, d.path) for d in local] == [
        (4, ("params", "raw", "default")),
        (7, ("steps", "base", "import", "uri")),
    ]
    assert "step 'base' imports the local path 'data/base.csv'" in local[1].message
    assert target in local[1].message
    assert "upload" in (local[1].hint or "")


def test_a_remote_uri_is_not_a_local_path(tmp_path: Path) -> None:
    from pipecast.passes.imports import local_uses

    path = _project(tmp_path, PIPELINE.replace("data/base.csv", "s3://bucket/base.csv"))
    assert list(local_uses(load_checked(path).index)) == []


def test_cli_compile_exits_1_with_location(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _project(tmp_path)
    assert main(["compile", str(path), "--target", CLOUD[0], "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "p.yaml:7:" in err and "Traceback" not in err


def test_metrics_log_annotate_and_read(tmp_path: Path) -> None:
    from pipecast import metrics

    path = tmp_path / "scores"
    metrics.log(path, auc=0.5)
    assert metrics.log(path, loss=1) == {"auc": 0.5, "loss": 1}
    metrics.annotate(path, framework="toy")
    assert metrics.metadata(path) == {"framework": "toy"}
    assert (tmp_path / "scores.metadata.json").is_file()
    assert metrics.metric_value(str(path), "auc") == 0.5
    with pytest.raises(metrics.MetricsError, match="no metric 'f1' \\(it has: auc, loss\\)"):
        metrics.metric_value(str(path), "f1")
    with pytest.raises(metrics.MetricsError, match="not a finite number"):
        metrics.log(path, bad=float("nan"))


METRICS = """\
pipecast: 1
name: met
steps:
  eval:
    run: {python: "msteps:evaluate"}
    outputs: {scores: Metrics, model: Model}
  show:
    run: {python: "msteps:show"}
    inputs: {auc: "{{ steps.eval.outputs.scores.auc }}"}
    outputs: {text: str}
"""


def test_run_record_and_show_have_metrics_and_metadata(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "msteps.py").write_text(
        "from pipecast import metrics\n"
        "def evaluate(scores, model):\n"
        "    metrics.log(scores, auc=0.91)\n"
        "    open(model, 'w').write('m')\n"
        "    metrics.annotate(model, framework='toy')\n"
        "def show(auc):\n"
        "    return repr(auc)\n"
    )
    (tmp_path / "p.yaml").write_text(METRICS)
    record = run_pipeline(load_checked(tmp_path / "p.yaml"), run_dir=tmp_path / "runs")
    ev = record["steps"]["eval"]
    assert ev["metrics"] == {"scores": {"auc": 0.91}}
    assert ev["metadata"] == {"model": {"framework": "toy"}}
    assert record["steps"]["show"]["outputs"] == {"text": "0.91"}
    assert main(["show", record["run_id"], "--run-dir", str(tmp_path / "runs")]) == 0
    assert "auc=0.91" in capsys.readouterr().out


DSL = """\
from pipecast import metrics
from pipecast.dsl import Dataset, Metrics, Output, import_artifact, pipeline, step, when


@step
def evaluate(table: Dataset, scores: Output[Metrics]) -> None:
    metrics.log(scores, auc=0.9)


@step(output="text")
def report(auc: float) -> str:
    return f"auc={auc}"


@pipeline(name="dsl-imports")
def p(raw: Dataset = "data/base.csv", min_auc: float = 0.8):
    base = import_artifact(raw, Dataset, metadata={"origin": "test"}, name="base")
    ev = evaluate(table=base)
    with when(ev.outputs.scores.auc >= min_auc):
        report(auc=ev.outputs.scores.metric("auc"))
"""


def test_dsl_artifact_param_import_and_metric(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "base.csv").write_text("x\n")
    (tmp_path / "pipeline.py").write_text(DSL)
    loaded = load_checked(tmp_path / "pipeline.py")
    data = loaded.pipeline.to_data()
    assert data["params"]["raw"] == {"type": "Dataset", "default": "data/base.csv"}
    assert data["steps"]["base"]["import"] == {
        "uri": "{{ params.raw }}",
        "type": "Dataset",
        "metadata": {"origin": "test"},
    }
    assert data["steps"]["when"]["when"] == "steps.evaluate.outputs.scores.auc >= params.min_auc"
    assert data["steps"]["when"]["steps"]["report"]["inputs"] == {
        "auc": "{{ steps.evaluate.outputs.scores.auc }}"
    }
    record = run_pipeline(loaded, run_dir=tmp_path / "runs")
    assert record["status"] == "succeeded", record
    assert record["steps"]["report"]["outputs"] == {"text": "auc=0.9"}


def test_graph_and_report_handle_import_steps_and_metrics(tmp_path: Path) -> None:
    from pipecast.viz.model import build, task_settings

    loaded = load_checked(Path(__file__).parent / "conformance" / "cases" / "import_for_each.yaml")
    graph = build(loaded.index)
    assert graph is not None
    folder = loaded.index.nodes["folder"]
    assert task_settings(loaded.index, folder)["import"]["uri"] == "{{ params.parts }}"
