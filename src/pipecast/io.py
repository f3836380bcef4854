"""File output that never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

_UMASK: int | None = None


def umask() -> int:
    """The process's umask, read without changing it where the OS allows (other threads may
    be creating files: setting it to 0 even briefly would make their files world-writable)."""
    global _UMASK
    if _UMASK is None:
        try:
            with open("/proc/self/status") as fh:
                line = next(ln for ln in fh if ln.startswith("Umask:"))
            _UMASK = int(line.split()[1], 8)
        except (OSError, StopIteration, ValueError):
            old = os.umask(0o022)
            os.umask(old)
            _UMASK = old
    return _UMASK


def atomic_write(path: Path, text: str | bytes) -> None:
    """Write to a temporary file in the same folder, fsync it, then rename over ``path``.

    The file gets the mode a plain ``open()`` would give it (``0o666`` less the umask), not
    the temporary file's ``0o600``: a compiled DAG must be readable by the Airflow user.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode() if isinstance(text, str) else text
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dump_json(data: Any) -> str:
    """Deterministic JSON: sorted keys, two-space indent, trailing newline."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def dump_yaml(data: Any) -> str:
    """Deterministic YAML: sorted keys, block style, safe dumper."""
    import yaml

    # libyaml's emitter (when present) is much faster on large specs and emits the same text.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(
        data, Dumper=dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=100
    )
