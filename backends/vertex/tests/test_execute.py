"""Execute compiled specs in kfp.local with the pipecast runtime and compare with the
simulator's run record: the examples, and values that test the JSON-text transport.

The conformance cases run in ``tests/conformance`` (``-m vertex``)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp_local import run_local

from pipecast.api import compile_pipeline, load_checked
from pipecast.passes.analysis import PipelineIndex
from tests.conformance.catalogue import CASES_DIR

pytestmark = [
    pytest.mark.vertex,
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning"),
]

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted(ROOT.glob("examples/*/pipeline.yaml"))
HERE = Path(__file__).resolve().parent
SETTINGS = {"image": "python:3.11-slim", "pipeline_root": "gs://demo/runs"}


def complete(record: dict[str, Any], keys: list[str], index: PipelineIndex) -> dict[str, Any]:
    """Add the entries kfp.local cannot report: steps that never ran, and groups.

    A task absent from the trace did not run: ``skipped`` when the run succeeded (a false
    condition), ``not_run`` when it failed. A group's status follows its steps.
    """
    steps = record["steps"]
    for key in keys:
        if key in steps:
            continue
        name = re.sub(r"\[\d+\]", "", key)
        node = index.nodes.get(name)
        if node is not None and node.is_group:
            inner = [
                v["status"]
                for k, v in steps.items()
                if re.sub(r"\[\d+\]", "", k) in {n.name for n in index.walk(node.body)}
            ]
            status = "failed" if "failed" in inner else "succeeded" if inner else "skipped"
        else:
            status = "skipped" if record["status"] == "succeeded" else "not_run"
        steps[key] = {"status": status}
    return record


def _simulate(
    loaded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    from pipecast.simulator import run_pipeline

    monkeypatch.chdir(tmp_path)
    return run_pipeline(
        loaded, params=params, run_dir=tmp_path / "sim", containers="host", max_parallel=2, seed=1
    )


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_example_matches_simulator(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = load_checked(path)
    expected = _simulate(loaded, tmp_path, monkeypatch)
    result = compile_pipeline(loaded, "vertex", SETTINGS)
    spec = tmp_path / f"{loaded.pipeline.name}.yaml"
    spec.write_text(result.files[spec.name])
    work = tmp_path / "kfp"
    work.mkdir()
    record = run_local(spec, {}, work, monkeypatch, [path.parent], index=loaded.index)
    tasks = {n.name for n in loaded.index.tasks()}
    task_keys = [k for k in expected["steps"] if re.sub(r"\[\d+\]", "", k) in tasks]
    complete(record, list(expected["steps"]), loaded.index)
    assert record["status"] == expected["status"]
    for key in task_keys:
        want, got = expected["steps"][key], record["steps"][key]
        assert got["status"] == want["status"], key
        node = loaded.index.node(re.sub(r"\[\d+\]", "", key))
        for out, type_ in node.task.outputs.items():
            if type_ in ("Dataset", "Model", "Metrics", "Artifact") or want["status"] != "succeeded":
                continue
            assert got["outputs"][out] == want["outputs"][out], (key, out)


@pytest.mark.parametrize("mode", ["a", "b"])
def test_list_and_dict_values_keep_their_types(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ints stay ints and integral floats stay floats, nested too, through step outputs,
    loops over step outputs / collected outputs / when-else outputs / literals and mixed
    strings (KFP itself would turn 2.0 into 2); a list pipeline output arrives as a list."""
    project = tmp_path / "project"  # the simulator imports step code from the pipeline's folder
    project.mkdir()
    shutil.copy(HERE / "pipelines" / "json_values.yaml", project)
    shutil.copy(CASES_DIR / "cstep.py", project)
    loaded = load_checked(project / "json_values.yaml")
    expected = _simulate(loaded, tmp_path, monkeypatch, {"mode": mode})
    result = compile_pipeline(loaded, "vertex", SETTINGS)
    spec = tmp_path / "json-values.yaml"
    spec.write_text(result.files[spec.name])
    work = tmp_path / "kfp"
    work.mkdir()
    record = run_local(spec, {"mode": mode}, work, monkeypatch, [project], index=loaded.index)
    assert record["status"] == expected["status"] == "succeeded"
    tasks = {n.name for n in loaded.index.tasks()}
    ran = {k: v for k, v in expected["steps"].items() if re.sub(r"\[\d+\]", "", k) in tasks}
    ran = {k: v for k, v in ran.items() if v["status"] == "succeeded"}
    assert len(ran) >= 9
    got = {k: json.dumps(record["steps"][k]["outputs"], sort_keys=True) for k in ran}
    want = {k: json.dumps(v["outputs"], sort_keys=True) for k, v in ran.items()}
    assert got == want
    picked = [1.5, 2, {"x": 3.0}, "[not json"] if mode == "a" else [4.5, {"y": 1.0}]
    # A list/dict pipeline output is native (LIST/STRUCT, as kfp declares one), not JSON text:
    # protobuf has one number type, so it equals the simulator's by value (2 == 2.0).
    assert isinstance(record["outputs"]["picked"], list)
    assert record["outputs"]["picked"] == picked == expected["outputs"]["picked"]


