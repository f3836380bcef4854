"""Check a python step's inputs against its function's signature and annotations.

SPEC §3.1: the function is called with the inputs as keyword arguments, plus one keyword
argument per artifact output (a local path to write to); artifact inputs arrive as local
paths. The module is imported with the pipeline file's folder first on ``sys.path``. An
import that fails is a warning (the code may only exist in the step's image), never a crash.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import os
import pathlib
import sys
import threading
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pipecast.diagnostics import Diagnostic, YamlPath
from pipecast.ir import values
from pipecast.ir.models import PythonRun, TaskStep
from pipecast.passes.analysis import ANY, accepts, is_artifact_type, nearest

_SIMPLE = {str: "str", int: "int", float: "float", bool: "bool", list: "list", dict: "dict", tuple: "list"}
_PATH = "path"


# sys.path and sys.modules are process-wide: validations running in several threads take
# turns, and only user modules are forgotten (never a module another thread was importing
# meanwhile, nor a third-party package, which may not survive being imported twice).
_IMPORT_LOCK = threading.RLock()
_PREFIXES = tuple({str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)})


def _is_user_module(module: Any, base_dir: Path | None) -> bool:
    name = getattr(module, "__name__", "") or ""
    if name == "pipecast" or name.startswith(("pipecast.", "pipecast_")):
        return False
    files = [getattr(module, "__file__", None), *list(getattr(module, "__path__", None) or [])]
    files = [str(Path(f).resolve()) for f in files if isinstance(f, str) and f]
    if not files:
        return False
    if base_dir is not None:
        base = str(Path(base_dir).resolve())
        if any(f == base or f.startswith(base + os.sep) for f in files):
            return True
    return not any(f.startswith(_PREFIXES) for f in files)


@contextlib.contextmanager
def _import_context(base_dir: Path | None) -> Iterator[None]:
    """Put the pipeline's folder first on ``sys.path`` and forget the user modules imported
    meanwhile, so two pipelines with a ``steps`` module each do not see each other's code."""
    with _IMPORT_LOCK:
        before = set(sys.modules)
        entry = str(base_dir) if base_dir is not None else None
        if entry is not None:
            sys.path.insert(0, entry)
        try:
            yield
        finally:
            if entry is not None:
                with contextlib.suppress(ValueError):
                    sys.path.remove(entry)
            for name in set(sys.modules) - before:
                if _is_user_module(sys.modules.get(name), base_dir):
                    sys.modules.pop(name, None)


def load_function(
    target: str, base_dir: Path | None, cache: dict[str, Any] | None = None
) -> tuple[Any, str | None, bool]:
    """Import ``module:function``; returns ``(function | None, problem, is_error)``.

    ``cache`` maps module names to modules (or the import's error message) so one
    validation run imports each module once.
    """
    module_name, _, func_name = target.partition(":")
    cache = {} if cache is None else cache
    if module_name not in cache and base_dir is not None:
        from pipecast.dsl.loading import LOADED

        # A DSL pipeline file that defines its own step functions: already imported once.
        own = LOADED.get(str((Path(base_dir) / f"{module_name.replace('.', os.sep)}.py").resolve()))
        if own is not None:
            cache[module_name] = own
    if module_name not in cache:
        with _import_context(base_dir), contextlib.redirect_stdout(sys.stderr):
            try:
                cache[module_name] = importlib.import_module(module_name)
            except BaseException as exc:  # user code: anything may happen, even SystemExit
                if isinstance(exc, KeyboardInterrupt):
                    raise
                cache[module_name] = f"{type(exc).__name__}: {exc}"
    module = cache[module_name]
    if isinstance(module, str):
        return None, f"could not import {module_name!r} to check its functions: {module}", False
    func = getattr(module, func_name, None)
    if func is None:
        public = [n for n in vars(module) if not n.startswith("_") and callable(getattr(module, n))]
        best = nearest(func_name, public)
        tail = f"; did you mean {module_name}:{best}?" if best else ""
        return None, f"module {module_name!r} has no function {func_name!r}{tail}", True
    return func, None, False


