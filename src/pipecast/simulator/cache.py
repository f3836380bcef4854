"""Step caching (``cache: true``, SPEC §20): a finished step is reused when nothing that could
change its result changed.

The key is the SPEC §20 signature of :mod:`pipecast.runtime.cachekey` (the step runtime's
cache on cloud targets uses the same one): the step's definition after defaults, its resolved
inputs (artifacts by content), the source of its python module and of every module it
imports from the pipeline's folder (installed packages by name and version), and
``cache.version``. An entry older than ``cache.max_age`` is a miss. Entries live in
``<runs root>/.cache/``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipecast.io import atomic_write
from pipecast.ir.models import PythonRun
from pipecast.runtime.cachekey import code_parts, definition_digest, signature
from pipecast.simulator.values import art_exists, from_record, hash_value, to_record


class Cache:
    """The cache store of one runs root."""

    def __init__(self, root: Path, python_path: list[str]) -> None:
        self.root = root
        #: Where a step's own modules are looked for: the pipeline's folder first, then the
        #: working directory (SPEC §3.1); installed packages count by version instead.
        self.roots = [*python_path, os.getcwd()]
        self._code: dict[str, list[str]] = {}

    def key(
        self, definition: Mapping[str, Any], inputs: dict[str, Any], run: Any, version: str | None = None
    ) -> str:
        code: list[str] = []
        if isinstance(run, PythonRun):
            if run.module not in self._code:
                self._code[run.module] = code_parts(run.module, self.roots)
            code = self._code[run.module]

        def feed(h: Any) -> None:
            for name in sorted(inputs):
                h.update(name.encode() + b"=")
                hash_value(inputs[name], h)

        return signature(definition_digest(definition), code, version, feed)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str, types: dict[str, str], max_age: float | None = None) -> dict[str, Any] | None:
        """A stored entry ``{run_id, step, outputs}`` (outputs rebuilt), or ``None``.

        An entry whose artifacts were deleted (the run folder removed), or older than
        ``max_age`` seconds, is a miss.
        """
        path = self._path(key)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if max_age is not None and time.time() - float(data.get("created", 0)) > max_age:
            return None
        outputs = {n: from_record(v, types.get(n, "any")) for n, v in data.get("outputs", {}).items()}
        if set(outputs) != set(types) or not all(art_exists(v) for v in outputs.values()):
            return None
        data["outputs"] = outputs
        return data

    def put(self, key: str, run_id: str, step: str, outputs: dict[str, Any]) -> None:
        payload = {
            "run_id": run_id,
            "step": step,
            "created": time.time(),
            "outputs": {n: to_record(v) for n, v in outputs.items()},
        }
        atomic_write(self._path(key), json.dumps(payload, sort_keys=True))
