"""Target settings of the Vertex backend (SPEC §11): where and how the pipeline runs.

Nothing here is required to compile: missing cloud coordinates are written as marked
placeholders (``<set project>``) in the files that need them, and ``deploy`` refuses to
run until they are set.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from pipecast.backend import Settings

_LABEL_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}$")


class VertexSettings(Settings):
    """Settings for ``--target vertex``.

    Attributes:
        project: Google Cloud project id (needed to deploy and in the schedule request).
        region: Vertex AI region.
        pipeline_root: ``gs://`` folder where Vertex stores artifacts of each run.
        service_account: the service account the run uses (Vertex's default if unset).
        network: full VPC network name for peering (``projects/N/global/networks/X``).
        labels: labels on every pipeline job (GCP label rules).
        format: ``yaml`` (default; what the kfp SDK writes) or ``json``.
        image: image for python steps that set none (``defaults.image`` wins); it must
            contain the step code and pipecast.
        python: the interpreter in the images that runs ``-m pipecast.runtime``.
        secret_store: where the runtime resolves ``secrets`` by name: ``gcp`` (Google Secret
            Manager, the default) or ``env`` (variables already in the container).
        enable_caching: the job-level caching switch passed on deploy; ``None`` keeps
            each step's ``cache`` setting (off unless the step asks).
    """

    project: str | None = None
    region: str = "us-central1"
    pipeline_root: str | None = None
    service_account: str | None = None
    network: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    format: Literal["yaml", "json"] = "yaml"
    image: str | None = None
    python: str = "python"
    secret_store: Literal["gcp", "env"] = "gcp"
    enable_caching: bool | None = None

    @field_validator("pipeline_root")
    @classmethod
    def _gcs(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("gs://"):
            raise ValueError(f"pipeline_root must be a gs:// folder, got {v!r}")
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        if not re.match(r"^[a-z]+-[a-z]+[0-9]+$", v):
            raise ValueError(f"{v!r} is not a Google Cloud region (e.g. us-central1, europe-west4)")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            if not _LABEL_RE.match(key) or not _LABEL_VALUE_RE.match(value):
                raise ValueError(
                    f"label {key}={value!r}: keys start with a lower-case letter; keys and values "
                    "hold lower-case letters, digits, '_' and '-' (at most 63 characters)"
                )
        return v
