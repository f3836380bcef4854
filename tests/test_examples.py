"""Every example loads, validates, documents itself and runs in the simulator as described."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipecast.api import load_checked

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PIPELINE_FILES = sorted(
    p for p in EXAMPLES.glob("*/pipeline.*") if p.suffix in (".yaml", ".yml", ".json", ".py")
)


def test_the_four_examples_exist() -> None:
    names = {p.parent.name for p in PIPELINE_FILES}
    assert names >= {"churn", "sweep", "containers", "dataeng"}
    assert (EXAMPLES / "churn" / "pipeline.py").is_file()


@pytest.mark.parametrize("path", PIPELINE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_example_validates(path: Path) -> None:
    loaded = load_checked(path)
    assert not [w for w in loaded.warnings if w.severity == "error"]
    assert loaded.pipeline.steps


@pytest.mark.parametrize("folder", sorted({p.parent for p in PIPELINE_FILES}), ids=lambda p: p.name)
def test_example_readme_says_how_to_run_and_compile(folder: Path) -> None:
    text = (folder / "README.md").read_text()
    for command in ("pipecast validate", "pipecast run", "pipecast compile", "--target"):
        assert command in text, f"{folder.name}/README.md lacks {command!r}"


def test_churn_yaml_is_the_spec_example() -> None:
    from pipecast.loader import from_data, parse_yaml

    text = (ROOT / "docs" / "spec.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    data, source, problems = parse_yaml(block, "spec.md")
    spec = from_data(data, Path("spec.md"), source, problems).pipeline
    assert load_checked(EXAMPLES / "churn" / "pipeline.yaml").pipeline == spec


def test_sweep_nests_a_loop_in_a_loop_with_a_when() -> None:
    p = load_checked(EXAMPLES / "sweep" / "pipeline.yaml").pipeline
    outer = p.steps["by_lr"]
    inner = outer.steps["by_depth"]
    assert outer.is_loop and inner.is_loop
    assert inner.steps["verdict"].is_condition and inner.steps["verdict"].else_ is not None


def test_containers_example_has_only_container_steps_and_every_output_kind() -> None:
    p = load_checked(EXAMPLES / "containers" / "pipeline.yaml").pipeline
    types = {t for s in p.steps.values() for t in s.outputs.values()}
    assert all(hasattr(s.run, "image") for s in p.steps.values())
    assert {"str", "int", "float", "bool", "list", "dict", "Dataset", "Artifact"} <= types


def test_dataeng_graph_is_not_series_parallel() -> None:
    loaded = load_checked(EXAMPLES / "dataeng" / "pipeline.yaml")
    deps = loaded.index.deps(loaded.index.root)
    edges = {(src, dst) for dst, srcs in deps.items() for src in srcs}
    # The "N": a→j1, a→j2, b→j2, b→j3 with no a→j3 and no b→j1.
    a, b, j1, j2, j3 = "extract_orders", "extract_customers", "daily_revenue", "enrich", "segment_sizes"
    assert {(a, j1), (a, j2), (b, j2), (b, j3)} <= edges
    assert (a, j3) not in edges and (b, j1) not in edges
    assert "audit" in deps["report"] and loaded.pipeline.finally_ is not None


# --------------------------------------------------------------------- real runs


RUNS = {
    # The base dataset's default is a remote URI; the simulator reads the copy shipped beside it.
    "churn": ("churn/pipeline.yaml", "data_uri=data/customers.csv"),
    "churn_else": ("churn/pipeline.py", "data_uri=data/customers.csv", "min_auc=0.99", 'regions=["apac"]'),
    "sweep": ("sweep/pipeline.yaml",),
    "containers": ("containers/pipeline.yaml", "count=5", "label=sq"),
    "dataeng": ("dataeng/pipeline.yaml",),
    "components": ("components/pipeline.yaml",),
    "components_training": ("components/training.yaml",),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Run every example once with ``pipecast run --containers host``, all at the same time."""
    root = tmp_path_factory.mktemp("runs")
    procs = {}
    for key, (path, *params) in RUNS.items():
        cmd = [sys.executable, "-m", "pipecast", "run", str(EXAMPLES / path), "--run-dir", str(root)]
        cmd += ["--containers", "host", "--json", *[a for p in params for a in ("--param", p)]]
        procs[key] = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root
        )
    out = {}
    for key, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=180)
        out[key] = {"rc": proc.returncode, "stderr": stderr, "record": json.loads(stdout) if stdout else None}
    return out


def _run(runs: dict[str, dict], key: str) -> dict:
    result = runs[key]
    assert result["rc"] == 0, result["stderr"]
    return result["record"]


def _status(record: dict) -> dict[str, str]:
    return {k: v["status"] for k, v in record["steps"].items()}


@pytest.mark.local
def test_churn_runs_and_registers(runs: dict[str, dict]) -> None:
    record = _run(runs, "churn")
    status = _status(record)
    assert record["status"] == "succeeded"
    assert status["register"] == "succeeded" and status["alert"] == "skipped"
    # The artifact param's local copy (relative to the pipeline file) reaches ingest.
    assert record["steps"]["ingest"]["inputs"]["base"].endswith("/examples/churn/data/customers.csv")
    assert record["steps"]["ingest"]["outputs"]["rows"] == 1500
    assert record["steps"]["ingest"]["metadata"]["table"] == {"rows_read": 1500, "rows_kept": 1500}
    # evaluate reports the AUCs as metrics; the best one gated publish.
    aucs = [record["steps"][f"train[{i}]"]["outputs"]["auc"] for i in (0, 1)]
    metrics = record["steps"]["evaluate"]["metrics"]["metrics"]
    assert metrics == {"auc": max(aucs), "auc_min": min(aucs), "auc_eu": aucs[0], "auc_us": aucs[1]}
    assert metrics["auc"] >= 0.8
    assert record["steps"]["evaluate"]["metadata"]["metrics"] == {"best_region": "us", "models": 2}


