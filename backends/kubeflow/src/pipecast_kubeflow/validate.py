"""Check compiled files with the real tools: the Vertex checks of the PipelineSpec document,
kfp-kubernetes' protobuf classes for the PlatformSpec document, and kfp's loader for both."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml
from pipecast_vertex.validate import _kfp_load, _validate_spec

from pipecast.diagnostics import Diagnostic


def split_documents(text: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The PipelineSpec and the PlatformSpec (``None`` when absent) of a compiled file."""
    docs = list(yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    if len(docs) == 1:
        return docs[0], None
    spec, platform = docs
    return spec, platform


def check_platform(platform: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """Problems of a PlatformSpec: strict protobuf parses, and executors that exist."""
    from google.protobuf import json_format
    from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s
    from kfp.pipeline_spec import pipeline_spec_pb2 as pb

    problems = []
    try:
        json_format.ParseDict(platform, pb.PlatformSpec())
    except json_format.ParseError as exc:
        return [f"not a valid PlatformSpec: {exc}"]
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    known = spec.get("deploymentSpec", {}).get("executors", {})
    for label, config in sorted(executors.items()):
        if label not in known:
            problems.append(f"platform executor {label!r} is not an executor of the PipelineSpec")
        try:
            json_format.ParseDict(config, k8s.KubernetesExecutorConfig())
        except json_format.ParseError as exc:
            problems.append(f"platform executor {label!r}: not a KubernetesExecutorConfig: {exc}")
    return problems


def validate_files(files: Mapping[str, str]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for name, text in sorted(files.items()):
        if name.endswith(".schedule.json"):
            out.extend(_recurring_run(name, json.loads(text)))
            continue
        spec, platform = split_documents(text)
        out.extend(_validate_spec(name, spec))
        if platform is not None:
            for problem in check_platform(platform, spec):
                out.append(Diagnostic(f"{name}: {problem}", code="invalid-output", file=name))
        out.extend(_kfp_load(name, text))
    return out


def _recurring_run(name: str, body: dict[str, Any]) -> list[Diagnostic]:
    """The body must build the ``V2beta1RecurringRun`` kfp's REST client sends."""
    from kfp_server_api import ApiClient
    from kfp_server_api.models import V2beta1RecurringRun

    try:
        ApiClient()._ApiClient__deserialize(body, V2beta1RecurringRun)  # type: ignore[attr-defined]
    except Exception as exc:  # the generated client raises ValueError/TypeError for bad fields
        return [Diagnostic(f"{name}: not a V2beta1RecurringRun: {exc}", code="invalid-output", file=name)]
    return []
