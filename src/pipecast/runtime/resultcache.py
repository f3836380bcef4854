"""The step runtime's own result cache (SPEC §20) for targets without a native one.

Entries live in the target's artifact store, under the ``store`` of the step spec's
:class:`~pipecast.runtime.spec.CacheSpec` (an ``s3://`` prefix on Step Functions, a folder
under ``artifact_root`` on Airflow)::

    <store>/<key[:2]>/<key>/entry.json        {"created": <unix time>, "step": ..., "outputs": {...}}
    <store>/<key[:2]>/<key>/<output name>     a copy of each artifact output (file or folder)

``outputs`` maps each parameter output to ``{"value": v}`` and each artifact output to
``{"artifact": <uri or path of the copy>}``. The entry is written last, so a reader never
sees an entry whose artifacts are missing. A hit copies the artifacts to the step's output
paths and hands the outputs to the convention as if the step had run; the step's code does
not run. Cost per hit: one GET of ``entry.json`` plus the artifacts' download; per miss: one
GET (404), then one PUT of ``entry.json`` and an upload of each artifact output.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipecast.io import atomic_write
from pipecast.ir.models import PythonRun
from pipecast.runtime import s3io
from pipecast.runtime._values import is_artifact
from pipecast.runtime.cachekey import code_parts, hash_file_tree, signature
from pipecast.runtime.conventions.base import ConventionError, is_artifact_input
from pipecast.runtime.spec import StepSpec

ENTRY = "entry.json"


def step_key(spec: StepSpec, inputs: Mapping[str, Any], roots: Sequence[str]) -> str:
    """The SPEC §20 signature of this step run (``inputs`` as staged: artifacts as local paths)."""
    assert spec.cache is not None
    code = code_parts(spec.run.module, roots) if isinstance(spec.run, PythonRun) else []

    def feed(h: Any) -> None:
        for name in sorted(inputs):
            h.update(name.encode() + b"=")
            value = inputs[name]
            if is_artifact_input(spec, name) and value is not None:
                for path in value if isinstance(value, list) else [value]:
                    h.update(b"A")
                    hash_file_tree(Path(str(path)), h)
                    h.update(b",")
            else:
                h.update(json.dumps(value, sort_keys=True).encode())

    return signature(spec.cache.definition, code, spec.cache.version, feed)


class ResultStore:
    """Entries under one ``store`` (``s3://bucket/prefix`` or a local folder)."""

    def __init__(self, store: str) -> None:
        self.store = store.rstrip("/")
        self.s3 = store.startswith("s3://")

    def _dir(self, key: str) -> str:
        return f"{self.store}/{key[:2]}/{key}"

    def get(self, key: str, max_age: float | None) -> dict[str, Any] | None:
        """The entry stored under ``key``, or ``None`` (absent, unreadable, or too old)."""
        uri = f"{self._dir(key)}/{ENTRY}"
        try:
            if self.s3:
                bucket, obj = s3io.split(uri)
                body = s3io.client().get_object(Bucket=bucket, Key=obj)["Body"].read()
            else:
                body = Path(uri).read_bytes()
            data = json.loads(body)
        except Exception:  # absent (404/ENOENT) or unreadable: a miss, never a failure
            return None
        if not isinstance(data, dict) or not isinstance(data.get("outputs"), dict):
            return None
        if max_age is not None and time.time() - float(data.get("created", 0)) > max_age:
            return None
        return data

    def put(self, key: str, spec: StepSpec, outputs: Mapping[str, Any]) -> None:
        """Store a successful run's outputs (artifacts copied into the store), entry last."""
        folder = self._dir(key)
        stored: dict[str, Any] = {}
        for name in sorted(spec.outputs):
            value = outputs.get(name)
            if is_artifact(spec.outputs[name]) and value is not None:
                local = Path(str(value))
                if self.s3:
                    stored[name] = {"artifact": s3io.upload(local, folder, name)}
                else:
                    dest = Path(folder) / name
                    s3io.copy_local(local, dest)
                    stored[name] = {"artifact": str(dest)}
            else:
                stored[name] = {"value": value}
        # Not sort_keys: a dict output must be restored with its keys in stored order (SPEC §22).
        entry = json.dumps({"created": time.time(), "step": spec.step, "outputs": stored})
        if self.s3:
            s3io.put_text(f"{folder}/{ENTRY}", entry)
        else:
            atomic_write(Path(folder) / ENTRY, entry)

    def restore(
        self, entry: Mapping[str, Any], spec: StepSpec, paths: Mapping[str, Path], workdir: Path
    ) -> dict[str, Any] | None:
        """The outputs of a hit, artifacts copied to the step's output ``paths`` (``None``: the
        entry does not match the step's outputs or an artifact is gone, so the step runs)."""
        stored = entry["outputs"]
        if set(stored) != set(spec.outputs):
            return None
        out: dict[str, Any] = {}
        try:
            for name in sorted(spec.outputs):
                item = stored[name]
                if not isinstance(item, dict):
                    return None
                if "artifact" in item:
                    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
                    local = s3io.download(str(item["artifact"]), workdir / "cache" / digest)
                    s3io.copy_local(local, paths[name])
                    out[name] = str(paths[name])
                else:
                    out[name] = item.get("value")
        except (ConventionError, OSError):
            return None
        return out
