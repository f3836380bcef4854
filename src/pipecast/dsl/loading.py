"""Load a pipeline from a Python file written with the DSL.

The file is imported as a module named after its stem, with its folder first on
``sys.path`` — the same rule the step runtime uses to import ``run.python`` targets
(SPEC §3.1), so ``module:function`` strings recorded here import the same way there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from pipecast.diagnostics import Diagnostic, SourceMap, UserError
from pipecast.dsl.pipelines import PipelineDef
from pipecast.ir.models import Pipeline


def _local_names(folder: Path) -> set[str]:
    """Top-level module names the folder provides (``x.py`` files and ``x/`` packages)."""
    names = set()
    for entry in folder.iterdir():
        if entry.suffix == ".py":
            names.add(entry.stem)
        elif entry.is_dir() and (entry / "__init__.py").is_file():
            names.add(entry.name)
    return names


def _under(module: ModuleType, folder: str) -> bool:
    file = getattr(module, "__file__", None)
    return isinstance(file, str) and os.path.abspath(file).startswith(folder + os.sep)


@contextlib.contextmanager
def _imported(path: Path) -> Iterator[ModuleType]:
    """Import ``path`` with its folder first on ``sys.path``; undo both afterwards."""
    folder = path.parent
    folder_s = str(folder)
    name = path.stem
    local = _local_names(folder) | {name}
    # Modules of the same names from an earlier pipeline folder (every example has a
    # pipeline.py, several have steps.py) must not be reused: hide them while importing.
    shadowed = {
        key: mod
        for key, mod in list(sys.modules.items())
        if key.split(".")[0] in local and not _under(mod, folder_s)
    }
    for key in shadowed:
        del sys.modules[key]
    sys.path.insert(0, folder_s)
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise UserError(Diagnostic(f"cannot import {path}", file=str(path), code="dsl"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except UserError:
            raise
        except SyntaxError as exc:
            raise UserError(
                Diagnostic(
                    f"syntax error: {exc.msg}",
                    file=exc.filename or str(path),
                    line=exc.lineno,
                    column=exc.offset,
                    code="dsl",
                )
            ) from None
        except Exception as exc:
            raise _import_error(path, exc) from None
        yield module
    finally:
        if folder_s in sys.path:
            sys.path.remove(folder_s)
        for key, mod in list(sys.modules.items()):
            if key.split(".")[0] in local and (key == name or _under(mod, folder_s)):
                del sys.modules[key]
        sys.modules.update(shadowed)


def _import_error(path: Path, exc: BaseException) -> UserError:
    """An exception while importing the file, pointing at the deepest line in the user's files."""
    folder = str(path.parent.resolve())
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if os.path.abspath(f.filename).startswith(folder)
    ]
    frame = frames[-1] if frames else None
    return UserError(
        Diagnostic(
            f"importing {path.name} failed: {type(exc).__name__}: {exc}",
            file=frame.filename if frame else str(path),
            line=frame.lineno if frame else None,
            hint="the pipeline file and its step modules must import without errors",
            code="dsl",
        )
    )


def find_pipeline(module: ModuleType, path: Path) -> PipelineDef:
    """The module's one ``@pipeline`` (or its attribute ``pipeline`` when there are several)."""
    found = {k: v for k, v in vars(module).items() if isinstance(v, PipelineDef)}
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        raise UserError(
            Diagnostic(
                f"{path.name} defines no pipeline",
                file=str(path),
                hint="decorate a function with @pipeline (from pipecast.dsl import pipeline)",
                code="dsl",
            )
        )
    chosen = found.get("pipeline")
    if chosen is None:
        raise UserError(
            Diagnostic(
                f"{path.name} defines {len(found)} pipelines ({', '.join(sorted(found))})",
                file=str(path),
                hint="name the one to use 'pipeline' (pipeline = my_pipeline)",
                code="dsl",
            )
        )
    return chosen


def load_python_pipeline(path: str | Path) -> tuple[Pipeline, SourceMap]:
    """Import a DSL file and build its pipeline.

    Returns:
        The IR and a source map from YAML paths (e.g. ``("steps", "train")``) to the Python
        line where the step was called or the group opened.

    Raises:
        UserError: import errors, DSL misuse and invalid pipelines, each with file:line.
    """
    p = Path(path).resolve()
    if not p.is_file():
        raise UserError(Diagnostic(f"no such file: {path}", file=str(path), code="no-file"))
    try:
        with _imported(p) as module:
            definition = find_pipeline(module, p)
            try:
                pipeline, source = definition.build()
            except UserError:
                raise
            except Exception as exc:
                raise _import_error(p, exc) from None
    except UserError as exc:
        # Report positions against the path the user gave, as the YAML loader does.
        raise UserError([_as_given(d, p, str(path)) for d in exc.diagnostics]) from None
    return pipeline, SourceMap(str(path), source.positions)


def _as_given(diag: Diagnostic, resolved: Path, given: str) -> Diagnostic:
    if diag.file and os.path.abspath(diag.file) == str(resolved):
        return dataclasses.replace(diag, file=given)
    return diag
