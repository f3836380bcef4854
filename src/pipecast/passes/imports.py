"""Artifacts from outside the pipeline (SPEC §14): local paths, and where a target rejects them.

A relative path or ``file://`` URI is relative to the pipeline file's folder, never to the
working directory. The simulator reads it in place; a cloud target cannot read the user's
disk, so compiling a local path for one is an error that names the step and suggests an
upload (shared here so that every backend says it the same way).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pipecast.diagnostics import Diagnostic, YamlPath
from pipecast.ir import values
from pipecast.ir.refs import RefSyntaxError
from pipecast.passes.analysis import PipelineIndex
from pipecast.passes.parse import parse_template

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_local(uri: str) -> bool:
    """A path or ``file://`` URI (anything without another ``scheme://``)."""
    return uri.startswith("file://") or not _SCHEME.match(uri)


def local_path(uri: str, base_dir: Path) -> Path:
    """The absolute local path of a local URI, relative paths taken from ``base_dir``
    (the pipeline file's folder)."""
    # file://host/x is not a local file; file:///abs and file:rel (no //) are.
    text = unquote(urlparse(uri).path) if uri.startswith("file://") else uri
    path = Path(text).expanduser()
    return path if path.is_absolute() else (base_dir / path)


def render_uri(template: str, params: dict[str, Any], name: str = "", run_id: str = "") -> str:
    """An import URI with its references filled (params, ``pipeline.name``/``run_id``)."""
    if "{{" not in template:
        return template
    out: list[str] = []
    for part in parse_template(template):
        if isinstance(part, str):
            out.append(part)
            continue
        if part.kind == "loop":
            raise KeyError(part.name)  # known only at run time
        if part.kind == "param":
            value = params[part.name]
        elif part.name == "name":
            value = name
        else:
            value = run_id
        out.append(value if isinstance(value, str) else str(value))
    return "".join(out)


@dataclass(frozen=True)
class LocalUse:
    """A local path the pipeline reads: an import step's URI or an artifact param's default."""

    step: str | None
    path: YamlPath
    uri: str


def local_uses(index: PipelineIndex) -> Iterator[LocalUse]:
    """Local paths a compiled pipeline would read, with the params' defaults filled in.

    A URI that needs a param without a default is left out: its value comes at run time.
    """
    p = index.pipeline
    defaults = {n: prm.default for n, prm in p.params.items() if prm.has_default}
    for name, prm in p.params.items():
        if values.is_artifact(prm.type) and prm.has_default and is_local(prm.default):
            yield LocalUse(None, ("params", name, "default"), prm.default)
    for node in index.tasks():
        spec = node.task.import_
        if spec is None:
            continue
        try:
            uri = render_uri(spec.uri, defaults, p.name, "run")
        except (KeyError, RefSyntaxError):
            continue
        if is_local(uri):
            yield LocalUse(node.name, (*node.yaml_path, "import", "uri"), uri)


def local_path_errors(index: PipelineIndex, target: str) -> list[Diagnostic]:
    """SPEC §14: a cloud target rejects a local path at compile time (it cannot read your disk)."""
    out = []
    for use in local_uses(index):
        where = f"step {use.step!r} imports" if use.step else f"parameter {use.path[1]!r} defaults to"
        out.append(
            Diagnostic(
                f"target {target!r}: {where} the local path {use.uri!r}, which the target cannot read",
                use.path,
                hint="upload it to the target's storage (e.g. `aws s3 cp`, `gsutil cp`, `az storage blob "
                "upload`) and use that URI, or pass the URI with --param at run time",
                code="local-path",
            )
        )
    return out
