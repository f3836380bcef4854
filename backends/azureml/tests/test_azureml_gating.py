"""Gated ``when`` lowering on Azure ML, run for real: the compiled command lines of both branches,
the select job and the readers execute in order with the step runtime, with local folders standing
in for Azure ML's mounts. Gated jobs are plain ``command`` and ``pipeline`` nodes (no ``if_else``),
so this small interpreter of those two node types runs the whole compiled job; the SPEC §22
outcomes (skipped readers, ``after`` still running, the taken branch's value) are checked against
what the steps wrote."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from azml_helpers import REPO, check_graph, compile_file

from pipecast.runtime.conventions.azureml import SKIPPED, SKIPPED_FILE

pytestmark = pytest.mark.azureml

CASES = REPO / "tests/conformance/cases"
_EXPR = re.compile(r"^\$\{\{\s*parent\.(inputs|jobs)\.([A-Za-z0-9_]+)(?:\.outputs\.([A-Za-z0-9_]+))?\s*\}\}$")
_JOB = re.compile(r"^\$\{\{\s*parent\.jobs\.([A-Za-z0-9_]+)\s*\}\}$")
_PRIMITIVE = {"string", "integer", "number", "boolean"}


def _if_else_blocks(jobs: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Each if_else block job -> (the condition binding, the value it runs on)."""
    blocks: dict[str, tuple[str, bool]] = {}
    for job in jobs.values():
        if job["type"] == "if_else":
            for key, want in (("true_block", True), ("false_block", False)):
                if key in job:
                    blocks[_JOB.match(job[key]).group(1)] = (job["condition"], want)  # type: ignore[union-attr]
    return blocks


def _parent_outputs(jobs: dict[str, Any], results: dict[str, dict[str, str]]) -> dict[str, str]:
    """The pipeline's outputs: the job outputs bound to ``${{parent.outputs.<name>}}``."""
    outputs: dict[str, str] = {}
    for name, job in jobs.items():
        for out, binding in (job.get("outputs") or {}).items():
            parent = re.fullmatch(r"\$\{\{parent\.outputs\.([A-Za-z0-9_]+)\}\}", str(binding))
            if parent:
                outputs[parent.group(1)] = results[name][out]
    return outputs


