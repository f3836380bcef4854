"""Conformance hooks of the kubeflow backend: the Vertex backend's kfp.local executor with
Kubeflow settings (the PlatformSpec document rides along; kfp.local ignores it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from kfp_local import VertexConformance


class KubeflowConformance(VertexConformance):
    settings: ClassVar[Mapping[str, Any]] = {
        "image": "python:3.11-slim",
        "pipeline_root": "minio://pipecast-conformance/runs",
    }

    def settings_for(self, secrets: Mapping[str, str]) -> dict[str, Any]:
        # Secrets always reach the runtime as PIPECAST_SECRET_<NAME> (secretAsEnv on a cluster).
        return dict(self.settings)
