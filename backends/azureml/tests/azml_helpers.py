"""Compile helpers and the graph read back from compiled Azure ML files (for equivalence tests)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pipecast_azureml.local import check_graph

from pipecast import api
from pipecast.backend import CompileResult
from pipecast.conformance import Conformance, Job

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = sorted([*REPO.glob("examples/*/pipeline.yaml"), *REPO.glob("examples/*/pipeline.py")])
CASES = sorted((REPO / "tests/conformance/cases").glob("*.yaml"))
#: Pipelines Azure ML cannot express, with the named error code pipecast gives.
UNSUPPORTED: dict[str, str] = {}
SETTINGS = {
    "serverless": True,
    "image": "example.azurecr.io/steps:1",
    "key_vault_url": "https://kv-test.vault.azure.net",
}


def label(path: Path) -> str:
    return f"{path.parent.name}/{path.name}" if path.parent.parent.name == "examples" else path.name


def compile_file(path: Path, settings: dict[str, Any] | None = None) -> tuple[Any, CompileResult]:
    loaded = api.load_checked(path)
    return loaded, api.compile_pipeline(loaded, "azureml", dict(SETTINGS if settings is None else settings))


class AzureMLConformance(Conformance):
    """Conformance hooks: Azure ML has no local engine; "executing" is :func:`check_graph`."""

    settings: ClassVar[Mapping[str, Any]] = SETTINGS

    def execute(self, job: Job) -> None:
        check_graph(job.loaded, dict(job.files))
