"""Task steps in the DSL: ``@step`` for Python functions, ``container_step`` for commands.

Outside a pipeline build, a ``@step`` function is the plain function (the step runtime
and unit tests call it directly). Inside a build, calling it records a task step and
returns a :class:`StepHandle` whose ``outputs`` are references.
"""

from __future__ import annotations

import copy
import functools
import inspect
import os
import sys
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, ParamSpec, TypeVar

from pydantic import BaseModel, ValidationError

from pipecast.dsl import _context
from pipecast.dsl._context import Builder, Position, StepRec, did_you_mean, dsl_error
from pipecast.dsl.refs import Cond, Value, did_you_mean_output, to_arg
from pipecast.dsl.types import hints as type_hints
from pipecast.dsl.types import type_info
from pipecast.ir import values
from pipecast.ir.models import IMPORT_OUTPUT, TaskStep
from pipecast.ir.refs import Ref, RefSyntaxError
from pipecast.passes.frontend import template_refs

SETTINGS = ("image", "retry", "timeout", "resources", "env", "secrets", "cache", "description", "when")

P = ParamSpec("P")
R = TypeVar("R")


def plain(value: Any) -> Any:
    """IR models (``Retry(...)``, ``Resources(...)``) and nested dicts → plain data."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _settings(raw: Mapping[str, Any], where: Position) -> dict[str, Any]:
    """Check step settings early, so a bad ``retry=`` points at the decorator line."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None:
            continue
        if key == "when":
            out[key] = str(Cond.of(value))
            continue
        out[key] = plain(value)
    try:
        TaskStep.model_validate({"run": {"python": "m:f"}, **out})
    except ValidationError as exc:
        from pipecast.loader import diagnostics_from_validation

        diags = diagnostics_from_validation(exc, {"steps": {"s": {"run": {"python": "m:f"}, **out}}})
        message = "; ".join(d.message for d in diags) or str(exc)
        raise dsl_error(f"invalid step settings: {message}", where=where) from None
    return out


