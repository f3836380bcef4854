"""SPEC §14 on Azure ML: artifact parameters and import steps are pipeline data inputs
(``uri_folder``/``uri_file`` with ``path``); checked by ``load_job`` + ``_validate()``, the graph
check, and by running the compiled command lines with the inputs mounted from local folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from azml_helpers import REPO, check_graph, compile_file
from test_azureml_gating import execute

from pipecast.diagnostics import UserError

pytestmark = pytest.mark.azureml

DATA = REPO / "tests/conformance/cases/import_data/parts"
PIPELINE = """
pipecast: 1
name: import-azure
params:
  parts: {type: Dataset, default: "azureml://datastores/workspaceblobstore/paths/parts/"}
  names: {type: list, default: [a.txt, c.txt]}
steps:
  folder:
    import: {uri: "{{ params.parts }}", metadata: {origin: test}}
  model:
    import: {uri: "https://example.blob.core.windows.net/models/a.txt", type: Model}
  count:
    run: {python: "cstep:count_folder"}
    inputs: {path: "{{ steps.folder.outputs.artifact }}"}
    outputs: {output: int}
  direct:
    run: {python: "cstep:count_folder"}
    inputs: {path: "{{ params.parts }}"}
    outputs: {output: int}
    after: [model]
  each:
    for_each: "{{ params.names }}"
    as: name
    steps:
      read:
        run: {python: "cstep:read_file"}
        inputs: {path: "{{ steps.model.outputs.artifact }}"}
        outputs: {output: str}
    outputs: {texts: "{{ steps.read.outputs.output }}"}
outputs:
  texts: "{{ steps.each.outputs.texts }}"
"""


def test_imports_are_data_inputs_with_a_path(tmp_path: Path) -> None:
    from pipecast_azureml.validate import validate_files

    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE)
    loaded, result = compile_file(path)
    check_graph(loaded, dict(result.files))
    assert not [d for d in validate_files(result.files) if d.severity == "error"]
    job = yaml.safe_load(result.files["import-azure.yml"])
    assert job["inputs"]["parts"] == {
        "type": "uri_folder",
        "path": "azureml://datastores/workspaceblobstore/paths/parts/",
    }
    assert job["inputs"]["model__artifact"] == {
        "type": "uri_file",
        "path": "https://example.blob.core.windows.net/models/a.txt",
    }
    # the import of a parameter reads that parameter's input; no job stands for an import
    assert job["jobs"]["count"]["inputs"]["path"] == "${{parent.inputs.parts}}"
    assert "folder" not in job["jobs"] and "model" not in job["jobs"]
    assert "after__model" not in (job["jobs"]["direct"].get("inputs") or {})


def test_imports_run_with_the_inputs_mounted(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE)
    local = execute(path, {"parts": str(DATA), "model__artifact": str(DATA / "a.txt")}, tmp_path)
    count = len([p for p in DATA.iterdir() if not p.name.startswith(".")])
    assert local.ran["count"]["output"] == local.ran["direct"]["output"] == str(count)
    text = (DATA / "a.txt").read_text()
    assert [local.ran[f"each[{i}]/read"]["output"] for i in (0, 1)] == [text, text]


@pytest.mark.parametrize(
    ("old", "new", "where", "words"),
    [
        ("https://example.blob.core.windows.net/models/a.txt", "s3://bucket/a.txt",
         ("steps", "model", "import", "uri"), "cannot read"),
        ("https://example.blob.core.windows.net/models/a.txt", "https://x/{{ params.names }}",
         ("steps", "model", "import", "uri"), "from references"),
        ("https://example.blob.core.windows.net/models/a.txt", "models/a.txt",
         ("steps", "model", "import", "uri"), "local path"),
    ],
)  # fmt: skip
def test_what_azure_ml_cannot_read_is_a_named_error(tmp_path, old, new, where, words) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE.replace(old, new))
    with pytest.raises(UserError) as err:
        compile_file(path)
    diag = err.value.diagnostics[0]
    assert tuple(diag.path) == where and words in diag.message and diag.line is not None
    assert "'model'" in diag.message
