"""``pipecast init``: a new project from ``templates/project/``.

A project is one of the examples (``examples/<example>/``: the pipeline and its step code)
with the pipeline renamed, plus files rendered from ``templates/project/common/`` (README,
tests that run the pipeline in the simulator, a settings file per installed target with placeholders
(each backend's ``templates/settings.yaml.j2``),
pyproject). Templates and examples ship inside the wheel (``pipecast/_templates``,
``pipecast/_examples``), so this works from any install.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

from pipecast.diagnostics import Diagnostic, UserError
from pipecast.ir import values

EXAMPLES = {
    "churn": "an artifact parameter for the base dataset, ingest, a per-region training fan-out, an "
    "evaluate step reporting metrics, a when/else group on a metric and a finally step",
    "sweep": "a nested learning-rate by depth sweep with a when/else in every cell",
    "containers": "container steps only: parameter outputs, file and folder artifacts, a task-level when",
}
#: The ``pipecast run`` flags each example needs in the simulator. churn's base dataset
#: defaults to a remote URI (what a cloud target reads); the simulator reads the copy shipped
#: in the example's data/ folder (a relative path is relative to the pipeline file).
RUN_FLAGS = {
    "churn": " --param data_uri=data/customers.csv",
    "sweep": "",
    "containers": " --containers host",
}
_NAME_LINE = re.compile(r"^name:[^\n]*$", re.MULTILINE)
#: Files named without their leading dot in the templates (hatch and some tools skip dotfiles).
_RENAMES = {"gitignore": ".gitignore"}


def _project_root() -> Path:
    from pipecast.templating import template_root

    return template_root() / "project"


#: The example's own README (the project gets one rendered from common/) and its DSL twin
#: (which would keep the example's pipeline name) stay behind.
_NOT_COPIED = frozenset({Path("README.md"), Path("pipeline.py")})


def _examples_root() -> Path:
    """The examples: the packaged copy in a wheel install, else the source tree's."""
    packaged = Path(__file__).parent / "_examples"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "examples"


def check_name(name: str) -> str:
    """A project name must be a valid pipeline name (SPEC §2)."""
    if not values.PIPELINE_NAME_RE.match(name):
        fixed = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
        if fixed and not fixed[0].isalpha():
            fixed = "p-" + fixed
        raise UserError(
            Diagnostic(
                f"project name {name!r} is not a valid pipeline name (^[a-z][a-z0-9-]{{0,62}}$)",
                hint=f"try {fixed[:63]!r}" if fixed else "use lower-case letters, digits and '-'",
                code="usage",
            )
        )
    return name


def create(name: str, target: Path, example: str = "churn") -> list[Path]:
    """Create a project in ``target`` (which must not exist or be empty).

    Args:
        name: project and pipeline name.
        target: the folder to create.
        example: ``churn``, ``sweep`` or ``containers``.

    Returns:
        The files written, sorted.

    Raises:
        UserError: bad name or example, or a non-empty target folder.
    """
    from pipecast.templating import environment

    check_name(name)
    if example not in EXAMPLES:
        from pipecast.passes.analysis import nearest

        best = nearest(example, list(EXAMPLES))
        raise UserError(
            Diagnostic(
                f"unknown example {example!r}",
                hint=f"did you mean {best!r}?" if best else f"use one of: {', '.join(EXAMPLES)}",
                code="usage",
            )
        )
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(
            Diagnostic(
                f"{target} already exists and is not empty; pipecast init never overwrites files",
                hint="pick a new folder with --dir, or remove that one first",
                code="exists",
            )
        )
    root = _project_root()
    source = _examples_root() / example
    module = next(
        (p.name for p in sorted(source.iterdir()) if p.is_dir() and (p / "__init__.py").exists()), None
    )
    files: dict[Path, str | bytes] = {}
    for path in sorted(source.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        rel = path.relative_to(source)
        if rel in _NOT_COPIED:
            continue
        if rel == Path("pipeline.yaml"):
            text, count = _NAME_LINE.subn(f"name: {name}", path.read_text(encoding="utf-8"), count=1)
            assert count == 1, "example pipeline without a top-level name line"
            files[rel] = text
        else:
            files[rel] = path.read_bytes()
    context = {
        "name": name,
        "example": example,
        "module": module,
        "summary": EXAMPLES[example],
        "run_flags": RUN_FLAGS[example],
    }
    common = root / "common"
    for path in sorted(common.rglob("*.j2")):
        rel = path.relative_to(common).with_suffix("")
        rel = rel.with_name(_RENAMES.get(rel.name, rel.name))
        template = environment().get_template(path.relative_to(root.parent).as_posix())
        files[rel] = template.render(**context)
    files.update(_settings_files(context))
    written = []
    target.mkdir(parents=True, exist_ok=True)
    try:
        for rel, content in sorted(files.items()):
            out = target / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                out.write_bytes(content)
            else:
                out.write_text(content, encoding="utf-8")
            written.append(out)
    except OSError as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise UserError(Diagnostic(f"cannot write the project to {target}: {exc}")) from None
    return written


def _settings_files(context: dict[str, Any]) -> dict[Path, str | bytes]:
    """``settings/<target>.yaml`` for every installed target that ships a settings template
    (``templates/settings.yaml.j2`` in its package)."""
    from pipecast import registry
    from pipecast.templating import render_package

    out: dict[Path, str | bytes] = {}
    for name in registry.available():
        module = sys.modules[type(registry.get(name)).__module__]
        if module.__file__ and (Path(module.__file__).parent / "templates" / "settings.yaml.j2").is_file():
            out[Path("settings") / f"{name}.yaml"] = render_package(
                module.__file__, "settings.yaml.j2", **context
            )
    return out
