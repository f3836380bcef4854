"""Check compiled files with Azure ML's own SDK, offline: ``load_job`` then ``job._validate()``.

``load_job`` reads the job and every component file it references; ``_validate()`` adds
compute/environment checks. Neither catches an undeclared ``${{inputs.X}}`` inside a command
or a cycle, so :mod:`pipecast_azureml.checks` runs first. if_else and parallel_for nodes
load only with ``AZURE_ML_CLI_PRIVATE_FEATURES_ENABLED=true``, which is set here for the
process before the SDK is first imported: the SDK reads it once, when it builds its schemas.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipecast.diagnostics import Diagnostic
from pipecast_azureml.backend import PRIVATE_FEATURES_ENV
from pipecast_azureml.checks import check_files


def enable_private_features() -> None:
    """Switch on if_else/parallel_for in the SDK; must run before ``azure.ai.ml`` is imported."""
    import sys

    if os.environ.get(PRIVATE_FEATURES_ENV, "").lower() != "true" and "azure.ai.ml" in sys.modules:
        # Too late for this process: the schemas were built without control flow nodes.
        raise RuntimeError(
            f"azure.ai.ml was imported before {PRIVATE_FEATURES_ENV}=true was set; "
            "set it in the environment before anything imports the SDK"
        )
    os.environ[PRIVATE_FEATURES_ENV] = "true"
    # The SDK logs "Class X: This is an experimental class..." for its own schemas on every
    # load; that says nothing about the user's files, so `compile --check` does not show it.
    logging.getLogger("azure.ai.ml._utils._experimental").setLevel(logging.ERROR)


@contextmanager
def private_features() -> Any:
    enable_private_features()
    yield


def job_files(files: Mapping[str, str]) -> list[str]:
    """The pipeline job files among the compiled files (not components, not schedules)."""
    return sorted(rel for rel, text in files.items() if "/" not in rel and "pipelineJob.schema.json" in text)


def load_and_validate(path: Path) -> list[Diagnostic]:
    """``load_job(path)`` and ``job._validate()``; problems as diagnostics."""
    enable_private_features()
    from azure.ai.ml import load_job

    with private_features():
        try:
            job = load_job(path)
        except Exception as exc:  # the SDK raises marshmallow/ValidationException with the details
            return [Diagnostic(f"azure.ai.ml.load_job: {exc}", file=path.name, code="azureml-sdk")]
        result = job._validate()  # type: ignore[attr-defined]
    if result.passed:
        return []
    return [
        Diagnostic(f"azure.ai.ml job._validate(): {where}: {message}", file=path.name, code="azureml-sdk")
        for where, message in sorted(result.error_messages.items())
    ]


def validate_files(files: Mapping[str, str]) -> list[Diagnostic]:
    """pipecast's checks, then the SDK's, over files written to a temporary folder.

    Without the SDK (``pip install 'pipecast-azureml[check]'``) only pipecast's checks run and a
    ``no-validator`` warning says so; an SDK imported too early (see
    :func:`enable_private_features`) is an error, not a silent pass.
    """
    out = check_files(files)
    try:
        enable_private_features()
        import azure.ai.ml  # noqa: F401
    except ImportError:
        return [
            *out,
            Diagnostic(
                "azure-ai-ml is not installed: only pipecast's own checks ran",
                hint="pip install 'pipecast-azureml[check]'",
                severity="warning",
                code="no-validator",
            ),
        ]
    except RuntimeError as exc:
        return [*out, Diagnostic(str(exc), code="azureml-sdk")]
    with tempfile.TemporaryDirectory(prefix="pipecast-azureml-") as tmp:
        root = Path(tmp)
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text, encoding="utf-8")
        for rel in job_files(files):
            out.extend(load_and_validate(root / rel))
        for rel in sorted(files):
            if rel.endswith(".schedule.yml"):
                out.extend(_load_schedule(root / rel))
    return out


def _load_schedule(path: Path) -> list[Diagnostic]:
    enable_private_features()
    from azure.ai.ml.entities._load_functions import load_schedule

    with private_features():
        try:
            load_schedule(path)
        except Exception as exc:
            return [Diagnostic(f"azure.ai.ml.load_schedule: {exc}", file=path.name, code="azureml-sdk")]
    return []
