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
        blocks: dict[str, tuple[str, bool]] = {}
        for job in jobs.values():
            if job["type"] == "if_else":
                for key, want in (("true_block", True), ("false_block", False)):
                    if key in job:
                        blocks[_JOB.match(job[key]).group(1)] = (job["condition"], want)  # type: ignore[union-attr]
        pending = {n: j for n, j in jobs.items() if j["type"] != "if_else"}
        while pending:
            ready = [
                n for n, j in pending.items()
                if all(d in results for d in _deps(j) | _deps({"inputs": {"c": blocks.get(n, ("", 0))[0]}}))
            ]  # fmt: skip
            assert ready, f"no job can start among {sorted(pending)}"
            for name in sorted(ready):
                job = pending.pop(name)
                if name in blocks:
                    cond, want = blocks[name]
                    if (self._value(cond, inputs, results).lower() == "true") is not want:
                        results[name] = {}
                        self.logs[f"{prefix}{name}"] = "not run (if_else)"
                        continue
                bound = {k: self._value(v, inputs, results) for k, v in (job.get("inputs") or {}).items()}
                if job["type"] == "pipeline":
                    child = str(Path(rel).parent / job["component"])
                    results[name] = self.run(os.path.normpath(child), bound, f"{prefix}{name}/")
                else:
                    assert job["type"] == "command", f"{name}: {job['type']} needs Azure ML"
                    results[name] = self._command(f"{prefix}{name}", job["component"], bound)
                self.ran[f"{prefix}{name}"] = results[name]
        outputs: dict[str, str] = {}
        for name, job in jobs.items():
            for out, binding in (job.get("outputs") or {}).items():
                parent = re.fullmatch(r"\$\{\{parent\.outputs\.([A-Za-z0-9_]+)\}\}", str(binding))
                if parent:
                    outputs[parent.group(1)] = results[name][out]
        return outputs

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


def _deps(job: dict[str, Any]) -> set[str]:
    text = yaml.safe_dump(job.get("inputs") or {})
    return set(re.findall(r"parent\.jobs\.([A-Za-z0-9_]+)", text))


def execute(name: str, params: dict[str, str], tmp_path: Path) -> LocalAzure:
    loaded, result = compile_file(CASES / f"{name}.yaml")
    check_graph(loaded, dict(result.files))
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
