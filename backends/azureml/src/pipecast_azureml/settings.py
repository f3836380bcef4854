"""Target settings of the Azure ML backend (SPEC §11): where and how the pipeline job runs.

Nothing here is required to compile. Cloud coordinates that were not given are written as
marked placeholders (``<set workspace>``) where a file needs them, compile warns about each,
and ``deploy`` refuses to run until they are set.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from pipecast.backend import Settings

_COMPUTE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,31}$")
_VAULT_RE = re.compile(r"^https://[A-Za-z0-9-]{3,24}\.vault\.(azure\.net|azure\.cn|usgovcloudapi\.net)/?$")


class AzureMLSettings(Settings):
    """Settings for ``--target azureml``.

    Attributes:
        subscription_id: Azure subscription (deploy only).
        resource_group: resource group of the workspace (deploy only).
        workspace: Azure ML workspace name (deploy only).
        experiment_name: the experiment the job runs under (default: the pipeline's name).
        default_compute: compute cluster for steps without GPUs (``settings.default_compute``).
        computes: VM size → compute target name, for steps whose resources need a given
            size (see the resources table in docs/targets/azureml.md). GPU steps must find
            their size here unless ``serverless`` is on.
        serverless: run on serverless compute: every job gets ``resources.instance_type``
            from the resources table and no compute target.
        datastore: the datastore outputs are written to (``settings.default_datastore``).
        image: image for python steps that set none (``defaults.image`` wins); it must
            contain the step code, pipecast and (for parameter outputs) ``azureml-mlflow``.
        environment: a registered environment (``azureml:name:version``) used instead of
            an inline image environment for python steps without an image.
        key_vault_url: the Key Vault the runtime reads ``secrets`` from
            (``https://<vault>.vault.azure.net``).
        python: the interpreter in the images that runs ``-m pipecast.runtime``.
        continue_on_step_failure: Azure ML's job setting; ``false`` matches SPEC §10.
    """

    subscription_id: str | None = None
    resource_group: str | None = None
    workspace: str | None = None
    experiment_name: str | None = None
    default_compute: str = "cpu-cluster"
    computes: dict[str, str] = Field(default_factory=dict)
    serverless: bool = False
    datastore: str = "workspaceblobstore"
    image: str | None = None
    environment: str | None = None
    key_vault_url: str | None = None
    python: str = "python"
    continue_on_step_failure: bool = False

    @field_validator("default_compute")
    @classmethod
    def _compute(cls, v: str) -> str:
        name = v.removeprefix("azureml:")
        if not _COMPUTE_RE.match(name):
            raise ValueError(
                f"{v!r} is not an Azure ML compute name (2-32 letters, digits and '-', starting with a letter)"
            )
        return name

    @field_validator("computes")
    @classmethod
    def _computes(cls, v: dict[str, str]) -> dict[str, str]:
        from pipecast_azureml.resources import VM_SIZES

        out = {}
        for size, name in v.items():
            if size not in VM_SIZES:
                from pipecast.passes.analysis import nearest

                best = nearest(size, list(VM_SIZES))
                raise ValueError(
                    f"unknown VM size {size!r}"
                    + (f" (did you mean {best!r}?)" if best else "")
                    + "; the sizes pipecast picks are listed in docs/targets/azureml.md"
                )
            out[size] = cls._compute(name)
        return out

    @field_validator("key_vault_url")
    @classmethod
    def _vault(cls, v: str | None) -> str | None:
        if v is not None and not _VAULT_RE.match(v):
            raise ValueError(f"{v!r} is not a Key Vault URL (https://<vault-name>.vault.azure.net)")
        return v.rstrip("/") if v else v

    @field_validator("environment")
    @classmethod
    def _environment(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^azureml:[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+|@latest)$", v):
            raise ValueError(f"{v!r} is not a registered environment reference (azureml:<name>:<version>)")
        return v