STOCK = """
pipecast: 1
name: bare-image
defaults: {timeout: 30s, retry: {attempts: 2, delay: 10ms, jitter: true}}
steps:
  make:
    run: {python: "cstep:write_file"}
    inputs: {text: "rows"}
    outputs: {out: Dataset}
  probe:
    run:
      image: python:3.11-slim
      command:
        - python
        - -c
        - |
          import importlib.util, os, sys
          assert importlib.util.find_spec("pipecast") is None, "pipecast is importable"
          os.makedirs(sys.argv[3], exist_ok=True)
          open(os.path.join(sys.argv[3], "copy"), "w").write(open(sys.argv[1]).read() + sys.argv[2])
          open(sys.argv[4], "w").write(sys.executable)
        - "{{ inputs.data }}"
        - "{{ inputs.suffix }}"
        - "{{ outputs.copy }}"
        - "{{ outputs.python }}"
    inputs: {data: "{{ steps.make.outputs.out }}", suffix: "!"}
    outputs: {copy: Artifact, python: str}
  check:
    run: {python: "cstep:count_folder"}
    inputs: {path: "{{ steps.probe.outputs.copy }}"}
    outputs: {output: int}
"""


def test_stock_step_runs_without_pipecast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A container step's command runs with a python where pipecast is NOT importable (SPEC §21):
    the spec holds KFP placeholders and the image's own command, no pipecast runtime."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "bare.yaml").write_text(STOCK)
    shutil.copy(CASES_DIR / "cstep.py", project)
    loaded = load_checked(project / "bare.yaml")
    result = compile_pipeline(loaded, "vertex", SETTINGS)
    assert result.summary["runtime_images"] == {"python:3.11-slim": ["check", "make"]}
    assert any(d.code == "jitter-ignored" for d in result.diagnostics)
    spec = tmp_path / "bare-image.yaml"
    spec.write_text(result.files[spec.name])
    executor = yaml.safe_load(spec.read_text())["deploymentSpec"]["executors"]["exec-probe"]["container"]
    assert "pipecast.runtime" not in json.dumps(executor)
    assert executor["command"][:3] == ["timeout", "30", "python"]
    assert "{{$.inputs.artifacts['data'].path}}" in executor["command"]
    assert "{{$.outputs.parameters['python'].output_file}}" in executor["command"]
    work = tmp_path / "kfp"
    work.mkdir()
    record = run_local(spec, {}, work, monkeypatch, [project], index=loaded.index)
    assert record["status"] == "succeeded", record
    assert record["steps"]["check"]["outputs"] == {"output": 1}
    assert "pipecast-bare-venv-" in record["steps"]["probe"]["outputs"]["python"]


