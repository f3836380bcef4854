"""SPEC §14 on Vertex: an import step compiles to KFP's importer node and runs in kfp.local
(the URI given at run time as a parameter, since compile refuses local paths)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from pipecast.api import compile_pipeline, load_checked

from .kfp_local import run_local

PIPELINE = """\
pipecast: 1
name: vimp
params:
  base_uri: {type: str, default: "gs://bucket/base.txt"}
  files: {type: list, default: ["gs://bucket/a.txt"]}
steps:
  base:
    import: {uri: "{{ params.base_uri }}", type: Dataset, metadata: {origin: crm}}
  read:
    run: {python: "vsteps:read"}
    inputs: {path: "{{ steps.base.outputs.artifact }}"}
    outputs: {text: str}
  each:
    for_each: "{{ params.files }}"
    as: f
    steps:
      part:
        import: {uri: "{{ f }}", type: Dataset}
      read_part:
        run: {python: "vsteps:read"}
        inputs: {path: "{{ steps.part.outputs.artifact }}"}
        outputs: {text: str}
    outputs: {texts: "{{ steps.read_part.outputs.text }}"}
"""


def _compile(tmp_path: Path, text: str = PIPELINE) -> tuple[Path, dict]:
    (tmp_path / "vsteps.py").write_text(
        "import os\n"
        "def read(path):\n    return open(path).read()\n"
        "def count(path):\n    return len(os.listdir(path))\n"
    )
    (tmp_path / "p.yaml").write_text(text)
    loaded = load_checked(tmp_path / "p.yaml")
    result = compile_pipeline(loaded, "vertex", {"image": "python:3.11-slim", "pipeline_root": "gs://b/r"})
    (rel,) = [r for r in result.files if r.endswith(".yaml")]
    spec_path = tmp_path / rel
    spec_path.write_text(result.files[rel])
    return spec_path, yaml.safe_load(result.files[rel])


def test_import_compiles_to_an_importer_node(tmp_path: Path) -> None:
    _, spec = _compile(tmp_path)
    executors = spec["deploymentSpec"]["executors"]
    base = executors[spec["components"]["comp-base"]["executorLabel"]]
    assert base == {
        "importer": {
            "artifactUri": {"runtimeParameter": "uri"},
            "typeSchema": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"},
            "metadata": {"origin": "crm"},
            "reimport": False,
        }
    }
    task = spec["root"]["dag"]["tasks"]["base"]
    assert task["inputs"]["parameters"]["uri"] == {"componentInputParameter": "base_uri"}
    assert spec["components"]["comp-base"]["outputDefinitions"]["artifacts"]["artifact"]["artifactType"] == {
        "schemaTitle": "system.Dataset",
        "schemaVersion": "0.0.1",
    }


def test_imports_run_in_kfp_local(tmp_path: Path) -> None:
    spec_path, _ = _compile(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "base.txt").write_text("base")
    (data / "a.txt").write_text("A")
    (data / "b.txt").write_text("B")
    work = tmp_path / "work"
    work.mkdir()
    params = {"base_uri": str(data / "base.txt"), "files": [str(data / "a.txt"), str(data / "b.txt")]}
    index = load_checked(tmp_path / "p.yaml").index
    record = run_local(spec_path, params, work, None, [tmp_path], index=index)
    assert record["status"] == "succeeded", json.dumps(record, indent=1)[:3000]
    assert record["steps"]["base"] == {
        "attempts": 0,
        "status": "succeeded",
        "outputs": {"artifact": str(data / "base.txt")},
    }
    assert record["steps"]["read"]["outputs"] == {"text": "base"}
    texts = {record["steps"][k]["outputs"]["text"] for k in record["steps"] if k.startswith("read_part")}
    assert texts == {"A", "B"}, sorted(record["steps"])


ARTIFACT_PARAMS = """\
pipecast: 1
name: vparams
params:
  parts: {type: Dataset, default: "gs://bucket/parts"}
  names: {type: list, default: [a, b]}
