"""Compile helpers and the graph read back from compiled Azure ML files (for equivalence tests)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from pipecast import api
from pipecast.backend import CompileResult
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
