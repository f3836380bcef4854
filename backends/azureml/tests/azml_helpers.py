"""Compile helpers and the graph read back from compiled Azure ML files (for equivalence tests)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import yaml

from pipecast import api
from pipecast.backend import CompileResult
from pipecast.conformance import Conformance, Job
from pipecast.passes.analysis import PipelineIndex, Scope

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = sorted([*REPO.glob("examples/*/pipeline.yaml"), *REPO.glob("examples/*/pipeline.py")])
CASES = sorted((REPO / "tests/conformance/cases").glob("*.yaml"))
#: Pipelines Azure ML cannot express, with the named error code pipecast gives.
UNSUPPORTED = {
    "sweep/pipeline.yaml": "unsupported-feature",  # when-group outputs (else branch value)
    "sweep/pipeline.py": "unsupported-feature",
    "else_outputs.yaml": "unsupported-feature",
    "when_true.yaml": "unsupported-feature",  # after: [a when-group]
    "when_false.yaml": "unsupported-feature",
}
SETTINGS = {
    "serverless": True,
    "image": "example.azurecr.io/steps:1",
    "key_vault_url": "https://kv-test.vault.azure.net",
}
_JOBS = re.compile(r"\$\{\{parent\.jobs\.([A-Za-z0-9_]+)")


def label(path: Path) -> str:
    return f"{path.parent.name}/{path.name}" if path.parent.parent.name == "examples" else path.name


def compile_file(path: Path, settings: dict[str, Any] | None = None) -> tuple[Any, CompileResult]:
    loaded = api.load_checked(path)
    return loaded, api.compile_pipeline(loaded, "azureml", dict(SETTINGS if settings is None else settings))


def docs(files: dict[str, str]) -> dict[str, Any]:
    return {rel: yaml.safe_load(text) for rel, text in files.items()}


def owner(job: str, siblings: set[str]) -> str:
    """The IR sibling a compiled job belongs to (``g__cond`` → ``g``)."""
    if job in siblings:
        return job
    base = job.rsplit("__", 1)[0]
    assert base in siblings, f"job {job!r} belongs to no step of this scope ({sorted(siblings)})"
    return base


def scope_file(index: PipelineIndex, scope: Scope, job_file: str) -> str:
    if scope.owner is None:
        return job_file
    return f"components/{scope.owner}{'__else' if scope.branch == 'else' else ''}.yml"


def compiled_edges(jobs: dict[str, Any], siblings: set[str]) -> dict[str, set[str]]:
    """Sibling → siblings it binds to (data or control), read from the compiled jobs."""
    edges: dict[str, set[str]] = {s: set() for s in siblings}
    for name, job in jobs.items():
        if name == "finally":
            continue
        user = owner(name, siblings)
        text = yaml.safe_dump({k: v for k, v in job.items() if k != "component"})
        if job.get("type") == "command":
            text += yaml.safe_dump(job["component"].get("inputs") or {})
        for target in _JOBS.findall(text):
            producer = owner(target, siblings)
            if producer != user:
                edges[user].add(producer)
    return edges


def check_graph(loaded: Any, compiled: dict[str, str]) -> None:
    """Assert that jobs, bindings, conditions and loops map one to one onto the pipeline's IR.

    Azure ML has no local executor: this equivalence check is what stands in for running
    the job (the conformance suite's stage (c) for this target).
    """
    from pipecast.ir.refs import single_ref

    loaded = loaded.lowered()  # compile_pipeline compiles the lowered IR
    index = loaded.index
    files = docs(compiled)
    job_file = f"{loaded.pipeline.name}.yml"
    for scope in index.scopes():
        doc = files[scope_file(index, scope, job_file)]
        jobs = doc["jobs"]
        siblings = set(scope.steps)
        # Every job belongs to one step of this scope, and every step has its jobs.
        owners = {name for name in jobs if name != "finally"}
        assert {n.rsplit("__", 1)[0] if n not in siblings else n for n in owners} == siblings
        for name, node in scope.steps.items():
            if node.is_task:
                job = jobs[name]
                assert job["type"] == "command"
                spec = json.loads(_spec_arg(job["component"]["command"]))
                assert spec["step"] == name and spec["run"] == node.task.run.to_data()
                assert set(job["component"].get("outputs") or {}) - {"pipecast_done"} == set(
                    node.task.outputs
                )
                if node.task.when is not None:
                    _check_condition(jobs, name, name, node.task.when)
            elif node.group.is_loop:
                loop = jobs[name]
                assert loop["type"] == "parallel_for"
                assert loop["body"] == f"${{{{parent.jobs.{name}__body}}}}"
                assert jobs[f"{name}__body"]["component"].endswith(f"{name}.yml")
                assert loop.get("max_concurrency") == node.group.parallelism
                body = files[f"components/{name}.yml"]
                assert set(body.get("outputs") or {}) == set(node.group.outputs)
                var = f"item__{node.group.as_}"
                if isinstance(node.group.for_each, list):
                    items = json.loads(loop["items"])
                    # Every item travels as one line of JSON without '$' (see item_text).
                    assert [json.loads(i[var]) for i in items] == node.group.for_each
                    assert "$" not in loop["items"] and "\n" not in loop["items"]
                else:
                    assert loop["items"] == f"${{{{parent.jobs.{name}__items.outputs.items}}}}"
                    ref = single_ref(node.group.for_each)
                    bound = jobs[f"{name}__items"]["inputs"]["values"]
                    assert (ref.name in bound) and (ref.kind != "step" or ref.key in bound)
            else:
                _check_condition(jobs, name, name, node.group.when)
                if_job = jobs[f"{name}__if"]
                assert if_job["true_block"] == f"${{{{parent.jobs.{name}}}}}"
                assert ("false_block" in if_job) == (node.group.else_ is not None)
        # Dependencies: exactly the IR's (data and `after`), no more, no less.
        expected = {k: set(v) for k, v in index.deps(scope).items()}
        assert compiled_edges(jobs, siblings) == expected
    root = files[job_file]
    assert ("on_finalize" in root["settings"]) == (index.finally_node is not None)
    assert set(root.get("inputs") or {}) == set(loaded.pipeline.params)


def _spec_arg(command: str) -> str:
    import shlex

    words = shlex.split(command)
    return words[words.index("--spec") + 1]


def _check_condition(jobs, owner_name, then_block, when):
    cond = jobs[f"{owner_name}__cond"]
    spec = json.loads(_spec_arg(cond["component"]["command"]))
    assert spec["inputs"]["when"]["value"] == when
    assert cond["component"]["outputs"]["result"] == {"type": "boolean", "is_control": True}
    if_job = jobs[f"{owner_name}__if"]
    assert if_job["condition"] == f"${{{{parent.jobs.{owner_name}__cond.outputs.result}}}}"
    assert if_job["true_block"] == f"${{{{parent.jobs.{then_block}}}}}"


class AzureMLConformance(Conformance):
    """Conformance hooks: Azure ML has no local engine; "executing" is :func:`check_graph`."""

    settings: ClassVar[Mapping[str, Any]] = SETTINGS

    def execute(self, job: Job) -> None:
        check_graph(job.loaded, dict(job.files))
