"""``@pipeline``: a function whose signature gives the typed parameters and whose body,
run once at build time, records the steps. Also ``finally_`` for the finally step.
"""

from __future__ import annotations

import ast
import inspect
import os
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipecast.diagnostics import SourceMap, UserError
from pipecast.dsl import _context
from pipecast.dsl._context import Builder, Position, ScopeRec, StepRec, dsl_error
from pipecast.dsl.groups import Group, group_data
from pipecast.dsl.refs import Value, check_visible
from pipecast.dsl.steps import ContainerStep, StepFunction, StepHandle, plain
from pipecast.dsl.types import REQUIRED, Param, type_info
from pipecast.dsl.types import hints as type_hints
from pipecast.ir import values
from pipecast.ir.models import Pipeline
from pipecast.ir.refs import Ref


def _arg_positions(fn: Callable[..., Any]) -> dict[str, tuple[int, int]]:
    """Line and column of each parameter in the ``def`` (best effort)."""
    try:
        lines, start = inspect.getsourcelines(fn)
        source = textwrap.dedent("".join(lines))
        indent = len(lines[0]) - len(lines[0].lstrip())
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == fn.__name__:
            args = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
            return {a.arg: (start + a.lineno - 1, a.col_offset + indent + 1) for a in args}
    return {}


