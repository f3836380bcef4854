"""Secrets (SPEC §9): resolved by name at step start from the target's store.

Every store's client library is imported only when a step uses that store, so a step image
needs only the SDK of its own target. Values are returned to the core, which puts them in the
step's environment and masks them in logs and error summaries; they are never printed.

Stores (``StepSpec.secret_store``):

* ``env``: the variable ``PIPECAST_SECRET_<NAME>``, else ``<NAME>`` (the secret name upper-cased,
  every character other than a letter or digit turned into ``_``). The simulator and tests use it.
* ``aws``: AWS Secrets Manager ``GetSecretValue(SecretId=name)`` (a name or an ARN) via boto3.
* ``gcp``: Google Secret Manager (``google-cloud-secret-manager``); a short name is read from
  ``projects/$GOOGLE_CLOUD_PROJECT/secrets/<name>/versions/latest``.
* ``azure``: Azure Key Vault (``azure-keyvault-secrets`` + ``azure-identity``), vault URL from
  ``PIPECAST_AZURE_KEYVAULT_URL`` (or ``AZURE_KEYVAULT_URL``).
* ``airflow``: an Airflow Variable of that name.

A distribution can add a store: a function ``name -> value`` (raising :class:`SecretError`)
registered under the entry-point group ``pipecast.secret_stores``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping


class SecretError(Exception):
    """A secret could not be resolved (the message names the secret, never a value)."""


def env_names(name: str) -> list[str]:
    """The environment variables that may hold secret ``name`` in the ``env`` store, in order."""
    upper = re.sub(r"[^A-Za-z0-9]", "_", name).upper()
    return [f"PIPECAST_SECRET_{upper}", upper]


def _from_env(name: str) -> str:
    for var in env_names(name):
        if var in os.environ:
            return os.environ[var]
    raise SecretError(f"secret {name!r} is not set; export {' or '.join(env_names(name))}")


def _from_aws(name: str) -> str:
    from pipecast.runtime import aws

    try:
        sm = aws.client("secretsmanager")
    except ModuleNotFoundError as exc:
        raise SecretError(str(exc)) from None
    try:
        resp = sm.get_secret_value(SecretId=name)
    except Exception as exc:
        raise SecretError(f"cannot read secret {name!r} from AWS Secrets Manager: {_brief(exc)}") from None
    if "SecretString" in resp:
        return str(resp["SecretString"])
    return bytes(resp["SecretBinary"]).decode("utf-8")


def _from_gcp(name: str) -> str:
    try:
        from google.cloud import secretmanager  # type: ignore[attr-defined]
    except ImportError:
        raise SecretError(
            "secret store 'gcp' needs google-cloud-secret-manager in the step image "
            "(pip install google-cloud-secret-manager)"
        ) from None
    if not name.startswith("projects/"):
        project = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("CLOUDSDK_CORE_PROJECT")
        if not project:
            raise SecretError(
                f"secret {name!r} is a short name: set GOOGLE_CLOUD_PROJECT or use "
                "projects/<project>/secrets/<name>"
            )
        name = f"projects/{project}/secrets/{name}"
    if "/versions/" not in name:
        name += "/versions/latest"
    try:
        resp = secretmanager.SecretManagerServiceClient().access_secret_version(name=name)
    except Exception as exc:
        raise SecretError(f"cannot read secret {name!r} from Google Secret Manager: {_brief(exc)}") from None
    return str(resp.payload.data.decode("utf-8"))


def _from_azure(name: str) -> str:
    try:
        from azure.identity import DefaultAzureCredential
        from azure.keyvault.secrets import SecretClient
    except ImportError:
        raise SecretError(
            "secret store 'azure' needs azure-keyvault-secrets and azure-identity in the step image"
        ) from None
    url = os.environ.get("PIPECAST_AZURE_KEYVAULT_URL") or os.environ.get("AZURE_KEYVAULT_URL")
    if not url:
        raise SecretError(
            "secret store 'azure' needs the vault URL in PIPECAST_AZURE_KEYVAULT_URL "
            "(https://<vault>.vault.azure.net)"
        )
    try:
        value = SecretClient(vault_url=url, credential=DefaultAzureCredential()).get_secret(name).value
    except Exception as exc:
        raise SecretError(f"cannot read secret {name!r} from Azure Key Vault {url}: {_brief(exc)}") from None
    if value is None:
        raise SecretError(f"secret {name!r} in Azure Key Vault {url} has no value")
    return str(value)


def _from_airflow(name: str) -> str:
    try:
        from airflow.sdk import Variable
    except ImportError:
        try:
            from airflow.models import Variable  # type: ignore[no-redef]
        except ImportError:
            raise SecretError("secret store 'airflow' needs Airflow in the step's environment") from None
    try:
        return str(Variable.get(name))
    except Exception as exc:
        raise SecretError(f"cannot read Airflow Variable {name!r}: {_brief(exc)}") from None


def _brief(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


#: Entry-point group of secret stores that other distributions provide.
GROUP = "pipecast.secret_stores"

#: The stores that ship with the runtime (a step image installs ``pipecast`` alone).
BUILTIN: dict[str, Callable[[str], str]] = {
    "env": _from_env,
    "aws": _from_aws,
    "gcp": _from_gcp,
    "azure": _from_azure,
    "airflow": _from_airflow,
}


def store_names() -> list[str]:
    from importlib.metadata import entry_points

    return sorted(set(BUILTIN) | {ep.name for ep in entry_points(group=GROUP)})


def _store(store: str) -> Callable[[str], str]:
    if store in BUILTIN:
        return BUILTIN[store]
    from importlib.metadata import entry_points

    for ep in entry_points(group=GROUP, name=store):
        fetch: Callable[[str], str] = ep.load()
        return fetch
    raise SecretError(f"unknown secret store {store!r}; use one of: {', '.join(store_names())}")


def resolve(secrets: Mapping[str, str], store: str) -> dict[str, str]:
    """``{ENV_VAR: secret name}`` → ``{ENV_VAR: value}`` from ``store`` (each name read once)."""
    if not secrets:
        return {}
    fetch = _store(store)
    cache: dict[str, str] = {}
    out: dict[str, str] = {}
    for var, name in sorted(secrets.items()):
        if name not in cache:
            cache[name] = fetch(name)
        out[var] = cache[name]
    return out


def mask_text(text: str, values: list[str] | tuple[str, ...]) -> str:
    """Replace every secret value in ``text`` by ``***`` (longest first)."""
    for value in sorted((v for v in values if v), key=len, reverse=True):
        text = text.replace(value, "***")
    return text
