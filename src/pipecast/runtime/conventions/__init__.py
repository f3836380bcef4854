"""Conventions: how one target hands a step its inputs and reads its outputs.

Each module here defines one :class:`~pipecast.runtime.conventions.base.Convention`
subclass; :func:`load` finds it by name (``--convention <name>``), importing only that
module so a step image never imports another target's SDK.
"""

from __future__ import annotations

import importlib

from pipecast.runtime.conventions.base import Convention

#: name -> module; backends add their own module here (kfp, azureml, airflow).
KNOWN = {
    "local": "pipecast.runtime.conventions.local",
    "s3": "pipecast.runtime.conventions.s3",
    "sagemaker": "pipecast.runtime.conventions.sagemaker",
    "kfp": "pipecast.runtime.conventions.kfp",
    "azureml": "pipecast.runtime.conventions.azureml",
    "airflow": "pipecast.runtime.conventions.airflow",
}


def names() -> list[str]:
    return sorted(KNOWN)


def load(name: str) -> type[Convention]:
    """The convention class called ``name``.

    Raises:
        KeyError: unknown name (the message lists the known ones).
        ImportError: the module exists in the table but is not installed/written yet.
    """
    if name not in KNOWN:
        raise KeyError(f"unknown convention {name!r}; use one of: {', '.join(names())}")
    module = importlib.import_module(KNOWN[name])
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, Convention) and getattr(value, "name", None) == name:
            return value
    raise ImportError(f"{KNOWN[name]} defines no Convention subclass named {name!r}")


__all__ = ["KNOWN", "Convention", "load", "names"]
