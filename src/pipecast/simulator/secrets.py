"""Secrets for local runs (SPEC §9): values come from a dotenv file or the environment,
looked up by the secret's *name*; they reach the step as environment variables and are
masked (``***``) in logs and in the run record."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipecast.diagnostics import Diagnostic, UserError

MASK = "***"


def env_name(secret: str) -> str:
    """The environment variable that may hold a secret: ``churn-api-token`` → ``CHURN_API_TOKEN``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", secret).upper()


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a dotenv file: ``NAME=value`` lines, ``#`` comments, optional quotes, ``export``."""
    out: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(Diagnostic(f"cannot read secrets file {path}: {exc.strerror or exc}")) from None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise UserError(
                Diagnostic(
                    f"{path}:{lineno}: not a NAME=value line",
                    hint="write one secret per line as secret-name=value",
                )
            )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[name.strip()] = value
    return out


def resolve(names: Iterable[tuple[str, str]], given: Mapping[str, str]) -> dict[str, str]:
    """Secret name → value for every ``(step, secret name)`` used.

    Looks in ``given`` (the secrets file, or the API's ``secrets=``), then the environment
    under the exact name, then under :func:`env_name`. Every missing secret is reported at
    once, before anything runs.
    """
    values: dict[str, str] = {}
    missing: list[Diagnostic] = []
    for step, name in names:
        if name in values:
            continue
        for source in (given.get(name), os.environ.get(name), os.environ.get(env_name(name))):
            if source is not None:
                values[name] = source
                break
        else:
            missing.append(
                Diagnostic(
                    f"secret {name!r} (used by step {step!r}) has no value",
                    ("steps", step, "secrets"),
                    hint=f"set the environment variable {env_name(name)} or put '{name}=...' in a file "
                    "passed with --secrets FILE",
                    code="secret",
                )
            )
    if missing:
        raise UserError(missing)
    return values


def mask(value: Any, secrets: list[str]) -> Any:
    """Replace secret values inside strings (recursively) with ``***``."""
    if not secrets:
        return value
    if isinstance(value, str):
        for s in secrets:
            if s and s in value:
                value = value.replace(s, MASK)
        return value
    if isinstance(value, list):
        return [mask(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: mask(v, secrets) for k, v in value.items()}
    return value
