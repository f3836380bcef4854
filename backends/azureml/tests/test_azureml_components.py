"""SPEC §16 on Azure ML: one command component file per component file, referenced by path.

Every use of a component file is a command job node ``component: ./components/<name>.component.yml``
with what differs per use on the node (bindings, literal inputs, the step name, compute, env,
limits); a use whose settings change the component gets the next variant ``<name>-2``. Checked
with the SDK (``load_job`` resolves the paths, ``_validate()``), pipecast's checks, the graph
check, and by running the shared files' command lines locally (``pipecast verify``)."""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from azml_helpers import REPO, check_graph, compile_file
from pipecast_azureml.naming import SCHEMA_COMMAND
from pipecast_azureml.validate import validate_files

from pipecast import api
from pipecast.api import compiled_form

pytestmark = pytest.mark.azureml

CASE = REPO / "tests/conformance/cases/component_twice.yaml"
EXAMPLE = REPO / "examples/components"
#: https://learn.microsoft.com/azure/machine-learning/reference-yaml-component-command
AZURE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,254}$")


def _docs(files: dict[str, str]) -> dict[str, Any]:
    return {rel: yaml.safe_load(text) for rel, text in files.items()}


def _uses(docs: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Job name → (the command component file it references, the job node), in every file."""
    found = {}
    for rel, doc in docs.items():
        for name, job in (doc.get("jobs") or {}).items():
            ref = job.get("component")
            if job.get("type") == "command" and isinstance(ref, str):
                found[name] = (posixpath.normpath(posixpath.join(posixpath.dirname(rel), ref)), job)
    return found


def _spec(command: str) -> dict[str, Any]:
    words = shlex.split(command.splitlines()[-1])
    return json.loads(words[words.index("--spec") + 1])


@pytest.mark.parametrize("name", ["training.yaml", "pipeline.yaml"])
def test_example_uses_reference_one_file_per_component(name: str) -> None:
    loaded, result = compile_file(EXAMPLE / name)
    docs = _docs(result.files)
    uses = _uses(docs)
    # Sub-pipeline steps are inlined by compile under <step>__<inner> (prep__clean).
    steps = {
        n.name.replace(".", "__"): n for n in loaded.lowered().index.tasks() if n.task.component is not None
    }
    # Every use of a component file, and nothing else, references a command component file.
    assert set(uses) == set(steps)
    for step, (rel, job) in uses.items():
        ref = steps[step].task.component
        assert ref is not None
        assert re.fullmatch(rf"components/{ref.name}(-\d+)?\.component\.yml", rel), rel
        doc = docs[rel]
        assert doc["$schema"] == SCHEMA_COMMAND and doc["type"] == "command"
        assert doc["name"] == ref.name and AZURE_NAME.match(doc["name"])
        assert re.fullmatch(r"v[0-9a-f]{12}", doc["version"])
        assert "jobs" not in doc and "command" in doc and "environment" in doc
        # The step's name is a job input; the shared spec names the component.
        assert job["inputs"]["pipecast_step"] == step
        assert _spec(doc["command"])["step"] == ref.name
        # Every declared input is bound by the node; every output the component declares is one.
        assert set(doc["inputs"]) == set(job["inputs"])
        assert set(ref.outputs) <= set(doc["outputs"])
    problems = validate_files(result.files)
    assert not problems, "\n".join(p.render() for p in problems)
    check_graph(compiled_form(loaded, "azureml"), result.files)


def test_training_shares_train_and_splits_the_retried_use() -> None:
    _loaded, result = compile_file(EXAMPLE / "training.yaml")
    docs = _docs(result.files)
    uses = _uses(docs)
    # trial (in the for_each body, lr from the loop) and final (retry: 3) are two variants of train.
    assert uses["trial"][0] == "components/train.component.yml"
    assert uses["final"][0] == "components/train-2.component.yml"
    assert docs["components/sweep.yml"]["jobs"]["trial"]["component"] == "./train.component.yml"
    assert _spec(docs["components/train-2.component.yml"]["command"])["retry"]["attempts"] == 3
    assert _spec(docs["components/train.component.yml"]["command"])["retry"]["attempts"] == 2
    # final's literals are typed job inputs, not spec literals.
    final = uses["final"][1]
    assert final["inputs"]["lr"] == 0.5 and final["inputs"]["epochs"] == 20
    train2 = docs["components/train-2.component.yml"]
    assert train2["inputs"]["lr"] == {"type": "number"} and train2["inputs"]["epochs"] == {"type": "integer"}
    assert train2["inputs"]["table"] == {"type": "uri_folder"}
    spec = _spec(train2["command"])
    assert spec["inputs"]["lr"] == {"type": "float"} and spec["inputs"]["epochs"] == {"type": "int"}
    assert "${{inputs.lr}}" in train2["command"]


def test_component_twice_shares_plus_and_splits_flaky() -> None:
    _loaded, result = compile_file(CASE)
    docs = _docs(result.files)
    uses = _uses(docs)
    assert {k: v[0] for k, v in uses.items()} == {
        "first": "components/flaky.component.yml",
        "second": "components/flaky-2.component.yml",
        "both": "components/plus.component.yml",
        "shifted": "components/plus.component.yml",
    }
    assert sorted(r for r in result.files if r.startswith("components/")) == [
        "components/flaky-2.component.yml",
        "components/flaky.component.yml",
        "components/plus.component.yml",
    ]
    assert uses["shifted"][1]["inputs"]["b"] == 10 and uses["second"][1]["inputs"]["failures"] == 2
    # Same content, same bytes on every compile.
    assert compile_file(CASE)[1].files == result.files


def test_component_twice_runs_each_use_under_its_step_name() -> None:
    """The shared files' command lines, run locally, do what the simulator does; a fault
    injected into one use fails that step only (the runtime names the step from step.name)."""
    from pipecast.verify.run import verify

    loaded = api.load_checked(CASE)
    settings = {"image": "example.azurecr.io/steps:1"}
    ok = verify(loaded, "azureml", settings=settings)
    assert ok.agree, [d.render("azureml") for d in ok.differences]
    assert ok.local.record["steps"]["shifted"]["outputs"]["output"] == 14
    failed = verify(loaded, "azureml", settings=settings, fail=["both"])
    assert failed.agree, [d.render("azureml") for d in failed.differences]
    steps = failed.local.record["steps"]
    assert steps["first"]["status"] == "succeeded" and steps["both"]["status"] == "failed"


def test_training_example_runs_like_the_simulator() -> None:
    from pipecast.verify.run import verify

    loaded = api.load_checked(EXAMPLE / "training.yaml")
    result = verify(loaded, "azureml", settings={"image": "example.azurecr.io/steps:1"})
    assert result.agree, [d.render("azureml") for d in result.differences]
    assert {"final", "score", "prep.clean"} <= set(result.local.record["steps"])


LIB = """\
pipecast: 1
component: echo
description: Echo a value.
run: {python: "cstep:echo"}
inputs: {value: str, times: {type: int, default: 1}, flag: {type: bool, default: false}, cfg: {type: dict, default: {}}}
outputs: {output: str}
"""

PIPELINE = """\
pipecast: 1
name: overrides
defaults: {image: example.azurecr.io/steps:1}
steps:
  a:
    uses: ./echo.yaml
    inputs: {value: "plain"}
  b:
    uses: ./echo.yaml
    inputs: {value: "cost: $[[y]] and ${x}", times: 3, flag: true, cfg: {k: [1, "$z"]}}
    env: {MODE: fast}
    resources: {cpu: 8}
    timeout: 10m
    after: [a]
  c:
    uses: ./echo.yaml
    inputs: {value: "{{ steps.a.outputs.output }}"}
    image: example.azurecr.io/other:2
  d:
    uses: ./echo.yaml
    inputs: {value: "d"}
    after: [b]
"""


def test_node_overrides_share_the_file_and_other_images_do_not(tmp_path: Path) -> None:
    (tmp_path / "echo.yaml").write_text(LIB)
    (tmp_path / "p.yaml").write_text(PIPELINE)
    _loaded, result = compile_file(tmp_path / "p.yaml")
    docs = _docs(result.files)
    uses = _uses(docs)
    # env, resources, timeout and literals are node settings: a, b and d share one file.
    assert {k: v[0] for k, v in uses.items()} == {
        "a": "components/echo.component.yml",
        "b": "components/echo.component.yml",
        "c": "components/echo-2.component.yml",
        "d": "components/echo.component.yml",
    }
    b = uses["b"][1]
    assert b["environment_variables"] == {"MODE": "fast"}
    assert b["limits"] == {"timeout": 600} and b["resources"]["instance_type"] == "Standard_DS4_v2"
    # Literals Azure ML would read as expressions travel encoded; JSON text escapes '$'.
    assert b["inputs"]["value"].startswith("pipecast:json:") and "$" not in b["inputs"]["value"]
    assert b["inputs"]["times"] == 3 and b["inputs"]["flag"] is True
    assert json.loads(b["inputs"]["cfg"].replace("\\u0024", "$")) == {"k": [1, "$z"]}
    shared = docs["components/echo.component.yml"]
    assert "env" not in _spec(shared["command"])  # the node's environment_variables carry it
    assert shared["environment"] == {"image": "example.azurecr.io/steps:1"}
    assert docs["components/echo-2.component.yml"]["environment"] == {"image": "example.azurecr.io/other:2"}
    # `after` inputs: the union over the uses, optional, bound only where a use waits.
    assert shared["inputs"]["after__a"] == {"type": "uri_folder", "optional": True}
    assert shared["inputs"]["after__b"] == {"type": "uri_folder", "optional": True}
    assert "after__a" in b["inputs"] and "after__a" not in uses["d"][1]["inputs"]
    assert "pipecast_done" in shared["outputs"]
    problems = validate_files(result.files)
    assert not problems, "\n".join(p.render() for p in problems)
    check_graph(compiled_form(_loaded, "azureml"), result.files)


def test_node_values_reach_the_step(tmp_path: Path) -> None:
    """The shared command run with b's node inputs and env gives b's values to the step."""
    (tmp_path / "echo.yaml").write_text(LIB)
    (tmp_path / "p.yaml").write_text(PIPELINE)
    (tmp_path / "cstep.py").write_text(
        textwrap.dedent(
            """\
            import json, os
            def echo(value, times, flag, cfg):
                return json.dumps([value, times, flag, cfg, os.environ.get("MODE")])
            """
        )
    )
    from pipecast.verify.run import verify

    result = verify(api.load_checked(tmp_path / "p.yaml"), "azureml", settings={"image": "img:1"})
    assert result.agree, [d.render("azureml") for d in result.differences]
    out = json.loads(result.local.record["steps"]["b"]["outputs"]["output"])
    assert out == ["cost: $[[y]] and ${x}", 3, True, {"k": [1, "$z"]}, "fast"]


def test_checks_name_a_missing_file_and_an_unbound_input() -> None:
    from pipecast_azureml.checks import check_files

    _loaded, result = compile_file(CASE)
    files = dict(result.files)
    del files["components/flaky-2.component.yml"]
    doc = yaml.safe_load(files["component-twice.yml"])
    del doc["jobs"]["both"]["inputs"]["pipecast_step"]
    files["component-twice.yml"] = yaml.safe_dump(doc)
    problems = [p.render() for p in check_files(files)]
    assert any("jobs.second.component" in p and "does not exist" in p for p in problems), problems
    assert any("jobs.both.inputs" in p and "'pipecast_step' is not bound" in p for p in problems), problems


STOCK = """\
pipecast: 1
component: shout
run:
  image: busybox:1.36
  command: [sh, -c, 'printf "%s!" "$0" > "$1"', "{{ inputs.word }}", "{{ outputs.loud }}"]
inputs: {word: str}
outputs: {loud: str}
"""

ODD = """\
pipecast: 1
component: odd
run: {python: "cstep:echo"}
inputs: {pipecast_step: str}
outputs: {output: str}
"""

SHAPES = """\
pipecast: 1
name: shapes
defaults: {image: example.azurecr.io/steps:1}
params:
  go: {type: bool, default: true}
steps:
  hi:
    uses: ./shout.yaml
    inputs: {word: hi}
  hi_again:
    uses: ./shout.yaml
    inputs: {word: hi}
  bye:
    uses: ./shout.yaml
    inputs: {word: bye}
  maybe:
    uses: ./echo.yaml
    inputs: {value: "{{ steps.hi.outputs.loud }}"}
    when: params.go
  odd:
    uses: ./odd.yaml
    inputs: {pipecast_step: x}
"""


def test_stock_uses_when_and_a_reserved_input_name(tmp_path: Path) -> None:
    """A stock step's literals are text in its command: equal uses share a file, others get a
    variant; a use with `when` is the if_else's true block; a component declaring an input
    named pipecast_step keeps an inline component (its node could not carry the step name)."""
    for name, text in {"shout.yaml": STOCK, "echo.yaml": LIB, "odd.yaml": ODD, "p.yaml": SHAPES}.items():
        (tmp_path / name).write_text(text)
    loaded, result = compile_file(tmp_path / "p.yaml")
    docs = _docs(result.files)
    uses = _uses(docs)
    assert {k: v[0] for k, v in uses.items()} == {
        "hi": "components/shout.component.yml",
        "hi_again": "components/shout.component.yml",
        "bye": "components/shout-2.component.yml",
        "maybe": "components/echo.component.yml",
    }
    assert "pipecast_step" not in uses["hi"][1].get("inputs", {})  # a stock command runs no runtime
    assert docs["components/shout.component.yml"]["environment"] == {"image": "busybox:1.36"}
    jobs = docs["shapes.yml"]["jobs"]
    assert jobs["maybe__if"]["true_block"] == "${{parent.jobs.maybe}}"
    assert isinstance(jobs["odd"]["component"], dict)
    problems = validate_files(result.files)
    assert not problems, "\n".join(p.render() for p in problems)
    check_graph(compiled_form(loaded, "azureml"), result.files)


def test_shared_files_run_inside_loops_and_gated_branches(tmp_path: Path) -> None:
    """Every job, parallel_for bodies and gated branches included, run from the compiled files
    (test_azureml_gating's local Azure ML): the shared plus component runs as prep__shift once
    per item, and inside a gated branch both ways."""
    from test_azureml_gating import execute, skipped

    loop = execute("subpipeline_for_each", {}, tmp_path / "loop")
    assert json.loads(loop.ran["each"]["values"]) == [2, 4, 6]
    assert float(loop.ran["sum"]["output"]) == 12
    assert loop.ran["each[1]/prep__shift"]["output"] == "4"
    for go, value in (("true", "104"), ("false", None)):
        local = execute("subpipeline_when", {"go": go}, tmp_path / go)
        jobs = {k: v for k, v in local.ran.items() if k.endswith("prep__shift")}
        assert len(jobs) == 1
        (job,) = jobs
        assert skipped(local, job) is (value is None)
        if value is None:  # the runtime names the step it skipped from step.name
            assert "step prep__shift skipped" in local.logs[job], local.logs[job]
        else:
            assert jobs[job]["output"] == value and local.ran["reader"]["output"] == value


def test_same_component_name_in_two_files_and_marker_like_literals(tmp_path: Path) -> None:
    """Two component files both named `echo` get their own files; a literal that reads like a
    runtime marker (pipecast:skipped) stays in the spec, so it never skips the step."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "echo.yaml").write_text(LIB)
    (tmp_path / "b" / "echo.yaml").write_text(LIB.replace("Echo a value.", "Echo again."))
    (tmp_path / "p.yaml").write_text(
        "pipecast: 1\nname: twins\ndefaults: {image: 'img:1'}\nsteps:\n"
        "  one: {uses: ./a/echo.yaml, inputs: {value: x}}\n"
        "  two: {uses: ./b/echo.yaml, inputs: {value: x}}\n"
        "  odd: {uses: ./a/echo.yaml, inputs: {value: 'pipecast:skipped'}}\n"
    )
    _loaded, result = compile_file(tmp_path / "p.yaml")
    docs = _docs(result.files)
    uses = _uses(docs)
    assert uses["one"][0] == "components/echo.component.yml"
    assert uses["two"][0] == "components/echo-2.component.yml"
    assert docs["components/echo-2.component.yml"]["description"] == "Echo again."
    assert uses["odd"][0] == "components/echo-3.component.yml"
    assert "value" not in uses["odd"][1]["inputs"]
    spec = _spec(docs["components/echo-3.component.yml"]["command"])
    assert spec["inputs"]["value"] == {"literal": True, "type": "str", "value": "pipecast:skipped"}


def test_uses_with_other_mixed_strings_share_the_file(tmp_path: Path) -> None:
    """The inputs the runtime renders (mixed strings, structured values) travel as the job
    input pipecast_templates, so uses differing only there share the file, and each use's
    step renders its own."""
    (tmp_path / "echo.yaml").write_text(LIB)
    (tmp_path / "cstep.py").write_text("def echo(value, times, flag, cfg):\n    return f'{value}|{cfg}'\n")
    (tmp_path / "p.yaml").write_text(
        "pipecast: 1\nname: mixed\ndefaults: {image: 'img:1'}\nparams: {p: {type: str, default: P}}\n"
        "steps:\n"
        "  x: {uses: ./echo.yaml, inputs: {value: 'pre-{{ params.p }}'}}\n"
        "  y: {uses: ./echo.yaml, inputs: {value: '{{ params.p }}-post', cfg: {k: '{{ params.p }}'}}}\n"
    )
    loaded, result = compile_file(tmp_path / "p.yaml")
    docs = _docs(result.files)
    uses = _uses(docs)
    assert uses["x"][0] == uses["y"][0] == "components/echo.component.yml"
    command = docs["components/echo.component.yml"]["command"]
    assert "pre-" not in command and "-post" not in command
    assert (
        json.loads(uses["y"][1]["inputs"]["pipecast_templates"])["value"]["template"] == "{{ params.p }}-post"
    )
    problems = validate_files(result.files)
    assert not problems, "\n".join(p.render() for p in problems)
    from pipecast.verify.run import verify

    run = verify(loaded, "azureml", settings={"image": "img:1"}, params={"p": "Q"})
    assert run.agree, [d.render("azureml") for d in run.differences]
    steps = run.local.record["steps"]
    assert steps["x"]["outputs"]["output"] == "pre-Q|{}"
    assert steps["y"]["outputs"]["output"] == "Q-post|{'k': 'Q'}"
