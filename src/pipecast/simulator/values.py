"""Values as the simulator holds them between steps.

Parameter values are plain JSON data. An artifact is an :class:`Art` (a local path); it
appears as a ``file://`` URI in the run record and as a local path to the step that reads
it. Collected outputs of a fan-out are lists, so conversion walks lists.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse


class Art:
    """An artifact stored at a local path (a file or a folder)."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    @property
    def uri(self) -> str:
        return Path(self.path).absolute().as_uri()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Art) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return f"Art({self.path!r})"


class Missing(Exception):
    """A value that does not exist because the step that makes it was skipped."""

    def __init__(self, step: str) -> None:
        super().__init__(step)
        self.step = step


def to_local(value: Any) -> Any:
    """Artifacts → local paths (what a step receives)."""
    if isinstance(value, Art):
        return value.path
    if isinstance(value, list) and value and _has_art(value):
        return [to_local(v) for v in value]
    return value


def to_record(value: Any) -> Any:
    """Artifacts → ``file://`` URIs (what the run record keeps)."""
    if isinstance(value, Art):
        return value.uri
    if isinstance(value, list) and value and _has_art(value):
        return [to_record(v) for v in value]
    return value


def _has_art(items: list[Any]) -> bool:
    first = items[0]
    return isinstance(first, Art) or (isinstance(first, list) and bool(first) and _has_art(first))


def from_record(value: Any, type_name: str) -> Any:
    """Rebuild an internal value from its record form, given its declared type."""
    if type_name in ("Dataset", "Model", "Metrics", "Artifact") and isinstance(value, str):
        return Art(uri_to_path(value))
    if type_name.startswith("list[") and isinstance(value, list):
        inner = type_name[5:-1]
        return [from_record(v, inner) for v in value]
    return value


def uri_to_path(uri: str) -> str:
    if uri.startswith("file://"):
        return unquote(urlparse(uri).path)
    return uri


def art_exists(value: Any) -> bool:
    """Whether every artifact in a value still exists on disk."""
    if isinstance(value, Art):
        return os.path.exists(value.path)
    if isinstance(value, list):
        return all(art_exists(v) for v in value)
    return True


def hash_value(value: Any, h: Any) -> None:
    """Feed a value into a hash; artifacts by content (files and folder trees)."""
    if isinstance(value, Art):
        h.update(b"A")
        _hash_path(Path(value.path), h)
    elif isinstance(value, list):
        h.update(b"[")
        for v in value:
            hash_value(v, h)
            h.update(b",")
        h.update(b"]")
    else:
        import json

        h.update(json.dumps(value, sort_keys=True).encode())


def _hash_path(path: Path, h: Any) -> None:
    if path.is_dir():
        for sub in sorted(path.rglob("*")):
            if sub.is_file():
                h.update(str(sub.relative_to(path)).encode() + b"\0")
                h.update(hashlib.sha256(sub.read_bytes()).digest())
    elif path.is_file():
        h.update(hashlib.sha256(path.read_bytes()).digest())
    else:
        h.update(b"<missing>")
