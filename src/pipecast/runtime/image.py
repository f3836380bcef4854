"""``pipecast image FILE``: the Dockerfile of a pipeline's step image.

The image holds a base image (``defaults.image``, else ``python:3.11-slim``), the pipecast
runtime (core only), the project's ``requirements.txt`` if there is one next to the pipeline
file, and the project folder itself at ``/app`` (first on the steps' ``sys.path``). Build it
with the pipeline's folder as context: ``docker build -f Dockerfile <folder>``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pipecast.diagnostics import Diagnostic, UserError

DEFAULT_BASE = "python:3.11-slim"
# A Docker image reference: [registry[:port]/]name[:tag][@digest]. FROM takes it unquoted, so
# anything else (spaces, newlines, quotes) must be refused rather than rendered.
_IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/:@]*$")


def default_pipecast_spec() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"pipecast=={version('pipecast')}"
    except PackageNotFoundError:
        return "pipecast"


def render_dockerfile(
    *,
    pipeline: str,
    base_image: str,
    has_requirements: bool,
    pipecast_spec: str | None = None,
    extra_requirements: Sequence[str] = (),
    context_hint: str = ".",
) -> str:
    """Render ``templates/step-image/Dockerfile.j2``."""
    from pipecast.templating import render

    if not _IMAGE_RE.match(base_image):
        raise UserError(
            Diagnostic(
                f"{base_image!r} is not a container image reference",
                ("defaults", "image"),
                hint="use a name like python:3.11-slim or registry.example.com/team/image:tag",
            )
        )
    for req in (pipecast_spec or "", *extra_requirements):
        if "\n" in req or "\r" in req:
            raise UserError(f"pip requirement {req!r} spans several lines")
    # The context hint is a shell-ish comment only; keep it on one line.
    hint = " ".join(context_hint.split()) or "."
    return render(
        "step-image/Dockerfile.j2",
        pipeline=pipeline,
        base_image=base_image,
        has_requirements=has_requirements,
        pipecast_spec=pipecast_spec or default_pipecast_spec(),
        extra_requirements=list(extra_requirements),
        context_hint=hint,
    )


def render_for_file(
    path: Path,
    *,
    base_image: str | None = None,
    pipecast_spec: str | None = None,
    extra_requirements: Sequence[str] = (),
) -> str:
    """The step image Dockerfile for the pipeline in ``path``."""
    from pipecast.loader import load

    loaded = load(path)
    folder = Path(path).resolve().parent
    base = base_image or loaded.pipeline.defaults.image or DEFAULT_BASE
    try:
        return render_dockerfile(
            pipeline=loaded.pipeline.name,
            base_image=base,
            has_requirements=(folder / "requirements.txt").is_file(),
            pipecast_spec=pipecast_spec,
            extra_requirements=extra_requirements,
            context_hint=str(Path(path).parent) if str(Path(path).parent) else ".",
        )
    except UserError as exc:
        raise UserError([d.located(loaded.source) for d in exc.diagnostics]) from None
