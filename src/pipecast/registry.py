"""Backend discovery by entry point (group ``pipecast.backends``), loaded lazily.

Listing backends reads entry-point metadata only; a backend's module (and the cloud
SDKs it may import) is imported when that backend is asked for by name.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib.metadata import EntryPoint, entry_points

from pipecast.backend import Backend
from pipecast.diagnostics import Diagnostic, UserError
from pipecast.passes.analysis import nearest

GROUP = "pipecast.backends"

#: Targets of this project that ship as separate distributions, ``pipecast-<name>`` (so an
#: uninstalled one gets "pip install pipecast-<name>"). The one line a new backend adds here.
DISTRIBUTED = ("airflow", "azureml", "kubeflow", "stepfunctions", "vertex")


def distribution(name: str) -> str:
    """The distribution that provides target ``name``."""
    return f"pipecast-{name}" if name in DISTRIBUTED else f"the package that provides {name!r}"


@contextmanager
def extra_needed(target: str, extra: str, purpose: str) -> Iterator[None]:
    """Turn a missing SDK inside the block into a user error naming the extra to install.

    Every backend declares the SDKs of ``--check`` and ``deploy`` as the extras ``check`` and
    ``deploy`` of its distribution (``pip install 'pipecast-vertex[deploy]'``), so compiling
    needs none of them.
    """
    try:
        yield
    except ImportError as exc:
        module = (exc.name or str(exc)).split(".")[0]
        dist = f"pipecast-{target}" if target in DISTRIBUTED else None
        raise UserError(
            Diagnostic(
                f"{purpose} for target {target!r} needs the Python package {module!r}, which is not installed",
                hint=f"pip install '{dist}[{extra}]'"
                if dist
                else f"install the {extra!r} extra of the {target!r} backend",
                code="missing-extra",
            )
        ) from None


@cache
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available() -> list[str]:
    """Names of installed backends, ``local`` first, then alphabetical."""
    names = sorted(_entry_points())
    return sorted(names, key=lambda n: (n != "local", n))


@cache
def get(name: str) -> Backend:
    """Load and instantiate a backend by name.

    Raises:
        UserError: unknown name (with the nearest one), or the plugin failed to import
            (with what to install).
    """
    eps = _entry_points()
    ep = eps.get(name)
    if ep is None:
        known = available()
        hint = nearest(name, known)
        msg = f"unknown target {name!r}; installed targets: {', '.join(known) or 'none'}"
        if name in DISTRIBUTED:
            msg = f"target {name!r} is not installed"
            fix = f"pip install {distribution(name)}"
        else:
            fix = f"did you mean {hint!r}?" if hint else "run 'pipecast targets' to list targets"
        raise UserError(Diagnostic(msg, hint=fix, code="unknown-target"))
    try:
        cls = ep.load()
    except ImportError as exc:
        dist = distribution(name)
        raise UserError(
            Diagnostic(
                f"target {name!r} could not be loaded: {exc}",
                hint=f"pip install {dist} (and its dependencies)",
                code="backend-import",
            )
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise UserError(f"entry point {name!r} does not name a pipecast Backend class")
    return cls()