class PipelineDef:
    """A pipeline defined with :func:`pipeline`. ``build()`` gives the IR and a source map."""

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str | None,
        description: str | None,
        defaults: Any,
        schedule: Any,
        where: Position,
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__.replace("_", "-")
        doc = inspect.getdoc(fn)
        self.description = description if description is not None else doc
        self.defaults = plain(defaults) if defaults is not None else None
        if isinstance(schedule, str):
            schedule = {"cron": schedule}
        self.schedule = plain(schedule) if schedule is not None else None
        self.where = where

    # ----------------------------------------------------------------- params
    def _params(self, builder: Builder) -> tuple[dict[str, Any], dict[str, Value]]:
        sig = inspect.signature(self.fn)
        hints = type_hints(self.fn)
        positions = _arg_positions(self.fn)
        file = builder.file
        data: dict[str, Any] = {}
        args: dict[str, Value] = {}
        for pname, par in sig.parameters.items():
            line, col = positions.get(pname, (self.where[1], self.where[2]))
            where = (file, line, col)
            if par.kind in (par.VAR_POSITIONAL, par.VAR_KEYWORD):
                raise dsl_error(
                    f"pipeline parameter {pname!r}: *args/**kwargs are not parameters", where=where
                )
            builder.positions[("params", pname)] = (line, col)
            info = type_info(hints.get(pname, par.annotation if par.annotation is not par.empty else None))
            default = par.default
            description = info.description
            type_name = info.type
            if isinstance(default, Param):
                description = default.description or description
                type_name = default.type or type_name
                default = default.default
            if default is par.empty:
                default = REQUIRED
            if type_name in (None, "any") and default is not REQUIRED:
                type_name = values.json_type_of(plain(default))
            if type_name not in values.ALL_TYPES:
                raise dsl_error(
                    f"pipeline parameter {pname!r} needs a type: str, int, float, bool, list, dict "
                    "or an artifact type (Dataset, Model, Metrics, Artifact)",
                    hint=f"annotate it, e.g. '{pname}: str'",
                    where=where,
                )
            entry: dict[str, Any] = {"type": type_name}
            if default is not REQUIRED:
                entry["default"] = plain(default)
            if description is not None:
                entry["description"] = description
            data[pname] = entry
            args[pname] = Value(Ref("param", pname), type_name)
        return data, args

    # ----------------------------------------------------------------- build
    def build(self) -> tuple[Pipeline, SourceMap]:
        """Run the pipeline function once and return ``(IR, source map)``.

        Raises:
            UserError: for DSL misuse (with the Python line) and for an invalid pipeline.
        """
        file = os.path.abspath(inspect.getsourcefile(self.fn) or self.fn.__code__.co_filename)
        if _context.active() is not None:
            raise dsl_error(
                f"pipeline {self.name!r} is built inside another pipeline",
                hint=f"call it like a step to use it as a sub-pipeline (SPEC §17): {self.fn.__name__}(...)",
            )
        if self in _BUILDING:
            chain = [*_BUILDING[_BUILDING.index(self) :], self]
            raise dsl_error(
                "a pipeline may not use itself, directly or through others: "
                + " -> ".join(f"{d.name} ({os.path.basename(d.where[0])}:{d.where[1]})" for d in chain),
                hint="break the cycle: move the shared steps into a component or a third pipeline",
                where=self.where,
            )
        _BUILDING.append(self)
        try:
            return self._build(file)
        finally:
            _BUILDING.remove(self)

    def _build(self, file: str) -> tuple[Pipeline, SourceMap]:
        builder = Builder(file)
        _, line, col = self.where
        builder.positions[()] = (self.fn.__code__.co_firstlineno, 1)
        for key in ("pipecast", "name", "description", "defaults", "schedule"):
            builder.positions[(key,)] = (line, col)
        params, args = self._params(builder)
        with builder:
            result = self.fn(**args)
            outputs = self._outputs(result, builder)
        if builder.pending:
            group = builder.pending[0]
            raise dsl_error(
                f"{group.kind} {group.name!r} was created but never used in a 'with' block",
                hint=f"write 'with {group.kind}(...) as ...:' and put its steps inside",
                where=group.where,
            )
        data: dict[str, Any] = {"pipecast": 1, "name": self.name}
        if self.description is not None:
            data["description"] = self.description
        if params:
            data["params"] = params
        if self.schedule is not None:
            data["schedule"] = self.schedule
        if self.defaults is not None:
            data["defaults"] = self.defaults
        data["steps"] = _scope_data(builder.root)
        if builder.finally_ is not None:
            data["finally"] = builder.finally_.data
        if outputs:
            data["outputs"] = outputs
        source = SourceMap(file, dict(builder.positions))
        data = _expand_uses(data, file, source, builder)
        try:
            pipeline = Pipeline.model_validate(data)
        except ValidationError as exc:
            from pipecast.loader import diagnostics_from_validation

            raise UserError([d.located(source) for d in diagnostics_from_validation(exc, data)]) from None
        return pipeline, source

    def _outputs(self, result: Any, builder: Builder) -> dict[str, str]:
        if result is None:
            return {}
        where = (builder.file, self.fn.__code__.co_firstlineno, 1)
        if isinstance(result, Value):
            raise dsl_error(
                "a pipeline function returns a dict of named outputs, not a single reference",
                hint="return {'name': step.outputs.x}",
                where=where,
            )
        if not isinstance(result, Mapping):
            raise dsl_error(
                f"a pipeline function returns None or a dict of named outputs, not {type(result).__name__}",
                where=where,
            )
        out: dict[str, str] = {}
        for key, value in result.items():
            what = f"pipeline output {key!r}"
            if not isinstance(key, str) or not values.IDENT_RE.match(key):
                raise dsl_error(f"{what}: not a valid output name", where=where)
            if isinstance(value, Value):
                check_visible(value, builder, builder.root, what)
                out[key] = str(value)
            elif isinstance(value, str) and "{{" in value:
                out[key] = value
            else:
                raise dsl_error(f"{what}: {value!r} is not a reference", where=where)
        return out

    def to_data(self) -> dict[str, Any]:
        """The IR as plain data, in the file format."""
        return self.build()[0].to_data()

    def to_yaml(self) -> str:
        """The IR as deterministic YAML (what ``pipecast export`` writes)."""
        from pipecast.io import dump_yaml

        return dump_yaml(self.to_data())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Inside another ``@pipeline`` function: run this pipeline as a sub-pipeline (SPEC
        §17), its parameters given as keyword (or positional) arguments, plus ``name=`` and
        ``after=``; returns a handle whose ``.outputs`` are this pipeline's outputs."""
        builder = _context.active()
        if builder is None:
            raise dsl_error(
                f"pipeline {self.name!r} is not called directly",
                hint="build it with .build(), or run 'pipecast run/compile/export' on its file",
            )
        return self._call_in_pipeline(builder, args, kwargs)

    def _call_in_pipeline(self, builder: Builder, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        from pipecast.dsl.components import PY_PREFIX, record
        from pipecast.dsl.refs import to_arg
        from pipecast.loader import Loaded

        label = f"pipeline {self.name!r}"
        params, _ = self._params(Builder(builder.file))
        name = kwargs.pop("name", None) if "name" not in params else None
        after = kwargs.pop("after", None) if "after" not in params else None
        if len(args) > len(params):
            raise dsl_error(f"{label} takes {len(params)} parameters but {len(args)} were given")
        for pname, value in zip(params, args, strict=False):
            if pname in kwargs:
                raise dsl_error(f"{label}: parameter {pname!r} given twice")
            kwargs[pname] = value
        inputs: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key not in params:
                raise dsl_error(
                    f"{label} has no parameter {key!r} (its parameters: {', '.join(params) or 'none'})",
                    hint=_context.did_you_mean(key, list(params)),
                )
            inputs[key] = to_arg(value, params[key]["type"], builder, f"{label}, parameter {key!r}")
        missing = [k for k, p in params.items() if "default" not in p and k not in inputs]
        if missing:
            raise dsl_error(f"{label}: missing parameter(s) {', '.join(missing)}")
        token = f"{PY_PREFIX}{os.path.basename(self.where[0])}:{self.fn.__name__}"
        if token not in builder.subpipelines:
            reset = _context._ACTIVE.set(None)  # the called pipeline is built on its own
            try:
                called, source = self.build()
            finally:
                _context._ACTIVE.reset(reset)
            builder.subpipelines[token] = Loaded(called, Path(source.file), source)
        loaded = builder.subpipelines[token]
        outputs = {k: _output_type(loaded, k) for k in loaded.pipeline.outputs}
        data: dict[str, Any] = {"uses": token}
        if inputs:
            data["inputs"] = inputs
        from pipecast.dsl.steps import after_names

        names = after_names(after)
        if names:
            data["after"] = names
        return record(builder, data, outputs, name or self.fn.__name__, name is not None)

    def __repr__(self) -> str:
        return f"<pipecast pipeline {self.name}>"


#: Pipelines being built, outermost first (a pipeline calling itself is a cycle, SPEC §17).
_BUILDING: list[PipelineDef] = []


def _output_type(loaded: Any, name: str) -> str:
    """The type of a called pipeline's output, for the DSL's checks (``any`` when unknown)."""
    from pipecast.passes.analysis import ANY

    try:
        kind = loaded.index.value_type(loaded.pipeline.outputs[name], loaded.index.root, None)
    except Exception:
        return ANY
    return kind if isinstance(kind, str) else ANY


def _expand_uses(data: dict[str, Any], file: str, source: SourceMap, builder: Builder) -> dict[str, Any]:
    """Inline components and sub-pipelines (SPEC §16-§17) as the loader does for files."""
    from pipecast.passes import uses

    if not uses.has_uses(data):
        return data
    top = Path(file).resolve()
    expander = uses.Expander(
        top, source, uses.Context(top.parent).enter(top, None), inline=builder.subpipelines
    )
    out = expander.expand(data)
    if expander.problems:
        raise UserError(expander.problems)
    return out


def _scope_data(scope: ScopeRec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in scope.items:
        if isinstance(item, StepRec):
            out[item.name] = item.data
        elif isinstance(item, Group):
            out[item.name] = group_data(item, _scope_data)
    return out


def pipeline(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    defaults: Mapping[str, Any] | Any = None,
    schedule: str | Mapping[str, Any] | Any = None,
) -> Any:
    """Define a pipeline.

    The signature gives the parameters: annotation → type, default → default, no default →
    required; a description comes from ``Annotated[str, "description"]`` or a
    ``Param(default, description=...)`` default. Returning a dict of references declares
    the pipeline's outputs.

    Args:
        fn: the function (when used as ``@pipeline`` without parentheses).
        name: the pipeline name; default: the function name with ``_`` → ``-``.
        description: default: the function's docstring.
        defaults: task-step defaults (SPEC §2), a dict or ``Defaults(...)``.
        schedule: a cron string (UTC) or ``{"cron": ..., "timezone": ...}``.
    """
    where = _context.user_position()

    def wrap(f: Callable[..., Any]) -> PipelineDef:
        return PipelineDef(f, name, description, defaults, schedule, where)

    return wrap(fn) if fn is not None else wrap


def finally_(step: StepFunction[Any, Any] | ContainerStep, *args: Any, **inputs: Any) -> StepHandle:
    """Register the finally step (SPEC §2): it runs last, whatever happened.

    ``finally_(notify, status=PIPELINE.status)``; ``PIPELINE.status`` is valid here only.
    """
    builder = _context.active()
    if builder is None:
        raise dsl_error("finally_(...) is used inside a @pipeline function only")
    if builder.scope is not builder.root:
        raise dsl_error("finally_(...) belongs at the top level of the pipeline, not inside a group")
    if builder.finally_ is not None:
        _, line, _ = builder.finally_.where
        raise dsl_error(f"the pipeline already has a finally step (line {line})")
    if "name" in inputs and not (isinstance(step, StepFunction) and "name" in step.inputs):
        raise dsl_error("the finally step has no name of its own; drop name=")
    builder.in_finally = True
    try:
        if isinstance(step, StepFunction):
            handle = step._call_in_pipeline(builder, args, dict(inputs), finally_=True)
        elif isinstance(step, ContainerStep):
            if args:
                raise dsl_error("container step inputs are passed by keyword")
            after = inputs.pop("after", None)
            handle = step._call_in_pipeline(builder, inputs, None, after, finally_=True)
        else:
            raise dsl_error(f"finally_ takes a @step function or a container step, not {step!r}")
    finally:
        builder.in_finally = False
    builder.finally_ = handle._rec
    return handle
