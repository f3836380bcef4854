"""Step caching (``cache: true``): a finished step is reused when nothing that could change
its result changed.

The key covers the step's definition (run, inputs as written, outputs, env, image), its
resolved inputs (artifacts by content), and its code: for python steps the source of the
module that defines the function, found without importing it; for container steps the
image and command (part of the definition). Entries live in ``<runs root>/.cache/``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

from pipecast.io import atomic_write
from pipecast.ir.models import PythonRun
from pipecast.simulator.values import art_exists, from_record, hash_value, to_record

KEY_VERSION = b"pipecast-cache-1"


def module_source(module: str, search: list[str]) -> bytes | None:
    """The source of ``module`` as the step would import it (pipeline folder first)."""
    rel = module.replace(".", os.sep)
    for root in search:
        for candidate in (Path(root) / f"{rel}.py", Path(root) / rel / "__init__.py"):
            if candidate.is_file():
                return candidate.read_bytes()
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is not None and spec.origin and os.path.isfile(spec.origin):
        return Path(spec.origin).read_bytes()
    return None


class Cache:
    """The cache store of one runs root."""

    def __init__(self, root: Path, python_path: list[str]) -> None:
        self.root = root
        self.search = [*python_path, os.getcwd(), *sys.path]
        self._sources: dict[str, bytes | None] = {}

    def key(self, definition: dict[str, Any], inputs: dict[str, Any], run: Any) -> str:
        h = hashlib.sha256(KEY_VERSION)
        h.update(json.dumps(definition, sort_keys=True, default=str).encode())
        for name in sorted(inputs):
            h.update(name.encode() + b"=")
            hash_value(inputs[name], h)
        if isinstance(run, PythonRun):
            if run.module not in self._sources:
                self._sources[run.module] = module_source(run.module, self.search)
            h.update(self._sources[run.module] or b"<no source>")
        return h.hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str, types: dict[str, str]) -> dict[str, Any] | None:
        """A stored entry ``{run_id, step, outputs}`` (outputs rebuilt), or ``None``.

        An entry whose artifacts were deleted (the run folder removed) is a miss.
        """
        path = self._path(key)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        outputs = {n: from_record(v, types.get(n, "any")) for n, v in data.get("outputs", {}).items()}
        if set(outputs) != set(types) or not all(art_exists(v) for v in outputs.values()):
            return None
        data["outputs"] = outputs
        return data

    def put(self, key: str, run_id: str, step: str, outputs: dict[str, Any]) -> None:
        payload = {"run_id": run_id, "step": step, "outputs": {n: to_record(v) for n, v in outputs.items()}}
        atomic_write(self._path(key), json.dumps(payload, sort_keys=True))
