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
    except UnicodeDecodeError as exc:
        raise UserError(
            Diagnostic(
                f"secrets file {path} is not UTF-8 text (byte {exc.start})",
                hint="save it as UTF-8 with one secret-name=value per line",
                file=str(path),
            )
        ) from None
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


#: Secret values shorter than this are never replaced inside other text: a secret ``e``
#: would turn ``hello`` into ``h***llo`` (issue 15). They are masked only where a whole
#: value equals them, and the run warns that they are too short to hide.
MIN_MASK_LENGTH = 6


class Masker:
    """Hides secret values in what pipecast shows or stores (logs, the run record, the
    journal); the values a step hands to the next one are never masked."""

    def __init__(self, values: Iterable[str]) -> None:
        distinct = {v for v in values if v}
        #: Replaced wherever they occur, longest first.
        self.long = sorted((v for v in distinct if len(v) >= MIN_MASK_LENGTH), key=len, reverse=True)
        #: Replaced only as whole values.
        self.short = frozenset(v for v in distinct if len(v) < MIN_MASK_LENGTH)

    def __bool__(self) -> bool:
        return bool(self.long or self.short)

    def mask(self, value: Any) -> Any:
        """Replace secret values inside strings (recursively) with ``***``."""
        if not self:
            return value
        if isinstance(value, str):
            if value in self.short:
                return MASK
            for s in self.long:
                if s in value:
                    value = value.replace(s, MASK)
            return value
        if isinstance(value, list):
            return [self.mask(v) for v in value]
        if isinstance(value, dict):
            return {k: self.mask(v) for k, v in value.items()}
        return value

    def holds(self, value: Any) -> bool:
        """Whether a value contains a secret (masking would change it)."""
        return bool(self) and self.mask(value) != value


def short_secret_warnings(values: Mapping[str, str]) -> list[str]:
    """One warning per secret too short to be masked inside text."""
    return [
        f"secret {name!r} is shorter than {MIN_MASK_LENGTH} characters: it is masked only where a "
        "whole value equals it, not inside logs or longer text; use a longer secret"
        for name, value in sorted(values.items())
        if value and len(value) < MIN_MASK_LENGTH
    ]


def mask(value: Any, secrets: list[str]) -> Any:
    """Replace secret values inside strings (recursively) with ``***`` (see :class:`Masker`)."""
    return Masker(secrets).mask(value)