steps:
  folder:
    import: {uri: "{{ params.parts }}", type: Dataset}
  count:
    run: {python: "vsteps:count"}
    inputs: {path: "{{ steps.folder.outputs.artifact }}"}
    outputs: {n: int}
  direct:
    run: {python: "vsteps:count"}
    inputs: {path: "{{ params.parts }}"}
    outputs: {n: int}
  each:
    for_each: "{{ params.names }}"
    steps:
      inner:
        run: {python: "vsteps:count"}
        inputs: {path: "{{ params.parts }}"}
        outputs: {n: int}
"""


def test_artifact_params_are_a_uri_and_an_importer(tmp_path: Path) -> None:
    """SPEC §14 on KFP: an artifact parameter is a STRING runtime parameter (its URI) and an
    importer task ``param--<name>`` in the top DAG, read like a step's artifact, in place and
    inside a loop; an import step of it imports the URI itself. Executed in kfp.local."""
    spec_path, spec = _compile(tmp_path, ARTIFACT_PARAMS)
    root = spec["root"]
    assert root["inputDefinitions"]["parameters"]["parts"] == {
        "defaultValue": "gs://bucket/parts",
        "isOptional": True,
        "parameterType": "STRING",
    }
    importer = root["dag"]["tasks"]["param--parts"]
    assert importer["inputs"]["parameters"]["uri"] == {"componentInputParameter": "parts"}
    assert spec["deploymentSpec"]["executors"][spec["components"]["comp-param--parts"]["executorLabel"]] == {
        "importer": {
            "artifactUri": {"runtimeParameter": "uri"},
            "typeSchema": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"},
            "reimport": False,
        }
    }
    direct = root["dag"]["tasks"]["direct"]
    assert direct["inputs"]["artifacts"]["path"] == {
        "taskOutputArtifact": {"producerTask": "param--parts", "outputArtifactKey": "artifact"}
    }
    assert "param--parts" in direct["dependentTasks"]
    assert root["dag"]["tasks"]["folder"]["inputs"]["parameters"]["uri"] == {
        "componentInputParameter": "parts"
    }
    data = tmp_path / "parts"
    data.mkdir()
    for name in ("x", "y", "z"):
        (data / name).write_text(name)
    work = tmp_path / "work"
    work.mkdir()
    index = load_checked(tmp_path / "p.yaml").index
    record = run_local(spec_path, {"parts": str(data)}, work, None, [tmp_path], index=index)
    assert record["status"] == "succeeded", json.dumps(record, indent=1)[:3000]
    steps = record["steps"]
    assert [steps[k]["outputs"]["n"] for k in ("count", "direct", "inner[0]", "inner[1]")] == [3, 3, 3, 3]
    assert steps["folder"]["status"] == "succeeded"
    assert "param__parts" not in steps and "param--parts" not in steps


METRICS = """\
pipecast: 1
name: vmet
steps:
  eval:
    run: {python: "msteps:score"}
    outputs: {scores: Metrics, model: Model}
"""


def test_metrics_metadata_in_kfp_local_executor_output(tmp_path: Path) -> None:
    """SPEC §15: a Metrics output's numbers (and an artifact's metadata file) are the
    artifact's metadata in executor_output.json, which the Vertex console shows."""
    (tmp_path / "msteps.py").write_text(
        "from pipecast import metrics\n"
        "def score(scores, model):\n"
        "    metrics.log(scores, auc=0.91, rows=3)\n"
        "    open(model, 'w').write('m')\n"
        "    metrics.annotate(model, framework='toy')\n"
    )
    (tmp_path / "p.yaml").write_text(METRICS)
    result = compile_pipeline(
        load_checked(tmp_path / "p.yaml"),
        "vertex",
        {"image": "python:3.11-slim", "pipeline_root": "gs://b/r"},
    )
    (rel,) = [r for r in result.files if r.endswith(".yaml")]
    spec_path = tmp_path / rel
    spec_path.write_text(result.files[rel])
    work = tmp_path / "work"
    work.mkdir()
    record = run_local(spec_path, {}, work, None, [tmp_path])
    assert record["status"] == "succeeded", record
    outputs = [json.loads(p.read_text()) for p in work.rglob("executor_output.json")]
    arts = {
        name: a["artifacts"][0]["metadata"] for doc in outputs for name, a in doc.get("artifacts", {}).items()
    }
    assert arts["scores"] == {"auc": 0.91, "rows": 3}
    assert arts["model"] == {"framework": "toy"}