EXACT_PARAMS = """
pipecast: 1
name: exact-params
params:
  big: {type: int, default: 9007199254740993}
  mixed: {type: list, default: [{f: 2.0, i: 2}, [3.0, 9007199254740993]]}
  cfg: {type: dict, default: {z: 2.0, a: 1}}
steps:
  big_read:
    run: {python: "cstep:emit"}
    inputs: {value: "{{ params.big }}"}
    outputs: {output: int}
  above:
    when: "params.big > 9007199254740992"
    run: {python: "cstep:emit"}
    inputs: {value: above}
    outputs: {output: str}
  cfg_read:
    run: {python: "cstep:emit"}
    inputs: {value: "{{ params.cfg }}"}
    outputs: {output: dict}
  each:
    for_each: "{{ params.mixed }}"
    as: m
    steps:
      item:
        run: {python: "cstep:emit"}
        inputs: {value: "<{{ m }}>"}
        outputs: {output: str}
"""


@pytest.mark.parametrize("given", [False, True], ids=["defaults", "given"])
def test_int_list_and_dict_params_are_exact(
    given: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SPEC §22 for pipeline parameters: ints, lists and dicts travel as JSON text (STRING), so
    2**53 + 1 stays itself (in a condition too), 2.0 stays a float and keys keep their order,
    also in the items of a loop over a parameter (iterated from the ``--items`` task)."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "exact.yaml").write_text(EXACT_PARAMS)
    shutil.copy(CASES_DIR / "cstep.py", project)
    loaded = load_checked(project / "exact.yaml")
    spec_data = yaml.safe_load(compile_pipeline(loaded, "vertex", SETTINGS).files["exact-params.yaml"])
    params = spec_data["root"]["inputDefinitions"]["parameters"]
    assert params["big"] == {
        "defaultValue": "9007199254740993",
        "isOptional": True,
        "parameterType": "STRING",
    }
    assert params["cfg"]["defaultValue"] == '{"z": 2.0, "a": 1}'
    assert "each--items" in spec_data["root"]["dag"]["tasks"]
    spec = tmp_path / "exact-params.yaml"
    spec.write_text(compile_pipeline(loaded, "vertex", SETTINGS).files[spec.name])
    work = tmp_path / "kfp"
    work.mkdir()
    values = {
        "big": 2**53 + 1,
        "mixed": [{"f": 2.0, "i": 2}, [3.0, 2**53 + 1]],
        "cfg": {"z": 2.0, "a": 1},
    }
    record = run_local(spec, values if given else {}, work, monkeypatch, [project], index=loaded.index)
    assert record["status"] == "succeeded", record
    steps = record["steps"]
    assert steps["big_read"]["outputs"]["output"] == 2**53 + 1
    assert steps["above"]["status"] == "succeeded"
    cfg = steps["cfg_read"]["outputs"]["output"]
    assert list(cfg) == ["z", "a"] and type(cfg["z"]) is float
    assert [steps[f"item[{i}]"]["outputs"]["output"] for i in range(2)] == [
        '<{"f":2.0,"i":2}>',
        "<[3.0,9007199254740993]>",
    ]
    assert "each--items" not in steps  # the task pipecast adds is no step


INT_VS_FLOAT = """
pipecast: 1
name: int-vs-float
steps:
  n:
    run: {python: "cstep:emit"}
    inputs: {value: 3}
    outputs: {output: int}
  f:
    run: {python: "cstep:emit"}
    inputs: {value: 2.5}
    outputs: {output: float}
  above:
    when: "steps.n.outputs.output > steps.f.outputs.output"
    run: {python: "cstep:emit"}
    inputs: {value: "{{ steps.n.outputs.output }}"}
    outputs: {output: int}
  below:
    when: "steps.f.outputs.output >= steps.n.outputs.output"
    run: {python: "cstep:emit"}
    inputs: {value: below}
    outputs: {output: str}
"""


def test_int_output_compared_with_a_float_reads_its_double_view(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An int step output compared with a float path: the producer also writes
    ``output-double`` (NUMBER_DOUBLE) and the condition compares two doubles, which CEL and
    kfp.local's evaluator (no ``double()``) both take; readers of the int still get the text."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "p.yaml").write_text(INT_VS_FLOAT)
    shutil.copy(CASES_DIR / "cstep.py", project)
    loaded = load_checked(project / "p.yaml")
    text = compile_pipeline(loaded, "vertex", SETTINGS).files["int-vs-float.yaml"]
    spec_data = yaml.safe_load(text)
    assert "double(" not in text
    outs = spec_data["components"]["comp-n"]["outputDefinitions"]["parameters"]
    assert outs == {
        "output": {"parameterType": "STRING"},
        "output-double": {"parameterType": "NUMBER_DOUBLE"},
    }
    cond = spec_data["root"]["dag"]["tasks"]["above"]["triggerPolicy"]["condition"]
    assert cond == (
        "inputs.parameter_values['pipelinechannel--n--output-double'] > "
        "inputs.parameter_values['pipelinechannel--f--output']"
    )
    spec = tmp_path / "int-vs-float.yaml"
    spec.write_text(text)
    work = tmp_path / "kfp"
    work.mkdir()
    record = run_local(spec, {}, work, monkeypatch, [project], index=loaded.index)
    assert record["status"] == "succeeded", record
    assert record["steps"]["above"] == {"attempts": 1, "status": "succeeded", "outputs": {"output": 3}}
    assert record["steps"]["below"] == {"status": "skipped"}  # its condition was false


GATED_VIEWS = """
pipecast: 1
name: gated-views
params:
  on: {type: bool, default: true}
  xs: {type: list, default: [1, 2]}
steps:
  s:
    when: "params.on"
    run: {python: "cstep:emit"}
    inputs: {value: 2.5}
    outputs: {output: float}
  b:
    when: "params.on"
    run: {python: "cstep:emit"}
    inputs: {value: true}
    outputs: {output: bool}
  each:
    for_each: "{{ params.xs }}"
    as: x
    steps:
      r:
        when: "steps.s.outputs.output > 1.0 and steps.b.outputs.output"
        run: {python: "cstep:add"}
        inputs: {a: "{{ x }}", b: "{{ steps.s.outputs.output }}"}
        outputs: {output: float}
      r2:
        when: "steps.s.outputs.output > 1.0 and steps.b.outputs.output"
        run: {python: "cstep:emit"}
        inputs: {value: "{{ x }}"}
        outputs: {output: int}
    outputs: {rs: "{{ steps.r.outputs.output }}"}
outputs:
  rs: "{{ steps.each.outputs.rs }}"
"""


@pytest.mark.parametrize("on", [True, False])
def test_steps_evaluating_their_own_when(on: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps with a 'when' read from inside a loop (s, b) and one collected by the loop (r)
    evaluate their condition in their runtime (``--when``): no condition task, float/bool
    outputs as JSON text, conditions that read them use the native ``-double``/``-bool``
    views; when false they are recorded skipped, readers are skipped and the collection is []
    (docs/targets/vertex.md, "Steps that evaluate their own when")."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "p.yaml").write_text(GATED_VIEWS)
    shutil.copy(CASES_DIR / "cstep.py", project)
    loaded = load_checked(project / "p.yaml")
    text = compile_pipeline(loaded, "vertex", SETTINGS).files["gated-views.yaml"]
    spec_data = yaml.safe_load(text)
    assert "comp-s--when" not in spec_data["components"]
    assert spec_data["components"]["comp-s"]["outputDefinitions"]["parameters"] == {
        "output": {"parameterType": "STRING"},
        "output-double": {"parameterType": "NUMBER_DOUBLE"},
    }
    assert "--when" in spec_data["deploymentSpec"]["executors"]["exec-s"]["container"]["args"]
    assert "pipelinechannel--s--output-double'] > 1.0" in text
    assert "pipelinechannel--b--output-bool'] == true" in text
    params = {"on": on}
    expected = _simulate(loaded, tmp_path, monkeypatch, params)
    spec = tmp_path / "gated-views.yaml"
    spec.write_text(text)
    work = tmp_path / "kfp"
    work.mkdir()
    record = run_local(spec, params, work, monkeypatch, [project], index=loaded.index)
    assert record["status"] == expected["status"] == "succeeded", record
    assert record["outputs"]["rs"] == expected["outputs"]["rs"] == ([3.5, 4.5] if on else [])
    for key in ("s", "b", "r[0]", "r[1]", "r2[0]", "r2[1]"):
        assert record["steps"][key]["status"] == expected["steps"][key]["status"], key
        assert record["steps"][key]["status"] == ("succeeded" if on else "skipped"), key