@pytest.mark.local
def test_churn_takes_the_else_branch(runs: dict[str, dict]) -> None:
    record = _run(runs, "churn_else")
    status = _status(record)
    assert record["status"] == "succeeded"
    assert status["alert"] == "succeeded" and status["register"] == "skipped"
    # alert's input is the metric the condition read.
    auc = record["steps"]["evaluate"]["metrics"]["metrics"]["auc"]
    assert auc < 0.99 and record["steps"]["alert"]["inputs"]["best"] == auc


@pytest.mark.local
def test_sweep_runs_and_picks_the_best_cell(runs: dict[str, dict]) -> None:
    record = _run(runs, "sweep")
    status = _status(record)
    assert record["status"] == "succeeded"
    fits = {k: v["outputs"]["score"] for k, v in record["steps"].items() if k.startswith("fit[")}
    assert len(fits) == 6
    assert record["outputs"]["best_score"] == max(fits.values())
    # lr=1.5 diverges: both of its cells are discarded.
    assert status["discard[2][0]"] == status["discard[2][1]"] == "succeeded"
    assert status["keep[2][0]"] == "skipped"


@pytest.mark.local
def test_containers_run_on_the_host(runs: dict[str, dict]) -> None:
    record = _run(runs, "containers")
    outs = record["steps"]["generate"]["outputs"]
    assert record["status"] == "succeeded"
    assert outs["numbers"] == [1, 4, 9, 16, 25] and outs["total"] == 55 and outs["mean"] == 11.0
    assert outs["even"] is False and outs["stats"] == {"min": 1, "max": 25, "count": 5}
    assert outs["title"] == "sq: 1..5"
    assert record["steps"]["count_parts"]["outputs"]["files"] == 3
    assert record["outputs"]["line"] == "sq: 1..5: 5 rows in 3 parts, total 55, mean 11.00, even False"
    assert _status(record)["announce"] == "succeeded"


@pytest.mark.local
def test_dataeng_runs(runs: dict[str, dict]) -> None:
    record = _run(runs, "dataeng")
    assert record["status"] == "succeeded"
    assert record["steps"]["finally"]["status"] == "succeeded"
    assert record["outputs"]["summary"].endswith("orders without customer")
    unmatched = record["steps"]["enrich"]["outputs"]["unmatched"]
    assert f"{unmatched} orders without customer" in record["outputs"]["summary"]


def test_components_example_shares_one_library() -> None:
    """Both pipelines use the same component files (SPEC §16); training.yaml calls prep.yaml."""
    scoring = load_checked(EXAMPLES / "components" / "pipeline.yaml")
    training = load_checked(EXAMPLES / "components" / "training.yaml")
    used = {
        name: {n.name: n.task.component.path for n in loaded.index.tasks() if n.task.component}
        for name, loaded in (("scoring", scoring), ("training", training))
    }
    assert used["scoring"] == {
        "clean": "components/clean.yaml",
        "train": "components/train.yaml",
        "score": "components/score.yaml",
    }
    assert used["training"]["trial"] == used["training"]["final"] == "components/train.yaml"
    assert used["training"]["prep.clean"] == "components/clean.yaml"
    prep = training.pipeline.steps["prep"]
    assert prep.subpipeline is not None and prep.subpipeline.path == "prep.yaml"
    final = training.index.effective(training.index.nodes["final"])
    assert final.retry.attempts == 3 and final.retry.delay == 1.0  # the step's, then the component's
    assert final.resources.cpu == 4 and final.resources.memory == "2Gi"


@pytest.mark.parametrize("target", ["stepfunctions", "vertex", "kubeflow", "airflow", "azureml"])
def test_components_example_compiles_for_every_target(target: str, tmp_path: Path) -> None:
    from pipecast import registry
    from pipecast.api import compile_pipeline, write_outputs
    from pipecast.backend import Feature

    try:
        backend = registry.get(target)
    except Exception:  # a target not installed here
        pytest.skip(f"{target} is not installed")
    files = ["pipeline.yaml"]
    if backend.support(Feature.SUBPIPELINES).compiles:
        files.append("training.yaml")
    for name in files:
        result = compile_pipeline(load_checked(EXAMPLES / "components" / name), target)
        assert write_outputs(result, tmp_path / name)


@pytest.mark.local
def test_components_examples_run(runs: dict[str, dict]) -> None:
    record = _run(runs, "components")
    assert record["status"] == "succeeded" and record["outputs"]["scored"] == 99
    record = _run(runs, "components_training")
    status = _status(record)
    assert record["status"] == "succeeded"
    assert {k: status[k] for k in ("prep", "prep.load", "prep.clean", "trial[0]", "trial[1]", "final")} == {
        k: "succeeded" for k in ("prep", "prep.load", "prep.clean", "trial[0]", "trial[1]", "final")
    }
    assert record["outputs"]["rows"] == record["steps"]["prep.clean"]["outputs"]["rows"] == 282
    assert record["outputs"]["scored"] == 282
    assert record["steps"]["prep"]["outputs"]["rows"] == 282
