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

#: DSL files imported in this process (resolved path -> module): checking the signatures of
#: step functions defined in the pipeline file itself reuses the module instead of running
#: the file a second time.
LOADED: dict[str, ModuleType] = {}


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
            # stdout is the command's output (export, run --json): what the file prints goes
            # to stderr.
            with contextlib.redirect_stdout(sys.stderr):
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
        except BaseException as exc:  # user code: SystemExit, GeneratorExit, any BaseException
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise _import_error(path, exc) from None
        LOADED[str(path)] = module
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
                with contextlib.redirect_stdout(sys.stderr):
                    pipeline, source = definition.build()
            except UserError:
                raise
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                raise _import_error(p, exc) from None
    except UserError as exc:
        if not p.stem.isidentifier() and any(f"'{p.stem}:" in d.message for d in exc.diagnostics):
            _refuse_module_name(p, str(path), f"{p.stem}:...")
        # Report positions against the path the user gave, as the YAML loader does.
        raise UserError([_as_given(d, p, str(path)) for d in exc.diagnostics]) from None
    if not p.stem.isidentifier():
        own = [t for t in _python_targets(pipeline.to_data()) if t.partition(":")[0] == p.stem]
        if own:
            _refuse_module_name(p, str(path), own[0])
    return pipeline, SourceMap(str(path), source.positions)


def _refuse_module_name(p: Path, given: str, target: str) -> None:
    fixed = "".join(c if c.isalnum() or c == "_" else "_" for c in p.stem)
    if fixed[:1].isdigit():
        fixed = "_" + fixed
    raise UserError(
        Diagnostic(
            f"{p.name} defines step functions, but {p.stem!r} is not a module name Python can import, "
            f"so its steps ({target!r}) could not run",
            file=given,
            hint=f"rename the file to {fixed}.py",
            code="dsl",
        )
    )


def _python_targets(data: object) -> list[str]:
    """Every ``run.python`` target in exported pipeline data."""
    out: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "python" and isinstance(value, str):
                out.append(value)
            else:
                out.extend(_python_targets(value))
    elif isinstance(data, list):
        for item in data:
            out.extend(_python_targets(item))
    return out


def _as_given(diag: Diagnostic, resolved: Path, given: str) -> Diagnostic:
    if diag.file and os.path.abspath(diag.file) == str(resolved):
        return dataclasses.replace(diag, file=given)
    return diag