def annotation_type(annotation: Any) -> str | None:
    """The pipecast type of an annotation (``None``: unknown / anything goes)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return None
    if annotation in _SIMPLE:
        return _SIMPLE[annotation]
    if isinstance(annotation, type) and issubclass(annotation, pathlib.PurePath):
        return _PATH
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, types.UnionType):
        mapped = {annotation_type(a) for a in args}
        return mapped.pop() if len(mapped) == 1 else None
    if origin is typing.Annotated:
        return annotation_type(args[0]) if args else None
    if origin in (list, tuple, set, frozenset):
        inner = annotation_type(args[0]) if len(args) == 1 else None
        return f"list[{inner}]" if inner and inner != _PATH else "list"
    if origin is dict:
        return "dict"
    return None


@functools.lru_cache(maxsize=1024)
def _signature(func: Any) -> tuple[inspect.Signature, dict[str, Any]] | None:
    """The signature and type hints of a function (one look-up per function: a
    10,000-step pipeline often calls a few functions many times)."""
    func = inspect.unwrap(func)
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    try:
        hints = typing.get_type_hints(func, include_extras=False)
    except Exception:
        hints = {}
    return sig, hints


def check_python_signature(
    run: PythonRun,
    task: TaskStep,
    input_types: dict[str, str | None],
    step_path: YamlPath,
    base_dir: Path | None,
    cache: dict[str, Any] | None = None,
) -> list[Diagnostic]:
    """Problems between a python step and its function (see the module docstring)."""
    func, problem, is_error = load_function(run.python, base_dir, cache)
    run_path = (*step_path, "run", "python")
    if func is None:
        if problem is None:
            return []
        return [
            Diagnostic(
                problem,
                run_path,
                severity="error" if is_error else "warning",
                code="python-function" if is_error else "python-import",
                hint=None if is_error else "the function's parameters were not checked",
            )
        ]
    try:
        found = _signature(func)
    except TypeError:  # an unhashable callable object
        found = _signature.__wrapped__(func)
    if found is None:
        return []
    sig, hints = found
    params = sig.parameters
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    out: list[Diagnostic] = []
    fname = run.python
    artifact_outputs = [n for n, t in task.outputs.items() if values.is_artifact(t)]
    for name in task.inputs:
        if name not in params and not var_kw:
            best = nearest(name, [p for p in params if p not in artifact_outputs])
            out.append(
                Diagnostic(
                    f"{fname} has no parameter {name!r} for input {name!r}",
                    (*step_path, "inputs", name),
                    hint=f"did you mean {best!r}?" if best else "add the parameter to the function",
                    code="python-signature",
                )
            )
    for name in artifact_outputs:
        if name not in params and not var_kw:
            out.append(
                Diagnostic(
                    f"{fname} must accept a keyword argument {name!r}: the local path where it writes "
                    f"artifact output {name!r}",
                    (*step_path, "outputs", name),
                    hint=f"add '{name}: str' to the function's parameters",
                    code="python-signature",
                )
            )
    out += _required_params(fname, params, set(task.inputs) | set(artifact_outputs), step_path, run_path)
    out += _input_types(fname, params, hints, input_types, step_path)
    return out


def _required_params(
    fname: str,
    params: Mapping[str, inspect.Parameter],
    given: set[str],
    step_path: YamlPath,
    run_path: YamlPath,
) -> list[Diagnostic]:
    """Parameters without a default that no input or artifact output fills; positional-only ones."""
    out: list[Diagnostic] = []
    for pname, param in params.items():
        if param.kind in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL):
            continue
        if param.default is inspect.Parameter.empty and pname not in given:
            out.append(
                Diagnostic(
                    f"{fname} needs argument {pname!r}, but step has no input {pname!r}",
                    (*step_path, "inputs"),
                    hint=f"add inputs: {{{pname}: ...}} or give the parameter a default",
                    code="python-signature",
                )
            )
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            out.append(
                Diagnostic(
                    f"{fname}: parameter {pname!r} is positional-only; steps are called with keywords",
                    run_path,
                    code="python-signature",
                )
            )
    return out


def _input_types(
    fname: str,
    params: Mapping[str, inspect.Parameter],
    hints: Mapping[str, Any],
    input_types: dict[str, str | None],
    step_path: YamlPath,
) -> list[Diagnostic]:
    """Each input's type against the parameter's annotation (an artifact arrives as a path)."""
    out: list[Diagnostic] = []
    for name, actual in input_types.items():
        if name not in params or actual in (None, ANY):
            continue
        declared = annotation_type(hints.get(name, params[name].annotation))
        if declared is None:
            continue
        assert actual is not None
        path = (*step_path, "inputs", name)
        if is_artifact_type(actual):
            ok = declared in ("str", _PATH) or (actual.startswith("list[") and declared.startswith("list"))
            if not ok:
                out.append(
                    Diagnostic(
                        f"input {name!r} is an artifact ({actual}) and arrives as a local path, but "
                        f"{fname} annotates it as {declared}",
                        path,
                        hint="annotate it as str or pathlib.Path",
                        code="type",
                    )
                )
            continue
        if declared == _PATH:
            declared = "str"
        if not accepts(declared, actual):
            out.append(
                Diagnostic(
                    f"input {name!r} is {actual}, but {fname} annotates it as {declared}",
                    path,
                    hint="an int may flow into a float; nothing else converts",
                    code="type",
                )
            )
    return out
