"""The cache signature of a task step (SPEC §20), shared by the simulator and the step runtime.

A step's signature covers:

* its definition after defaults (``run``, ``image``, ``env``, ``resources``, ``retry``,
  ``timeout``, output types): :func:`definition_digest`, computed where the pipeline is known
  (the simulator, or a compiler that embeds it in the step spec);
* its input values, artifacts by content (the caller feeds them);
* its code: the source of the python function's module and of every module it imports,
  transitively, from the pipeline's folder (the ``roots``), and each installed distribution
  it imports by name and version (:func:`code_parts`); the standard library does not count;
* the cache ``version`` string.

Imports are found by reading the source (``ast``), never by importing it, so computing a
signature runs no user code. Imports inside functions and ``try`` blocks count too.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

KEY_VERSION = b"pipecast-cache-2"
#: Fields of an effective task definition that enter the signature (SPEC §20).
DEFINITION_FIELDS = ("run", "image", "env", "resources", "retry", "timeout", "outputs")


def definition_digest(definition: Mapping[str, Any]) -> str:
    """SHA-256 of the definition fields (JSON, sorted keys); unknown fields are ignored."""
    data = {k: definition.get(k) for k in DEFINITION_FIELDS}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _is_installed(path: str) -> bool:
    prefixes = {str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    return any(path.startswith(p + os.sep) for p in prefixes)


def _local_file(module: str, roots: Sequence[str]) -> Path | None:
    """The file of ``module`` under one of ``roots`` (not inside an installed environment)."""
    rel = module.replace(".", os.sep)
    for root in roots:
        for candidate in (Path(root) / f"{rel}.py", Path(root) / rel / "__init__.py"):
            if candidate.is_file() and not _is_installed(str(candidate.resolve())):
                return candidate
    return None


@functools.lru_cache(maxsize=1)
def _distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _distribution_parts(top: str) -> list[str]:
    out = []
    for dist in sorted(set(_distributions().get(top, []))):
        try:
            out.append(f"pkg {dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> list[str]:
    """Every module name an import statement of ``module`` may load (parents included)."""
    names: list[str] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.append(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                if node.level - 1 > len(parts):
                    continue
                base_parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            if base:
                names.append(base)
            # ``from pkg import name``: ``name`` may be a submodule.
            names.extend(f"{base}.{a.name}" if base else a.name for a in node.names if a.name != "*")
    out: list[str] = []
    for name in names:
        pieces = name.split(".")
        out.extend(".".join(pieces[: i + 1]) for i in range(len(pieces)))
    return out


def code_parts(module: str, roots: Sequence[str]) -> list[str]:
    """What the signature takes from a python step's code, as sorted lines.

    ``src <module> <sha256>`` per module found under ``roots`` (the pipeline's folder first;
    the function's module and, transitively, what it imports), ``pkg <dist>==<version>`` per
    installed distribution imported on the way; ``nosrc <module>`` when the function's own
    module cannot be found (its code is only in the step's image).
    """
    parts: set[str] = set()
    seen: set[str] = set()
    # Importing ``pkg.mod`` runs ``pkg/__init__.py`` first: its parents count too.
    pieces = module.split(".")
    queue = [".".join(pieces[: i + 1]) for i in range(len(pieces))]
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _local_file(name, roots)
        if path is None:
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in sys.builtin_module_names:
                continue
            found = _distribution_parts(top)
            parts.update(found)
            if name == module and not found:
                parts.add(_installed_source(module))
            continue
        source = path.read_bytes()
        parts.add(f"src {name} {hashlib.sha256(source).hexdigest()}")
        try:
            tree = ast.parse(source, filename=str(path))
        except (SyntaxError, ValueError):
            continue
        queue.extend(_imported_names(tree, name, path.name == "__init__.py"))
    return sorted(parts)


def _installed_source(module: str) -> str:
    """A module outside the roots and outside any distribution: its source, if findable."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin and os.path.isfile(spec.origin):
        return f"src {module} {hashlib.sha256(Path(spec.origin).read_bytes()).hexdigest()}"
    return f"nosrc {module}"


def hash_file_tree(path: Path, h: Any) -> None:
    """Feed an artifact (a file, or a folder tree by relative names) into a hash, by content."""
    if path.is_dir():
        for sub in sorted(path.rglob("*")):
            if sub.is_file():
                h.update(str(sub.relative_to(path).as_posix()).encode() + b"\0")
                h.update(hashlib.sha256(sub.read_bytes()).digest())
    elif path.is_file():
        h.update(hashlib.sha256(path.read_bytes()).digest())
    else:
        h.update(b"<missing>")


def signature(
    definition: str,
    code: Sequence[str],
    version: str | None,
    feed_inputs: Callable[[Any], None],
) -> str:
    """The SPEC §20 signature (hex SHA-256).

    Args:
        definition: :func:`definition_digest` of the step's effective definition.
        code: :func:`code_parts` (empty for container steps: their image and command are
            part of the definition).
        version: the ``cache.version`` string, if any.
        feed_inputs: feeds the input values (artifacts by content) into the hash.
    """
    h = hashlib.sha256(KEY_VERSION)
    h.update(definition.encode() + b"\0")
    for line in code:
        h.update(line.encode() + b"\n")
    h.update(b"version=" + json.dumps(version).encode() + b"\0")
    feed_inputs(h)
    return h.hexdigest()
