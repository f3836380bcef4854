"""Components (SPEC §16) and sub-pipelines (SPEC §17) in the DSL.

``component("components/train.yaml")`` loads a component file (relative to the calling
file) and returns a :class:`ComponentStep`, called like a step; the pipeline records a
``uses:`` step, which the loader's own expansion (:mod:`pipecast.passes.uses`) inlines exactly
as for a YAML file. Calling a ``@pipeline`` function inside another pipeline records a
``uses:`` of that pipeline (see :meth:`pipecast.dsl.pipelines.PipelineDef.__call__`).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipecast.diagnostics import UserError
from pipecast.dsl import _context
from pipecast.dsl._context import Builder, Position, StepRec, dsl_error
from pipecast.dsl.steps import StepHandle, _settings, after_names
from pipecast.ir.models import ComponentFile

#: ``uses:`` text of a sub-pipeline defined in Python: not a file name (a file cannot start so).
PY_PREFIX = "python:"


class ComponentStep:
    """A component loaded by :func:`component`; call it inside a pipeline with its inputs.

    Keyword arguments are the component's inputs, plus ``name=`` (the step name; default the
    component's name) and ``after=``. ``.options(retry=..., resources=...)`` gives a copy whose
    calls override the component's settings, field by field (SPEC §16).
    """

    def __init__(self, path: Path, spec: ComponentFile, settings: dict[str, Any], where: Position) -> None:
        self.path = path
        self.spec = spec
        self.inputs = {k: s.type for k, s in spec.inputs.items()}
        self.required = [k for k, s in spec.inputs.items() if not s.has_default]
        self.outputs: dict[str, str] = dict(spec.outputs)
        self._settings = settings
        self._where = where

    def options(self, **settings: Any) -> ComponentStep:
        """A copy with step settings that override the component's (``retry``, ``resources``, ...)."""
        where = _context.user_position()
        merged = {**self._settings, **_settings(settings, where)}
        return ComponentStep(self.path, self.spec, merged, self._where)

    def __call__(self, *, name: str | None = None, after: Any = None, **kwargs: Any) -> StepHandle:
        from pipecast.dsl.refs import to_arg

        builder = _context.active()
        label = f"component {self.spec.component!r}"
        if builder is None:
            raise dsl_error(f"{label} is called inside a @pipeline function only", where=self._where)
        inputs: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key not in self.inputs:
                raise dsl_error(
                    f"{label} has no input {key!r} (its inputs: {', '.join(self.inputs) or 'none'})",
                    hint=_context.did_you_mean(key, list(self.inputs)),
                )
            inputs[key] = to_arg(value, self.inputs[key], builder, f"{label}, input {key!r}")
        missing = [k for k in self.required if k not in inputs]
        if missing:
            raise dsl_error(f"{label}: missing input(s) {', '.join(missing)}")
        data: dict[str, Any] = {"uses": _relative(self.path, builder)}
        if inputs:
            data["inputs"] = inputs
        names = after_names(after)
        if names:
            data["after"] = names
        data.update(copy.deepcopy(self._settings))
        return record(builder, data, self.outputs, name or self.spec.component, name is not None)

    def __repr__(self) -> str:
        return f"<pipecast component {self.spec.component} ({self.path.name})>"


def record(
    builder: Builder, data: dict[str, Any], outputs: dict[str, str], name: str, explicit: bool
) -> StepHandle:
    """Record a ``uses:`` step in the current scope and return its handle."""
    where = builder.where()
    if builder.in_finally:
        rec = StepRec("finally", data, dict(outputs), None, where)
        builder.mark(("finally",), where)
        return StepHandle(rec)
    scope = builder.scope
    step_name = builder.claim(name, explicit, where)
    rec = StepRec(step_name, data, dict(outputs), scope, where)
    scope.items.append(rec)
    builder.mark(scope.step_path(step_name), where)
    return StepHandle(rec)


def _relative(path: Path, builder: Builder) -> str:
    rel = os.path.relpath(path, Path(builder.file).parent)
    return "./" + Path(rel).as_posix() if not rel.startswith("..") else Path(rel).as_posix()


def component(path: str | os.PathLike[str], **settings: Any) -> ComponentStep:
    """Load a component file (SPEC §16), relative to the file that calls this.

    Args:
        path: the component file (``.yaml``/``.yml``/``.json``).
        settings: step settings that override the component's on every call (``retry``,
            ``resources``, ``timeout``, ``env``, ``secrets``, ``cache``, ``image``).

    Raises:
        UserError: a missing or invalid component file (located in that file).
    """
    from pipecast import loader
    from pipecast.passes.uses import _NOT_IN_COMPONENT

    where = _context.user_position()
    base = Path(where[0]).parent if where[0] else Path.cwd()
    target = (base / path).resolve()
    if not target.is_file():
        raise dsl_error(f"no such component file: {str(path)!r} (read relative to {where[0]})", where=where)
    text = target.read_text(encoding="utf-8")
    parse = loader.parse_json if target.suffix == ".json" else loader.parse_yaml
    data, source, problems = parse(text, str(target))
    if problems:
        raise UserError([d.located(source) for d in problems])
    if not isinstance(data, dict) or "component" not in data:
        raise dsl_error(f"{str(path)!r} is not a component file ('component: <name>')", where=where)
    bad = [k for k in _NOT_IN_COMPONENT if k in data]
    if bad:
        from pipecast.diagnostics import Diagnostic

        raise UserError(
            Diagnostic(
                f"a component may not have {bad[0]!r} (SPEC §16)", (bad[0],), hint=_NOT_IN_COMPONENT[bad[0]]
            ).located(source)
        )
    try:
        spec = ComponentFile.model_validate(data)
    except ValidationError as exc:
        raise UserError([d.located(source) for d in loader.diagnostics_from_validation(exc, data)]) from None
    return ComponentStep(target, spec, _settings(settings, where) if settings else {}, where)