class OutputsView:
    """``handle.outputs.<name>`` / ``handle.outputs["name"]``: references to a step's outputs."""

    _owner: str
    _types: dict[str, str]
    _make: Callable[[str, str], Value]

    def __init__(self, owner: str, types: Mapping[str, str], make: Callable[[str, str], Value]) -> None:
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_types", dict(types))
        object.__setattr__(self, "_make", make)

    def __getattr__(self, name: str) -> Value:
        if name.startswith("__"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> Value:
        if name not in self._types:
            raise dsl_error(did_you_mean_output(self._owner, name, list(self._types)))
        return self._make(name, self._types[name])

    def __iter__(self) -> typing.Iterator[str]:
        return iter(self._types)

    def __dir__(self) -> Iterable[str]:
        return list(self._types)

    def __repr__(self) -> str:
        return f"<outputs of {self._owner}: {', '.join(self._types) or 'none'}>"


class StepHandle:
    """What calling a step inside a pipeline returns."""

    def __init__(self, rec: StepRec) -> None:
        self._rec = rec
        self._outputs = dict(rec.outputs)

    @property
    def name(self) -> str:
        """The step's name in the pipeline."""
        return self._rec.name

    @property
    def outputs(self) -> OutputsView:
        """References to the step's outputs, by name."""
        rec = self._rec
        return OutputsView(
            f"step {rec.name!r}", self._outputs, lambda n, t: Value(Ref("step", rec.name, n), t, rec)
        )

    @property
    def output(self) -> Value:
        """The step's only output."""
        if len(self._outputs) != 1:
            names = ", ".join(self._outputs) or "none"
            raise dsl_error(
                f"step {self.name!r} has {len(self._outputs)} outputs ({names}); .output needs exactly one",
                hint=f"use {self.name}.outputs.<name>",
            )
        return self.outputs[next(iter(self._outputs))]

    def after(self, *others: Any) -> StepHandle:
        """Wait for other steps or groups too, without data passing; returns the handle."""
        after = self._rec.data.setdefault("after", [])
        for name in after_names(others):
            if name not in after:
                after.append(name)
        return self

    def __repr__(self) -> str:
        return f"<pipecast step {self.name}>"


def after_names(items: Any) -> list[str]:
    """Names of ``after=[handle, group, "name", ...]`` items."""
    from pipecast.dsl.groups import Group

    if items is None:
        return []
    if isinstance(items, StepHandle | Group | str):
        items = [items]
    out: list[str] = []
    for item in items:
        if isinstance(item, StepHandle | Group):
            out.append(item.name)
        elif isinstance(item, str):
            out.append(item)
        else:
            raise dsl_error(f"after=[...] holds step handles, groups or names, not {item!r}")
    return out


class _StepBase:
    """What ``@step`` functions and container steps share: options and recording."""

    _default_name: str
    _settings: dict[str, Any]
    _where: Position

    def _clone(self, **changes: Any) -> Any:
        other = copy.copy(self)
        for key, value in changes.items():
            setattr(other, key, value)
        return other

    def _record(
        self,
        builder: Builder,
        run: dict[str, Any],
        inputs: dict[str, Any],
        outputs: dict[str, str],
        name: str | None,
        after: Any,
        finally_: bool = False,
    ) -> StepHandle:
        where = builder.where()
        data: dict[str, Any] = {"run": run}
        if inputs:
            data["inputs"] = inputs
        if outputs:
            data["outputs"] = dict(outputs)
        names = after_names(after)
        if names:
            data["after"] = names
        data.update(copy.deepcopy(self._settings))
        if finally_:
            rec = StepRec("finally", data, dict(outputs), None, where)
            builder.mark(("finally",), where)
            return StepHandle(rec)
        scope = builder.scope
        step_name = builder.claim(name or self._default_name, name is not None, where)
        rec = StepRec(step_name, data, dict(outputs), scope, where)
        scope.items.append(rec)
        builder.mark(scope.step_path(step_name), where)
        return StepHandle(rec)


class StepFunction(_StepBase, Generic[P, R]):
    """A Python function decorated with :func:`step`."""

    def __init__(self, fn: Callable[P, R], output: str, settings: dict[str, Any], where: Position) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self._default_name = fn.__name__
        self._output_name = output
        self._settings = settings
        self._where = where
        self._name_override: str | None = None
        self._analyse()

    # ----------------------------------------------------------------- signature
    def _analyse(self) -> None:
        fn = self.fn
        sig = inspect.signature(fn)
        hints = type_hints(fn)
        self.inputs: dict[str, str | None] = {}
        self.required: list[str] = []
        self.outputs: dict[str, str] = {}
        self.problems: list[str] = []
        for pname, par in sig.parameters.items():
            if par.kind in (par.VAR_POSITIONAL, par.VAR_KEYWORD):
                continue
            info = type_info(hints.get(pname, par.annotation if par.annotation is not par.empty else None))
            if info.direction == "output":
                if info.type is None or not values.is_artifact(info.type):
                    self.problems.append(f"parameter {pname!r}: Output[...] takes an artifact type")
                self.outputs[pname] = info.type or "Artifact"
                continue
            self.inputs[pname] = info.type
            if par.default is par.empty:
                self.required.append(pname)
        ret = hints.get("return", sig.return_annotation)
        if ret is sig.empty or ret is None or ret is type(None):
            return
        if typing.is_typeddict(ret):
            fields = type_hints(ret)
            if len(fields) < 2:
                self.problems.append(
                    f"return type {ret.__name__} has {len(fields)} field(s); a step returns a dict only "
                    "with two or more outputs (SPEC §3.1): annotate the value's type and use "
                    "@step(output='name')"
                )
            for key, ann in fields.items():
                self.outputs[key] = type_info(ann).type or "dict"
            return
        info = type_info(ret)
        if info.type is not None and values.is_artifact(info.type):
            self.problems.append(
                "an artifact is not returned: take an Output[...] parameter and write to its path"
            )
        self.outputs[self._output_name] = info.type if info.type in values.PARAM_TYPES else "dict"
        if info.type is None or info.type == "any":
            self.problems.append(
                f"cannot tell the output type from the return annotation {ret!r}; "
                "use str, int, float, bool, list, dict or a TypedDict"
            )

    @property
    def target(self) -> str:
        """``module:function`` as the step runtime imports it."""
        module = self.fn.__module__
        if module == "__main__":
            main = sys.modules.get("__main__")
            file = getattr(main, "__file__", None)
            if file:
                module = os.path.splitext(os.path.basename(file))[0]
        return f"{module}:{self.fn.__name__}"

    # ----------------------------------------------------------------- options
    def options(self, *, name: str | None = None, **settings: Any) -> StepFunction[P, R]:
        """A copy with other settings (``retry``, ``timeout``, ``resources``, ...) or name."""
        where = _context.user_position()
        unknown = [k for k in settings if k not in SETTINGS]
        if unknown:
            hint = did_you_mean(unknown[0], list(SETTINGS))
            raise dsl_error(f"unknown step setting {unknown[0]!r}", hint=hint, where=where)
        merged = {**self._settings, **_settings(settings, where)}
        clone: StepFunction[P, R] = self._clone(_settings=merged)
        if name is not None:
            clone._name_override = name
        return clone

    # ----------------------------------------------------------------- calling
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        builder = _context.active()
        if builder is None:
            return self.fn(*args, **kwargs)
        return self._call_in_pipeline(builder, args, dict(kwargs))

    def _call_in_pipeline(
        self, builder: Builder, args: tuple[Any, ...], kwargs: dict[str, Any], finally_: bool = False
    ) -> StepHandle:
        label = f"step {self._default_name!r}"
        if self.fn.__qualname__ != self.fn.__name__ or self.fn.__name__ == "<lambda>":
            raise dsl_error(
                f"{label}: {self.fn.__qualname__} is not a module-level function",
                hint="python steps are run by importing module:function, so define them at module level",
            )
        if self.problems:
            raise dsl_error(f"{label}: {self.problems[0]}", where=self._where)
        name = self._name_override
        after = None
        if "name" not in self.inputs and "name" in kwargs:
            name = kwargs.pop("name")
        if "after" not in self.inputs and "after" in kwargs:
            after = kwargs.pop("after")
        positional = list(self.inputs)
        if len(args) > len(positional):
            raise dsl_error(f"{label} takes {len(positional)} inputs but {len(args)} were given")
        for pname, value in zip(positional, args, strict=False):
            if pname in kwargs:
                raise dsl_error(f"{label}: input {pname!r} given twice")
            kwargs[pname] = value
        inputs: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key in self.outputs and key not in self.inputs:
                raise dsl_error(
                    f"{label}: {key!r} is an output; the step writes it",
                    hint=f"read it after the call as {self._default_name}.outputs.{key}",
                )
            if key not in self.inputs:
                hint = did_you_mean(key, list(self.inputs))
                raise dsl_error(
                    f"{label} has no input {key!r} (its inputs: {', '.join(self.inputs) or 'none'})",
                    hint=hint,
                )
            inputs[key] = to_arg(value, self.inputs[key], builder, f"{label}, input {key!r}")
        missing = [r for r in self.required if r not in inputs]
        if missing:
            raise dsl_error(f"{label}: missing input(s) {', '.join(missing)}")
        run = {"python": self.target}
        return self._record(builder, run, inputs, self.outputs, name, after, finally_)

    def __repr__(self) -> str:
        return f"<pipecast step {self.target}>"


def step(
    fn: Callable[P, R] | None = None,
    *,
    name: str | None = None,
    output: str = "output",
    image: str | None = None,
    retry: Any = None,
    timeout: float | str | None = None,
    resources: Any = None,
    env: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    cache: bool | Mapping[str, Any] | None = None,
    description: str | None = None,
) -> Any:
    """Make a Python function a pipeline step.

    Inputs are the function's parameters (artifact inputs annotated ``Input[Dataset]`` or
    ``Dataset``), artifact outputs are parameters annotated ``Output[Model]`` etc., and
    parameter outputs come from the return annotation: one type gives one output named
    ``output`` (or ``@step(output="rows")``), a ``TypedDict`` one output per key.

    Args:
        fn: the function (when used as ``@step`` without parentheses).
        name: the default step name (else the function's name).
        output: the name of the single return-value output.
        image, retry, timeout, resources, env, secrets, cache, description: SPEC §3.1
            settings; ``retry``/``resources`` as dicts or ``Retry(...)``/``Resources(...)``.
    """
    where = _context.user_position()
    if not values.IDENT_RE.match(output):
        raise dsl_error(f"output name {output!r} is not an identifier", where=where)
    settings = _settings(
        {
            "image": image,
            "retry": retry,
            "timeout": timeout,
            "resources": resources,
            "env": env,
            "secrets": secrets,
            "cache": cache,
            "description": description,
        },
        where,
    )

    def wrap(f: Callable[P, R]) -> StepFunction[P, R]:
        sf = StepFunction(f, output, settings, where)
        if name is not None:
            sf._default_name = name
        return sf

    return wrap(fn) if fn is not None else wrap


# --------------------------------------------------------------------- container steps


class _Placeholders:
    def __init__(self, kind: str) -> None:
        self._kind = kind

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return "{{ " + f"{self._kind}.{name}" + " }}"

    __getitem__ = __getattr__


IN: Any = _Placeholders("inputs")
"""``IN.aucs`` → ``"{{ inputs.aucs }}"`` for container commands."""
OUT: Any = _Placeholders("outputs")
"""``OUT.best`` → ``"{{ outputs.best }}"`` (a local path to write to) for container commands."""


def _placeholders(texts: list[str], where: Position) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {"inputs": [], "outputs": []}
    for text in texts:
        try:
            refs = template_refs(text)
        except RefSyntaxError as exc:
            raise dsl_error(f"container command {text!r}: {exc}", where=where) from None
        for seg in refs:
            if seg.kind in found and seg.name not in found[seg.kind]:
                found[seg.kind].append(seg.name)
    return found


class ContainerStep(_StepBase):
    """A container step made by :func:`container_step`; call it in a pipeline with its inputs."""

    def __init__(
        self,
        name: str,
        run: dict[str, Any],
        inputs: dict[str, str | None],
        outputs: dict[str, str],
        settings: dict[str, Any],
        where: Position,
    ) -> None:
        self._default_name = name
        self._run = run
        self.inputs = inputs
        self.outputs = outputs
        self._settings = settings
        self._where = where

    def options(self, **settings: Any) -> ContainerStep:
        """A copy with other settings (``retry``, ``timeout``, ``resources``, ...)."""
        where = _context.user_position()
        return self._clone(_settings={**self._settings, **_settings(settings, where)})

    def __call__(self, *, name: str | None = None, after: Any = None, **kwargs: Any) -> StepHandle:
        builder = _context.active()
        if builder is None:
            raise dsl_error(
                f"container step {self._default_name!r} runs only inside a pipeline",
                hint="call it from a @pipeline function",
            )
        return self._call_in_pipeline(builder, kwargs, name, after)

    def _call_in_pipeline(
        self, builder: Builder, kwargs: dict[str, Any], name: str | None, after: Any, finally_: bool = False
    ) -> StepHandle:
        label = f"step {self._default_name!r}"
        inputs: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key not in self.inputs:
                raise dsl_error(
                    f"{label} has no input {key!r} (its inputs: {', '.join(self.inputs) or 'none'})",
                    hint=did_you_mean(key, list(self.inputs)),
                )
            inputs[key] = to_arg(value, self.inputs[key], builder, f"{label}, input {key!r}")
        missing = [k for k in self.inputs if k not in inputs]
        if missing:
            raise dsl_error(f"{label}: missing input(s) {', '.join(missing)}")
        return self._record(builder, dict(self._run), inputs, self.outputs, name, after, finally_)


def container_step(
    name: str,
    *,
    image: str,
    command: list[str],
    args: list[str] | None = None,
    inputs: Iterable[str] | Mapping[str, Any] | None = None,
    outputs: Mapping[str, Any] | None = None,
    retry: Any = None,
    timeout: float | str | None = None,
    resources: Any = None,
    env: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    cache: bool | Mapping[str, Any] | None = None,
    description: str | None = None,
) -> ContainerStep:
    """Define a container step (SPEC §3.1).

    Args:
        name: the default step name.
        image: the container image.
        command: the command; use ``IN.x`` / ``OUT.y`` (or ``"{{ inputs.x }}"``) for
            input values or paths and output paths.
        args: more arguments, placeholders allowed.
        inputs: input names, or name → type (``int``, ``Dataset``, ...) to type-check calls.
            Default: the inputs named in the command's placeholders.
        outputs: name → type (``float``, ``Dataset``, ``"Model"``, ...).
        retry, timeout, resources, env, secrets, cache, description: SPEC §3.1 settings.
    """
    where = _context.user_position()
    args = list(args or [])
    found = _placeholders([*command, *args], where)
    input_types: dict[str, str | None]
    if inputs is None:
        input_types = dict.fromkeys(found["inputs"])
    elif isinstance(inputs, Mapping):
        input_types = {k: (type_info(v).type if v is not None else None) for k, v in inputs.items()}
    else:
        input_types = dict.fromkeys(inputs)
    from pipecast.dsl.types import output_type_name

    output_types: dict[str, str] = {}
    for key, value in (outputs or {}).items():
        type_name = output_type_name(value)
        if type_name is None:
            raise dsl_error(
                f"container step {name!r}: output {key!r} has type {value!r}",
                hint="use str, int, float, bool, list, dict or an artifact type (Dataset, Model, ...)",
                where=where,
            )
        output_types[key] = type_name
    for kind, declared in (("inputs", input_types), ("outputs", output_types)):
        for used in found[kind]:
            if used not in declared:
                hint = did_you_mean(used, list(declared))
                raise dsl_error(
                    f"container step {name!r}: the command uses {{{{ {kind}.{used} }}}} but {kind} "
                    f"are: {', '.join(declared) or 'none'}",
                    hint=hint,
                    where=where,
                )
    run: dict[str, Any] = {"image": image, "command": list(command)}
    if args:
        run["args"] = args
    settings = _settings(
        {
            "retry": retry,
            "timeout": timeout,
            "resources": resources,
            "env": env,
            "secrets": secrets,
            "cache": cache,
            "description": description,
        },
        where,
    )
    return ContainerStep(name, run, input_types, output_types, settings, where)


def import_artifact(
    uri: Any,
    type: Any = "Artifact",  # the IR's key
    *,
    metadata: Mapping[str, Any] | None = None,
    name: str = "import",
    after: Any = None,
) -> Value:
    """An artifact from outside the pipeline (SPEC §14): an ``import`` step.

    Args:
        uri: a URI or a path (relative to the pipeline file's folder), a string that may hold
            references (an f-string of parameters), or a parameter value.
        type: ``Dataset``, ``Model``, ``Metrics`` or ``Artifact`` (a class or its name).
        metadata: a JSON object that travels with the artifact.
        name: the step's name (made unique like any step's).
        after: steps or groups to wait for.

    Returns:
        The imported artifact (the step's ``artifact`` output).
    """
    from pipecast.dsl.types import output_type_name

    builder = _context.active()
    if builder is None:
        raise dsl_error(
            "import_artifact() runs only inside a pipeline", hint="call it from a @pipeline function"
        )
    kind = output_type_name(type)
    if kind not in values.ARTIFACT_TYPES:
        raise dsl_error(f"import_artifact(type={type!r}): use Dataset, Model, Metrics or Artifact")
    text = to_arg(uri, None, builder, f"import {name!r}, uri") if not isinstance(uri, str) else uri
    if not isinstance(text, str):
        raise dsl_error(f"import {name!r}: uri must be a string or a parameter, not {uri!r}")
    spec: dict[str, Any] = {"uri": text, "type": kind}
    if metadata:
        spec["metadata"] = plain(dict(metadata))
    where = builder.where()
    data: dict[str, Any] = {"import": spec, "outputs": {IMPORT_OUTPUT: kind}}
    names = after_names(after)
    if names:
        data["after"] = names
    scope = builder.scope
    step_name = builder.claim(name, False, where)
    rec = StepRec(step_name, data, {IMPORT_OUTPUT: kind}, scope, where)
    scope.items.append(rec)
    builder.mark(scope.step_path(step_name), where)
    return StepHandle(rec).output
