"""Compile every example (and the Vertex-specific pipelines); check the spec with every real
tool. The conformance cases are compiled and validated by ``tests/conformance``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pipecast_vertex.checks import check_references
from pipecast_vertex.validate import strict_parse
from pipecast_vertex.wire import wire_values

from pipecast.api import compile_pipeline, load_checked
from pipecast.diagnostics import UserError
from tests.conformance.catalogue import CASES_DIR

pytestmark = pytest.mark.vertex

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted(ROOT.glob("examples/*/pipeline.yaml"))
OWN = sorted((Path(__file__).resolve().parent / "pipelines").glob("*.yaml"))
SETTINGS = {
    "project": "demo-project",
    "region": "europe-west4",
    "pipeline_root": "gs://demo-bucket/runs",
    "labels": {"team": "ml"},
    "image": "europe-docker.pkg.dev/demo/steps/pipecast:1",
}


def _id(path: Path) -> str:
    return path.parent.name if path.name == "pipeline.yaml" else path.stem


def compile_file(path: Path, **settings):
    loaded = load_checked(path)
    return loaded, compile_pipeline(loaded, "vertex", {**SETTINGS, **settings})


@pytest.mark.parametrize("path", EXAMPLES + OWN, ids=_id)
def test_spec_passes_every_check(path: Path, tmp_path: Path) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform
    from kfp import components

    loaded, result = compile_file(path)
    name = f"{loaded.pipeline.name}.yaml"
    spec = yaml.safe_load(result.files[name])
    strict_parse(spec)  # raises on unknown fields and bad enums
    assert check_references(spec) == []
    target = tmp_path / name
    target.write_text(result.files[name])
    components.load_component_from_file(str(target))
    # Every parameter, given explicitly (the defaults where there are some).
    # (ints, lists and dicts as the JSON text the spec declares them as, SPEC §22).
    params = wire_values(
        loaded.pipeline, {k: p.default for k, p in loaded.pipeline.params.items() if p.has_default}
    )
    job = aiplatform.PipelineJob(
        display_name=loaded.pipeline.name,
        template_path=str(target),
        pipeline_root=SETTINGS["pipeline_root"],
        project=SETTINGS["project"],
        location=SETTINGS["region"],
        credentials=AnonymousCredentials(),
        parameter_values=params,
        labels=SETTINGS["labels"],
    )
    body = job.to_dict()
    assert body["displayName"] == loaded.pipeline.name
    assert body["labels"] == {"team": "ml", **{k: v for k, v in body["labels"].items() if k != "team"}}
    assert body["runtimeConfig"]["gcsOutputDirectory"] == SETTINGS["pipeline_root"]
    assert body["runtimeConfig"].get("parameterValues", {}) == params
    assert body["pipelineSpec"]["root"] == spec["root"]
    assert set(body["pipelineSpec"]["components"]) == set(spec.get("components", {}))


@pytest.mark.parametrize("path", EXAMPLES, ids=_id)
def test_validate_output_accepts_examples(path: Path) -> None:
    from pipecast import registry

    _, result = compile_file(path)
    assert registry.get("vertex").validate_output(result.files) == []


@pytest.mark.parametrize("path", EXAMPLES, ids=_id)
def test_compile_is_deterministic(path: Path) -> None:
    _, first = compile_file(path)
    _, second = compile_file(path)
    assert first.files == second.files
    assert first.files.keys() == second.files.keys()


@pytest.mark.parametrize("path", EXAMPLES + OWN, ids=_id)
def test_yaml_reads_back_as_the_json_form(path: Path) -> None:
    """The fast YAML writer round-trips exactly (PyYAML reads it as the JSON output)."""
    loaded, as_yaml = compile_file(path)
    _, as_json = compile_file(path, format="json")
    name = loaded.pipeline.name
    assert json.loads(as_json.files[f"{name}.json"]) == yaml.safe_load(as_yaml.files[f"{name}.yaml"])


def test_reference_checks_catch_dangling_names() -> None:
    loaded, result = compile_file(CASES_DIR / "diamond.yaml")
    spec = yaml.safe_load(result.files[f"{loaded.pipeline.name}.yaml"])
    tasks = spec["root"]["dag"]["tasks"]
    first = sorted(tasks)[0]
    tasks[first]["dependentTasks"] = ["no-such-task"]
    tasks[first]["componentRef"]["name"] = "comp-missing"
    problems = check_references(spec)
    assert any("comp-missing" in p for p in problems)
    comp = next(c for c in spec["components"].values() if "executorLabel" in c)
    comp["executorLabel"] = "exec-missing"
    assert any("exec-missing" in p for p in check_references(spec))


def test_missing_image_is_a_marked_placeholder(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("pipecast: 1\nname: noimg\nsteps:\n  a:\n    run: {python: 'm:f'}\n")
    loaded = load_checked(path)
    result = compile_pipeline(loaded, "vertex", {})
    assert "<set image>" in result.files["noimg.yaml"]
    assert any(d.code == "placeholder" for d in result.diagnostics)


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ("{gpu: 1, accelerator: nvidia-a10g}", "not available on Vertex AI"),
        ("{gpu: 2}", "without an accelerator type"),
    ],
)
def test_unsupported_accelerators_are_named_errors(tmp_path: Path, resources: str, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "pipecast: 1\nname: gpu\ndefaults: {image: i}\nsteps:\n  a:\n    run: {python: 'm:f'}\n"
        f"    resources: {resources}\n"
    )
    with pytest.raises(UserError) as err:
        compile_pipeline(load_checked(path), "vertex", {})
    text = str(err.value)
    assert message in text and "steps.a.resources" in text and "nvidia-t4" in text


def test_accelerator_table(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "pipecast: 1\nname: gpu\ndefaults: {image: i}\nsteps:\n  a:\n    run: {python: 'm:f'}\n"
        "    resources: {cpu: 0.5, memory: 16Gi, gpu: 2, accelerator: nvidia-h100}\n"
    )
    result = compile_pipeline(load_checked(path), "vertex", {})
    spec = yaml.safe_load(result.files["gpu.yaml"])
    res = spec["deploymentSpec"]["executors"]["exec-a"]["container"]["resources"]
    assert res["accelerator"] == {
        "count": "2",
        "resourceCount": "2",
        "type": "NVIDIA_H100_80GB",
        "resourceType": "NVIDIA_H100_80GB",
    }
    assert res["resourceCpuLimit"] == "0.5" and res["resourceMemoryLimit"] == "16Gi"


def test_group_output_must_be_a_step_output(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "pipecast: 1\nname: g\ndefaults: {image: i}\nparams: {xs: {type: list, default: [1]}}\n"
        "steps:\n  fan:\n    for_each: '{{ params.xs }}'\n    steps:\n"
        "      a: {run: {python: 'm:f'}, inputs: {x: '{{ item }}'}, outputs: {y: int}}\n"
        "    outputs: {items: '{{ item }}'}\n"
    )
    with pytest.raises(UserError) as err:
        compile_pipeline(load_checked(path), "vertex", {})
    assert "steps.fan.outputs.items" in str(err.value)


def test_settings_are_validated() -> None:
    loaded = load_checked(EXAMPLES[0])
    with pytest.raises(UserError) as err:
        compile_pipeline(loaded, "vertex", {"pipeline_root": "s3://nope"})
    assert "gs://" in str(err.value)


def test_retry_cache_and_timeout_mapping() -> None:
    loaded, result = compile_file(CASES_DIR / "retry_recovers.yaml")
    spec = yaml.safe_load(result.files[f"{loaded.pipeline.name}.yaml"])
    tasks = spec["root"]["dag"]["tasks"]
    flaky = tasks["flaky"]
    step = loaded.pipeline.steps["flaky"]
    assert flaky["retryPolicy"]["maxRetryCount"] == step.retry.attempts - 1
    assert flaky["cachingOptions"] == {}  # enableCache false unless asked
    loaded, result = compile_file(CASES_DIR / "cache.yaml")
    spec = yaml.safe_load(result.files[f"{loaded.pipeline.name}.yaml"])
    caching = [t.get("cachingOptions", {}).get("enableCache") for t in _all_tasks(spec)]
    assert True in caching


def _all_tasks(spec):
    yield from spec["root"]["dag"]["tasks"].values()
    for comp in spec.get("components", {}).values():
        yield from comp.get("dag", {}).get("tasks", {}).values()


def test_schedule_request() -> None:
    loaded, result = compile_file(CASES_DIR / "schedule.yaml")
    request = json.loads(result.files[f"{loaded.pipeline.name}.schedule.json"])
    sched = loaded.pipeline.schedule
    assert request["cron"] == f"TZ={sched.timezone} {sched.cron}"
    create = request["createPipelineJobRequest"]
    assert create["parent"] == "projects/demo-project/locations/europe-west4"
    spec = yaml.safe_load(result.files[f"{loaded.pipeline.name}.yaml"])
    assert create["pipelineJob"]["pipelineSpec"] == spec
    assert create["pipelineJob"]["runtimeConfig"]["gcsOutputDirectory"] == "gs://demo-bucket/runs"


def test_for_each_over_a_loop_item_key_has_kfps_own_shape(tmp_path) -> None:
    """``for_each: "{{ row.vals }}"`` compiles like kfp 2.17's ``ParallelFor(row.vals)``: the
    inner loop task takes the outer item through ``parseJson(string_value)["vals"]`` and
    iterates that input."""
    _loaded, result = compile_file(CASES_DIR / "for_each_item_key.yaml")
    spec = yaml.safe_load(next(iter(result.files.values())))
    # (the outer loop iterates its parameter through the task "outer--items": a wrapper DAG)
    inner = spec["components"]["comp-outer--loop"]["dag"]["tasks"]["inner"]
    sub = inner["parameterIterator"]["items"]["inputParameter"]
    assert inner["inputs"]["parameters"][sub] == {
        "componentInputParameter": "pipelinechannel--outer-item",
        "parameterExpressionSelector": 'parseJson(string_value)["vals"]',
    }

    # kfp's own compiler on the same shape (kfp reads the component's source and real
    # annotations, so the pipeline lives in a file of its own).
    source = (
        "from typing import List\n"
        "from kfp import compiler, dsl\n"
        "@dsl.component\n"
        "def show(x: int) -> int:\n"
        "    return x\n"
        "@dsl.pipeline(name='nested')\n"
        "def nested(rows: List[dict] = [{'vals': [1]}]):\n"
        "    with dsl.ParallelFor(rows) as row:\n"
        "        with dsl.ParallelFor(row.vals) as v:\n"
        "            show(x=v)\n"
        "compiler.Compiler().compile(nested, OUT)\n"
    )
    import subprocess
    import sys

    out = tmp_path / "kfp.yaml"
    script = tmp_path / "kfp_nested.py"
    script.write_text(source.replace("OUT", repr(str(out))))
    subprocess.run([sys.executable, str(script)], check=True, capture_output=True)
    kfp_spec = yaml.safe_load(out.read_text())
    kfp_inner = kfp_spec["components"]["comp-for-loop-1"]["dag"]["tasks"]["for-loop-2"]
    kfp_sub = kfp_inner["parameterIterator"]["items"]["inputParameter"]
    assert kfp_inner["inputs"]["parameters"][kfp_sub] == {
        "componentInputParameter": "pipelinechannel--rows-loop-item",
        "parameterExpressionSelector": 'parseJson(string_value)["vals"]',
    }