class LocalAzure:
    """Runs a compiled job's ``command`` and ``pipeline`` nodes in dependency order."""

    def __init__(self, root: Path, work: Path) -> None:
        self.root = root
        self.work = work
        self.ran: dict[str, dict[str, str]] = {}  # job path -> output -> value text or folder
        self.logs: dict[str, str] = {}
        self.env = {**os.environ, "PIPECAST_PYTHON_PATH": str(CASES)}
        self.env.pop("MLFLOW_TRACKING_URI", None)

    def run(self, rel: str, inputs: dict[str, str], prefix: str = "") -> dict[str, str]:
        doc = yaml.safe_load((self.root / rel).read_text())
        jobs: dict[str, Any] = doc["jobs"]
        results: dict[str, dict[str, str]] = {}
        # if_else: its blocks run only when the condition output says so (Azure ML's semantics).
        blocks = _if_else_blocks(jobs)
        # parallel_for: its body node runs once per item, through the loop (not on its own).
        bodies = {_JOB.match(j["body"]).group(1): n for n, j in jobs.items() if j["type"] == "parallel_for"}  # type: ignore[union-attr]
        pending = {n: j for n, j in jobs.items() if j["type"] != "if_else" and n not in bodies}

        def deps(name: str, job: dict[str, Any]) -> set[str]:
            if job["type"] == "parallel_for":
                body = _JOB.match(job["body"]).group(1)  # type: ignore[union-attr]
                return _deps(jobs[body]) | _deps({"inputs": {"items": job["items"]}})
            return _deps(job) | _deps({"inputs": {"c": blocks.get(name, ("", 0))[0]}})

        while pending:
            ready = [n for n, j in pending.items() if all(d in results for d in deps(n, j))]
            assert ready, f"no job can start among {sorted(pending)}"
            for name in sorted(ready):
                job = pending.pop(name)
                if name in blocks:
                    cond, want = blocks[name]
                    if (self._value(cond, inputs, results).lower() == "true") is not want:
                        results[name] = {}
                        self.logs[f"{prefix}{name}"] = "not run (if_else)"
                        continue
                if job["type"] == "parallel_for":
                    results[name] = self._loop(rel, name, job, jobs, inputs, results, prefix)
                    self.ran[f"{prefix}{name}"] = results[name]
                    continue
                bound = {k: self._value(v, inputs, results) for k, v in (job.get("inputs") or {}).items()}
                if job["type"] == "pipeline":
                    child = str(Path(rel).parent / job["component"])
                    results[name] = self.run(os.path.normpath(child), bound, f"{prefix}{name}/")
                else:
                    assert job["type"] == "command", f"{name}: {job['type']} needs Azure ML"
                    component = job["component"]
                    if isinstance(component, str):  # a command component file (SPEC §16)
                        file = os.path.normpath(str(Path(rel).parent / component))
                        component = yaml.safe_load((self.root / file).read_text())
                    results[name] = self._command(f"{prefix}{name}", component, bound)
                self.ran[f"{prefix}{name}"] = results[name]
        return _parent_outputs(jobs, results)

    def _loop(
        self, rel: str, name: str, job: dict[str, Any], jobs: dict[str, Any], inputs: dict[str, str],
        results: dict[str, dict[str, str]], prefix: str,
    ) -> dict[str, str]:  # fmt: skip
        """A ``parallel_for``: the body once per item, outputs aggregated as Azure ML does
        (``ParallelFor.OUT_TYPE_MAPPING``: a primitive output becomes a JSON list, a folder an
        mltable, here a folder with one entry per item). Empty items fail, as on Azure ML."""
        import json
        import shutil

        items = json.loads(self._value(job["items"], inputs, results))
        assert isinstance(items, list) and items, f"{name}: parallel_for: Items is an empty list/dict"
        body_name = _JOB.match(job["body"]).group(1)  # type: ignore[union-attr]
        body = jobs[body_name]
        bound = {k: self._value(v, inputs, results) for k, v in (body.get("inputs") or {}).items()}
        child = os.path.normpath(str(Path(rel).parent / body["component"]))
        runs = [self.run(child, {**bound, **item}, f"{prefix}{name}[{i}]/") for i, item in enumerate(items)]
        out: dict[str, str] = {}
        for key in runs[0]:
            values = [r[key] for r in runs]
            if all(Path(v).is_dir() for v in values):
                folder = self.work / f"{prefix}{name}+{key}".replace("/", "+")
                for i, v in enumerate(values):
                    shutil.copytree(v, folder / str(i))
                out[key] = str(folder)
            else:
                out[key] = json.dumps([_json_or_text(v) for v in values])
        return out

    def _value(self, expr: Any, inputs: dict[str, str], results: dict[str, dict[str, str]]) -> str:
        m = _EXPR.match(str(expr))
        if m is None:
            return str(expr).lower() if isinstance(expr, bool) else str(expr)
        if m.group(1) == "inputs":
            return inputs[m.group(2)]
        return results[m.group(2)][m.group(3)]

    def _command(self, path: str, component: dict[str, Any], bound: dict[str, str]) -> dict[str, str]:
        mounts = self.work / path.replace("/", "+")
        paths: dict[str, Path] = {}
        for out, decl in (component.get("outputs") or {}).items():
            paths[out] = mounts / out
            if decl["type"] in _PRIMITIVE:
                paths[out].parent.mkdir(parents=True, exist_ok=True)
            else:
                paths[out].mkdir(parents=True)

        def sub(m: re.Match[str]) -> str:
            return bound[m.group(2)] if m.group(1) == "inputs" else str(paths[m.group(2)])

        text = re.sub(r"\$\{\{(inputs|outputs)\.([A-Za-z0-9_]+)\}\}", sub, component["command"])
        text = text.replace("python -m", f"{sys.executable} -m", 1)
        done = subprocess.run(["bash", "-c", text], env=self.env, capture_output=True, text=True, timeout=120)
        self.logs[path] = done.stderr
        assert done.returncode == 0, f"{path}: {done.stderr}"
        return {
            out: (p.read_text() if component["outputs"][out]["type"] in _PRIMITIVE else str(p))
            for out, p in paths.items()
        }


