"""Conventions: how one target hands a step its inputs and reads its outputs.

Each module of this package (``base`` aside) defines one
:class:`~pipecast.runtime.conventions.base.Convention` subclass named like the module; a
distribution that brings its own convention registers the class under the entry-point group
``pipecast.conventions`` instead. :func:`load` finds one by name (``--convention <name>``),
importing only its module, so a step image never imports another target's SDK. The modules
here ship with the runtime because a step image installs ``pipecast`` alone.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from importlib.metadata import EntryPoint, entry_points

from pipecast.runtime.conventions.base import Convention

#: Entry-point group of conventions that other distributions provide.
GROUP = "pipecast.conventions"


@cache
def _modules() -> dict[str, str]:
    """Conventions that ship with the runtime: name → module."""
    return {
        m.name: f"{__name__}.{m.name}"
        for m in pkgutil.iter_modules(__path__)
        if m.name != "base" and not m.name.startswith("_")
    }


@cache
def _plugins() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def names() -> list[str]:
    return sorted(set(_modules()) | set(_plugins()))


def load(name: str) -> type[Convention]:
    """The convention class called ``name``.

    Raises:
        KeyError: unknown name (the message lists the known ones).
        ImportError: the module defines no convention of that name.
    """
    plugin = _plugins().get(name)
    if plugin is not None:
        cls = plugin.load()
        if not (isinstance(cls, type) and issubclass(cls, Convention)):
            raise ImportError(f"entry point {GROUP}:{name} does not name a Convention subclass")
        return cls
    module_name = _modules().get(name)
    if module_name is None:
        raise KeyError(f"unknown convention {name!r}; use one of: {', '.join(names())}")
    module = importlib.import_module(module_name)
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, Convention) and getattr(value, "name", None) == name:
            return value
    raise ImportError(f"{module_name} defines no Convention subclass named {name!r}")


__all__ = ["GROUP", "Convention", "load", "names"]
