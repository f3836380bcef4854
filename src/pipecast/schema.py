"""JSON Schema (draft 2020-12) of pipeline files, for editors and other tools.

The schema comes from the pydantic models and is then tightened with what the models
check in validators (name patterns, accelerator names, a group's one-of ``for_each`` /
``when``), so an editor flags most mistakes as they are typed. Whole-pipeline rules
(references, scope, cycles) stay with ``pipecast validate``.
"""

from __future__ import annotations

from typing import Any

from pipecast.ir import values
from pipecast.ir.models import ComponentFile, Pipeline, UsesStep

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://pipecast.dev/schema/pipeline-v1.json"
COMPONENT_SCHEMA_ID = "https://pipecast.dev/schema/component-v1.json"

_STEP_NAMES = {"pattern": values.STEP_NAME_RE.pattern, "not": {"const": "finally"}}
_IDENTS = {"pattern": values.IDENT_RE.pattern}


def pipeline_schema() -> dict[str, Any]:
    """The JSON Schema of a pipeline file (a fresh dict each call)."""
    schema = Pipeline.model_json_schema(by_alias=True, mode="validation")
    defs = schema["$defs"]
    schema = {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "title": "pipecast pipeline (format version 1)",
        **{k: v for k, v in schema.items() if k != "title"},
    }
    props = schema["properties"]
    props["pipecast"] = {"const": 1, "description": "format version"}
    props["name"] = {**props["name"], "pattern": values.PIPELINE_NAME_RE.pattern}
    props["params"]["propertyNames"] = {"pattern": values.PARAM_NAME_RE.pattern}
    props["steps"]["propertyNames"] = _STEP_NAMES
    props["steps"]["minProperties"] = 1
    props["outputs"]["propertyNames"] = _IDENTS
    for name in ("GroupStep", "ElseBranch"):
        defs[name]["properties"]["steps"]["propertyNames"] = _STEP_NAMES
        defs[name]["properties"]["steps"]["minProperties"] = 1
    group = defs["GroupStep"]
    group["oneOf"] = [
        {"required": ["for_each"], "not": {"anyOf": [{"required": ["when"]}, {"required": ["else"]}]}},
        {
            "required": ["when"],
            "not": {
                "anyOf": [{"required": ["for_each"]}, {"required": ["as"]}, {"required": ["parallelism"]}]
            },
        },
    ]
    group["properties"]["as"]["pattern"] = values.IDENT_RE.pattern
    # ``uses`` on a group is the IR's mark of a lowered sub-pipeline (SPEC §17), not file syntax.
    group["properties"].pop("uses", None)
    # SPEC §14: a task step has exactly one of ``run`` and ``import``.
    defs["TaskStep"]["oneOf"] = [{"required": ["run"]}, {"required": ["import"]}]
    defs["TaskStep"].pop("required", None)
    task = defs["TaskStep"]["properties"]
    for key in ("inputs", "outputs"):
        task[key]["propertyNames"] = _IDENTS
    for key in ("env", "secrets"):
        task[key]["propertyNames"] = {"pattern": values.ENV_NAME_RE.pattern}
    defs["Defaults"]["properties"]["env"]["propertyNames"] = {"pattern": values.ENV_NAME_RE.pattern}
    defs["PythonRun"]["properties"]["python"]["pattern"] = values.PYTHON_TARGET_RE.pattern
    res = defs["Resources"]["properties"]
    res["accelerator"] = {
        "anyOf": [{"enum": list(values.ACCELERATORS)}, {"type": "null"}],
        "default": None,
        "title": "Accelerator",
    }
    res["memory"] = {
        "anyOf": [
            {"type": "string", "pattern": r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti)?$"},
            {"type": "integer", "minimum": 1},
            {"type": "null"},
        ],
        "default": None,
        "title": "Memory",
    }
    _add_uses_steps(schema)
    return schema


def _add_uses_steps(schema: dict[str, Any]) -> None:
    """SPEC §16-§17: a step may be ``uses: <file>`` with inputs and overrides (the loader
    replaces it; the IR never holds one). ``finally`` may use a component too."""
    defs = schema["$defs"]
    uses = UsesStep.model_json_schema(by_alias=True, mode="validation")
    for name, sub in uses.pop("$defs", {}).items():
        defs.setdefault(name, sub)
    uses["properties"]["inputs"]["propertyNames"] = _IDENTS
    uses["properties"]["outputs"]["propertyNames"] = _IDENTS
    defs["UsesStep"] = uses
    ref = {"$ref": "#/$defs/UsesStep"}
    for steps in (
        schema["properties"]["steps"],
        *(defs[n]["properties"]["steps"] for n in ("GroupStep", "ElseBranch")),
    ):
        steps["additionalProperties"]["oneOf"].append(ref)
    fin = schema["properties"]["finally"]
    fin["anyOf"] = [ref if alt == {"type": "null"} else alt for alt in fin["anyOf"]] + [{"type": "null"}]


def component_schema() -> dict[str, Any]:
    """The JSON Schema of a component file (SPEC §16)."""
    schema = ComponentFile.model_json_schema(by_alias=True, mode="validation")
    schema = {
        "$schema": SCHEMA_DIALECT,
        "$id": COMPONENT_SCHEMA_ID,
        "title": "pipecast component (format version 1)",
        **{k: v for k, v in schema.items() if k != "title"},
    }
    props = schema["properties"]
    props["pipecast"] = {"const": 1, "description": "format version"}
    props["component"] = {**props["component"], "pattern": values.STEP_NAME_RE.pattern}
    for key in ("inputs", "outputs"):
        props[key]["propertyNames"] = _IDENTS
    # An input is {type, default?, description?} or just its type's name.
    spec = props["inputs"]["additionalProperties"]
    props["inputs"]["additionalProperties"] = {
        "anyOf": [spec, schema["$defs"]["ComponentInput"]["properties"]["type"]]
    }
    return schema
