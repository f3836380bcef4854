"""Check compiled files with the real tools: the protobuf schema, our reference checks,
and the kfp SDK's component loader."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pipecast.diagnostics import Diagnostic
from pipecast_vertex.checks import check_references


def parse_spec(text: str, filename: str) -> dict[str, Any]:
    if filename.endswith(".json"):
        return json.loads(text)
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def strict_parse(data: dict[str, Any]) -> Any:
    """``ParseDict`` into ``PipelineSpec``: unknown fields and bad enums raise."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    return json_format.ParseDict(data, pipeline_spec_pb2.PipelineSpec())


def validate_files(files: Mapping[str, str]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for name, text in sorted(files.items()):
        if name.endswith(".schedule.json"):
            data = json.loads(text)
            spec = data["createPipelineJobRequest"]["pipelineJob"]["pipelineSpec"]
            out.extend(_validate_spec(name, spec))
            continue
        spec = parse_spec(text, name)
        out.extend(_validate_spec(name, spec))
        out.extend(_kfp_load(name, text))
    return out


def _validate_spec(name: str, spec: dict[str, Any]) -> list[Diagnostic]:
    from google.protobuf import json_format

    out = []
    try:
        strict_parse(spec)
    except json_format.ParseError as exc:
        out.append(Diagnostic(f"{name}: not a valid PipelineSpec: {exc}", code="invalid-output", file=name))
    for problem in check_references(spec):
        out.append(Diagnostic(f"{name}: {problem}", code="invalid-output", file=name))
    return out


def _kfp_load(name: str, text: str) -> list[Diagnostic]:
    from kfp import components

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(text)
        try:
            components.load_component_from_file(str(path))
        except Exception as exc:  # the loader raises many kinds; all mean "kfp rejects it"
            return [Diagnostic(f"{name}: kfp cannot load it: {exc}", code="invalid-output", file=name)]
    return []