def _json_or_text(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


def _deps(job: dict[str, Any]) -> set[str]:
    text = yaml.safe_dump(job.get("inputs") or {})
    return set(re.findall(r"parent\.jobs\.([A-Za-z0-9_]+)", text))


def execute(name: str | Path, params: dict[str, str], tmp_path: Path) -> LocalAzure:
    loaded, result = compile_file(name if isinstance(name, Path) else CASES / f"{name}.yaml")
    from pipecast.api import compiled_form

    check_graph(compiled_form(loaded, "azureml"), dict(result.files))  # sub-pipelines inlined
    root = tmp_path / "files"
    for rel, text in result.files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    job_file = f"{loaded.pipeline.name}.yml"
    doc = yaml.safe_load(result.files[job_file])
    inputs = {
        k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (doc.get("inputs") or {}).items()
    }
    local = LocalAzure(root, tmp_path / "mounts")
    local.run(job_file, inputs | params)
    return local


def skipped(local: LocalAzure, job: str) -> bool:
    """Skipped by the runtime (a gated job) or never started (an if_else block not taken)."""
    return "skipped:" in local.logs[job] or local.logs[job] == "not run (if_else)"


@pytest.mark.parametrize(
    ("mode", "taken", "not_taken"), [("fast", "quick", "slow"), ("slow", "slow", "quick")]
)
def test_else_outputs_publish_the_branch_that_ran(
    tmp_path: Path, mode: str, taken: str, not_taken: str
) -> None:
    local = execute("else_outputs", {"mode": mode}, tmp_path)
    branch = {"quick": "choose", "slow": "choose__else"}
    assert not skipped(local, f"{branch[taken]}/{taken}")
    assert skipped(local, f"{branch[not_taken]}/{not_taken}")
    assert local.ran[f"{branch[not_taken]}/{not_taken}"]["output"] == SKIPPED
    assert local.ran["choose__select"]["result"] == f"{taken} result"
    assert local.ran["use"]["output"] == f"got {taken} result"


@pytest.mark.parametrize("enabled", [True, False])
def test_skipped_producers_and_after_on_gated_steps(tmp_path: Path, enabled: bool) -> None:
    local = execute("skipped_producer", {"enabled": str(enabled).lower()}, tmp_path)
    for job in ("gate", "reader", "reader_of_reader", "block/inner"):
        assert skipped(local, job) is not enabled, job
    if enabled:
        assert local.ran["reader_of_reader"]["output"] == "28"
    else:  # SPEC §22: readers of a skipped step are skipped, transitively
        assert local.ran["gate"]["output"] == SKIPPED
        assert local.ran["reader"]["output"] == SKIPPED
    # `after` on a skipped step or group still runs
    assert local.ran["after_gate"]["output"] == "1" and not skipped(local, "after_gate")
    assert local.ran["after_block"]["output"] == "3" and not skipped(local, "after_block")


def test_when_false_group_then_after(tmp_path: Path) -> None:
    local = execute("when_false", {}, tmp_path)
    assert skipped(local, "gate/deploy")
    assert local.ran["after_gate"]["output"] == "done"


def test_skipped_artifact_is_a_marked_folder(tmp_path: Path) -> None:
    from pipecast.runtime.conventions.azureml import skipped_input, write_markers

    write_markers({"model": (str(tmp_path / "model"), True), "n": (str(tmp_path / "n"), False)})
    assert (tmp_path / "model" / SKIPPED_FILE).is_file()
    assert (tmp_path / "n").read_text() == SKIPPED
    assert skipped_input({"m": str(tmp_path / "model")}) is not None
    assert skipped_input({"m": str(tmp_path)}) is None


def test_a_loop_output_leaves_out_items_whose_gated_step_was_skipped(tmp_path: Path) -> None:
    """for_each_when_outputs: `big` (its own `when`, exposed by the loop) is gated, so each item's
    job completes; a skipped item writes the marker, and the reader of the collected output
    drops it (docs/semantics.md: the output holds the items where the step ran)."""
    loaded, result = compile_file(CASES / "for_each_when_outputs.yaml")
    check_graph(loaded, dict(result.files))
    body = yaml.safe_load(result.files["components/each.yml"])["jobs"]
    assert "big__if" not in body and body["big"]["inputs"]["pipecast_gate"].endswith(
        "big__cond.outputs.result}}"
    )
    local = LocalAzure(tmp_path, tmp_path / "mounts")
    squares = []
    for x, gate in ((1, "false"), (5, "true")):
        out = local._command(f"big{x}", body["big"]["component"], {"x": str(x), "pipecast_gate": gate})
        squares.append(out["output"])
    assert squares == [SKIPPED, "25"]
    total = yaml.safe_load(result.files["for-each-when-outputs.yml"])["jobs"]["total"]
    (channel,) = [k for k in total["inputs"] if "squares" in total["inputs"][k]]
    aggregated = '["pipecast:skipped", 25]'  # parallel_for's aggregate of the items' outputs
    out = local._command("total", total["component"], {channel: aggregated})
    assert not skipped(local, "total") and float(out["output"]) == 25.0


@pytest.mark.parametrize(("xs", "runtime_total"), [("[3]", "9.0"), ("[]", "0.0")])
def test_empty_for_each_completes_with_empty_outputs(tmp_path: Path, xs: str, runtime_total: str) -> None:
    """Azure ML's parallel_for rejects empty items (this interpreter too): `for_each: []` is one
    job giving `[]`, and a list empty at run time becomes one sentinel item whose gated body
    writes only markers, which the reader drops (issue 14 reproduction 9, issue 19)."""
    local = execute("empty_for_each", {"xs": xs}, tmp_path)
    assert "parallel_for" not in str(local.ran["none"]) and local.ran["none"]["squares"] == "[]"
    assert local.ran["sum_none"]["output"] == "0.0"
    assert local.ran["sum_runtime"]["output"] == runtime_total
    body = "runtime[0]/sq2"
    assert skipped(local, body) is (xs == "[]")


def test_empty_list_produced_by_a_step(tmp_path: Path) -> None:
    """The list comes from a step and is empty only at run time (case empty_for_each_step)."""
    local = execute("empty_for_each_step", {}, tmp_path)
    assert local.ran["make"]["output"] == "[]"
    assert skipped(local, "each[0]/sq") and skipped(local, "grid[0]/nested[0]/inner")
    assert local.ran["total"]["output"] == "0.0"
    assert local.ran["after_each"]["output"] == "1" and not skipped(local, "after_each")


GATED_LOOP = """
pipecast: 1
name: gated-loop
params:
  on: {type: bool, default: true}
  xs: {type: list, default: [2, 3]}
steps:
  g:
    when: "params.on"
    steps:
      each:
        for_each: "{{ params.xs }}"
        as: x
        steps:
          sq: {run: {python: "cstep:square"}, inputs: {x: "{{ x }}"}, outputs: {output: int}}
        outputs: {squares: "{{ steps.sq.outputs.output }}"}
      sum: {run: {python: "cstep:total"}, inputs: {values: "{{ steps.each.outputs.squares }}"}, outputs: {output: float}}
  last: {run: {python: "cstep:emit"}, inputs: {value: 1}, outputs: {output: int}, after: [g]}
"""


@pytest.mark.parametrize(("on", "xs"), [("true", "[2, 3]"), ("false", "[2, 3]"), ("true", "[]")])
def test_loop_over_data_inside_a_gated_branch(tmp_path: Path, on: str, xs: str) -> None:
    """A for_each over a run-time list inside a gated when-group: a closed gate reaches the
    items job, which gives parallel_for one sentinel item and closes the body's gate."""
    path = tmp_path / "gated.yaml"
    path.write_text(GATED_LOOP)
    local = execute(path, {"on": on, "xs": xs}, tmp_path)
    assert skipped(local, "g/each[0]/sq") is not (on == "true" and xs != "[]")
    if on == "true":
        assert local.ran["g/sum"]["output"] == ("13.0" if xs != "[]" else "0.0")
    else:
        assert skipped(local, "g/sum")
    assert local.ran["last"]["output"] == "1"


@pytest.mark.parametrize("enabled", [False, True])
def test_a_when_step_is_the_one_step_group_it_is(tmp_path: Path, enabled: bool) -> None:
    """when_step_gating (issue 14): a step with its own `when` read or waited for from a loop
    body, from a when-group and at the top level: its job always starts with the condition as
    its gate (no job inside an if_else block is bound to), and SPEC §22 holds."""
    _loaded, result = compile_file(CASES / "when_step_gating.yaml")
    for doc in (yaml.safe_load(t) for t in result.files.values()):
        bound = yaml.safe_dump({n: j.get("inputs") for n, j in doc["jobs"].items()})
        blocks = [j["true_block"] for j in doc["jobs"].values() if j["type"] == "if_else"]
        for block in blocks:  # nothing binds to a job that may never start
            target = block.removeprefix("${{parent.jobs.").removesuffix("}}")
            assert f"parent.jobs.{target}.outputs" not in bound, target
    local = execute("when_step_gating", {"enabled": str(enabled).lower()}, tmp_path)
    assert skipped(local, "gate") is not enabled
    assert skipped(local, "each[0]/big") and local.ran["each[1]/big"]["output"] == "25"
    assert skipped(local, "each[0]/use_big") and local.ran["each[1]/use_big"]["output"] == "50"
    assert [local.ran[f"each[{i}]/after_big"]["output"] for i in (0, 1)] == ["1", "5"]
    for i, want in ((0, "5"), (1, "9")):
        assert skipped(local, f"each[{i}]/use_gate") is not enabled
        if enabled:
            assert local.ran[f"each[{i}]/use_gate"]["output"] == want
    # enabled: the if_else block is not taken; else it runs and read_gate reads the skipped gate
    assert skipped(local, "block" if enabled else "block/read_gate")
    assert local.ran["after_all"]["output"] == "1" and not skipped(local, "after_all")


@pytest.mark.parametrize(("min_auc", "registered"), [("0.8", True), ("0.95", False)])
def test_metrics_in_conditions_and_inputs(tmp_path: Path, min_auc: str, registered: bool) -> None:
    """metrics_condition (SPEC §15): `eval`'s job publishes each metric read elsewhere as a
    number output (scores__auc, scores__rows) that conditions and inputs bind to."""
    local = execute("metrics_condition", {"min_auc": min_auc}, tmp_path)
    assert local.ran["eval"]["scores__auc"] == "0.9" and local.ran["eval"]["scores__rows"] == "3.0"
    if registered:
        assert local.ran["publish/register"]["output"] == "0.9"
    else:
        assert skipped(local, "publish")
    assert skipped(local, "small")  # rows (3) > 5 is false


def test_a_missing_metric_fails_its_reader(tmp_path: Path) -> None:
    """metrics_missing: the producer succeeds and marks the metric missing; the condition job
    reading it fails with the Metrics output's names (SPEC §15: at run time, in the reader)."""
    with pytest.raises(AssertionError, match=r"gate__cond.*no metric 'f1'"):
        execute("metrics_missing", {}, tmp_path)


def test_structured_values_are_built_at_run_time(tmp_path: Path) -> None:
    """structured_values (SPEC §19): one input per reference; the runtime builds the mapping
    (types kept, the artifact as its local path, '\\{{' literal) and the items of a for_each
    list literal holding references (its items job)."""
    import json

    local = execute("structured_values", {}, tmp_path)
    got = json.loads(local.ran["use"]["output"])
    assert got == {
        "lr": ["float", 0.5], "n": ["int", 42], "layers": ["list", [42, 3, 0.5]],
        "items": ["list", [1, "two", 3.0]], "data": ["path", "payload"], "name": ["str", "run-v1"],
        "helm": ["str", "{{ .Values.x }}"],
    }  # fmt: skip
    assert [local.ran[f"each[{i}]/echo"]["output"] for i in range(3)] == ["str:v1", "float:2.5", "int:7"]
