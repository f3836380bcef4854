"""A group's own ``finally`` (SPEC §18), a sub-pipeline's included (SPEC §17), on Azure ML.

Azure ML runs a job after a failure only when ``settings.on_finalize`` names it, and only at
the root pipeline job. These tests pin both halves of that: pipecast refuses the feature with
the named error of SPEC §13 (file:line:col, the ``finally`` path, what to do instead), and
Azure ML's own SDK refuses what a native lowering would have to write (a pipeline component
node with ``settings.on_finalize``), so the refusal stays honest when the SDK changes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from azml_helpers import REPO, SETTINGS

from pipecast import api
from pipecast.diagnostics import UserError

pytestmark = pytest.mark.azureml

CASES = REPO / "tests/conformance/cases"


@pytest.mark.parametrize(
    ("case", "line", "column", "path", "step"),
    [
        # A sub-pipeline keeping its finally: the error points at the `uses:` step.
        ("subpipeline_finally", 10, 7, ("steps", "each", "steps", "job", "finally"), "job"),
        ("group_finally_failure", 15, 5, ("steps", "guarded", "finally"), "guarded"),
    ],
)
def test_group_finally_is_the_named_error(
    case: str, line: int, column: int, path: tuple[str, ...], step: str
) -> None:
    loaded = api.load_checked(CASES / f"{case}.yaml")
    with pytest.raises(UserError) as err:
        api.compile_pipeline(loaded, "azureml", dict(SETTINGS))
    (diag,) = [d for d in err.value.diagnostics if d.code == "unsupported-feature"]
    assert (diag.line, diag.column, tuple(diag.path)) == (line, column, path)
    assert "target 'azureml' does not support group finally (group.status)" in diag.message
    assert f"step {step!r}" in diag.message
    assert "pipeline's 'finally'" in (diag.hint or "")


def test_azure_ml_refuses_on_finalize_inside_a_pipeline_component(tmp_path: Path) -> None:
    """What a native lowering would write: the group as a pipeline component node whose
    ``settings.on_finalize`` names its cleanup job. ``load_job`` + ``_validate()`` refuse it
    (https://learn.microsoft.com/en-us/azure/machine-learning/reference-yaml-job-pipeline:
    ``on_finalize`` is a setting of the pipeline job; the pipeline component schema,
    https://learn.microsoft.com/en-us/azure/machine-learning/reference-yaml-component-pipeline,
    has no ``settings``)."""
    from pipecast_azureml.validate import load_and_validate

    env = "azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest"
    (tmp_path / "group.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/pipelineComponent.schema.json\n"
        "type: pipeline\nname: group\njobs:\n"
        f"  step:\n    type: command\n    command: echo step\n    environment: {env}\n"
        f"  cleanup:\n    type: command\n    command: echo cleanup\n    environment: {env}\n",
        encoding="utf-8",
    )
    job = tmp_path / "job.yml"
    job.write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json\n"
        "type: pipeline\nsettings:\n  default_compute: azureml:cpu-cluster\njobs:\n"
        "  group:\n    type: pipeline\n    component: ./group.yml\n"
        "    settings:\n      on_finalize: cleanup\n",
        encoding="utf-8",
    )
    problems = [d.message for d in load_and_validate(job)]
    assert problems == [
        "azure.ai.ml job._validate(): jobs.group.settings.on_finalize: "
        "On_finalize is not supported for pipeline component."
    ]
