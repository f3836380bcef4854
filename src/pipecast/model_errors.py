"""Pydantic validation errors → user diagnostics (YAML path, readable message, nearest key).

Pydantic's ``loc`` contains union tags (``task``/``group`` for steps, ``python``/``container``
for ``run``) that are not part of the file; they are removed here, and field names are
shown by their aliases (``as``, ``else``, ``finally``). Unknown keys get the nearest valid
key of the model at that place.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Discriminator, Tag
from pydantic_core import ErrorDetails

from pipecast.diagnostics import Diagnostic, YamlPath
from pipecast.ir import models
from pipecast.passes.analysis import nearest

_STEP_TAGS = ("task", "group")
_RUN_TAGS = ("python", "container")
_CACHE_TAGS = ("flag", "mapping")
_ALIASES = {"as_": "as", "else_": "else", "finally_": "finally"}


def is_step_path(p: YamlPath) -> bool:
    """Whether a YAML path points at a step (top level, in a group, or in an ``else``)."""
    if len(p) < 2 or p[-2] != "steps":
        return False
    parent = p[:-2]
    if parent == ():
        return True
    if is_step_path(parent):
        return True
    return len(parent) >= 2 and parent[-1] == "else" and is_step_path(parent[:-1])


def _is_run_path(p: YamlPath) -> bool:
    return len(p) >= 1 and p[-1] == "run" and (p[:-1] == ("finally",) or is_step_path(p[:-1]))


def clean_loc(loc: tuple[Any, ...]) -> YamlPath:
    """Drop pydantic's union tags from ``loc`` and use the file's key names."""
    out: list[str | int] = []
    expect: tuple[str, ...] = ()
    for part in loc:
        if expect:
            tags, expect = expect, ()
            if part in tags:
                continue
        out.append(_ALIASES.get(part, part) if isinstance(part, str) else part)
        path = tuple(out)
        if is_step_path(path):
            expect = _STEP_TAGS
        elif _is_run_path(path):
            expect = _RUN_TAGS
        elif path and path[-1] == "cache":
            expect = _CACHE_TAGS
    return tuple(out)


def _get(data: Any, path: YamlPath) -> Any:
    for part in path:
        if isinstance(data, dict) and isinstance(part, str):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def _model_of(annotation: Any, value: Any) -> type[BaseModel] | None:
    """The model class an annotation stands for, given the value (discriminated unions)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(annotation)
        disc = next((m for m in meta if isinstance(m, Discriminator)), None)
        if disc is not None and callable(disc.discriminator):
            tag = disc.discriminator(value)
            for option in typing.get_args(base):
                opt_meta = (
                    typing.get_args(option)[1:] if typing.get_origin(option) is typing.Annotated else ()
                )
                if any(isinstance(m, Tag) and m.tag == tag for m in opt_meta):
                    return _model_of(option, value)
            return None
        return _model_of(base, value)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            found = _model_of(option, value)
            if found is not None:
                return found
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _field_annotation(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info.annotation
    return None


def model_at(path: YamlPath, data: Any) -> type[BaseModel] | None:
    """The IR model that validates the mapping at ``path`` (``None`` if not a model)."""
    model: type[BaseModel] | None = models.Pipeline
    annotation: Any = None
    for i, part in enumerate(path):
        if model is not None:
            annotation = _field_annotation(model, str(part))
            if annotation is None:
                return None
            model = None
        else:
            # Inside a container annotation (dict[str, X] / list[X]): step into X.
            annotation = _container_item(annotation)
            if annotation is None:
                return None
        found = _model_of(annotation, _get(data, path[: i + 1]))
        if found is not None and not _is_container(annotation):
            model = found
    return model


def _is_container(annotation: Any) -> bool:
    inner = annotation
    while typing.get_origin(inner) is typing.Annotated:
        inner = typing.get_args(inner)[0]
    if typing.get_origin(inner) in (typing.Union, types.UnionType):
        return any(_is_container(a) for a in typing.get_args(inner) if a is not type(None))
    return typing.get_origin(inner) in (dict, list)


def _container_item(annotation: Any) -> Any:
    inner = annotation
    while typing.get_origin(inner) is typing.Annotated:
        inner = typing.get_args(inner)[0]
    if typing.get_origin(inner) in (typing.Union, types.UnionType):
        for a in typing.get_args(inner):
            item = _container_item(a)
            if item is not None:
                return item
        return None
    if typing.get_origin(inner) is dict:
        return typing.get_args(inner)[1]
    if typing.get_origin(inner) is list:
        return typing.get_args(inner)[0]
    return None


def valid_keys(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _what(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def _where(path: YamlPath) -> str:
    if not path:
        return "the pipeline"
    last = path[-1]
    if is_step_path(path):
        return f"step {last!r}"
    return f"{last!r}"


_EXPECTED = {
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
}


def describe_validation_error(err: ErrorDetails, data: Any) -> Diagnostic | None:
    """One pydantic error as a :class:`Diagnostic` (``None`` for noise)."""
    kind = err["type"]
    path = clean_loc(tuple(err["loc"]))
    value = err.get("input")
    ctx = err.get("ctx") or {}
    msg = err["msg"]
    hint: str | None = None
    code = "invalid"
    if kind == "extra_forbidden":
        return _unknown_key(path, data)
    if kind == "missing":
        return _missing_key(path, data)
    if kind == "union_tag_not_found" or kind == "union_tag_invalid":
        msg = _not_a_step_or_run(path, value)
    elif kind == "literal_error":
        msg, hint = _not_a_literal(path, value, ctx)
    elif kind in _EXPECTED:
        msg = f"expected {_EXPECTED[kind]}, got {_what(value)}"
        if kind == "string_type" and isinstance(value, int | float | bool):
            hint = f"quote it: '{str(value).lower() if isinstance(value, bool) else value}'"
    elif kind == "value_error":
        msg = str(ctx.get("error", msg))
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        msg = f"{_what(value)} is out of range: {err['msg'].lower().replace('input should be', 'must be')}"
    elif kind == "too_short":
        msg = f"{path[-1] if path else 'value'!s} must not be empty"
    else:
        msg = msg[0].lower() + msg[1:] if msg else kind
    return Diagnostic(msg, path, hint=hint, code=code)


def _unknown_key(path: YamlPath, data: Any) -> Diagnostic:
    parent = path[:-1]
    key = str(path[-1]) if path else "?"
    model = model_at(parent, data)
    keys = valid_keys(model) if model is not None else []
    parent_data = _get(data, parent)
    if key == "steps" and is_step_path(parent) and isinstance(parent_data, dict) and "run" in parent_data:
        return Diagnostic(
            f"step {parent[-1]!r} has both 'run' and 'steps'",
            path,
            hint="a task step has 'run'; a group has 'steps': pick one",
            code="unknown-key",
        )
    best = nearest(key, keys) if keys else None
    hint = None
    if best:
        hint = f"did you mean {best!r}?"
    elif keys:
        hint = "valid keys here: " + ", ".join(keys)
    return Diagnostic(f"unknown key {key!r} in {_where(parent)}", path, hint=hint, code="unknown-key")


def _missing_key(path: YamlPath, data: Any) -> Diagnostic:
    key = str(path[-1]) if path else "?"
    parent = path[:-1]
    parent_data = _get(data, parent)
    if (
        _is_run_path(parent)
        and isinstance(parent_data, dict)
        and not {"python", "image", "command"} & set(parent_data)
    ):
        return Diagnostic(
            "'run' needs 'python: module.path:function' (a python step) or 'image' and 'command' "
            "(a container step)",
            parent,
            code="missing-key",
        )
    if key == "run" and is_step_path(parent):
        return Diagnostic(
            f"step {parent[-1]!r} needs 'run' (a task step) or 'steps' (a group)",
            path,
            hint="add run: {python: 'module:function'} or run: {image: ..., command: [...]}",
            code="missing-key",
        )
    return Diagnostic(f"missing required key {key!r} in {_where(parent)}", path, code="missing-key")


def _not_a_step_or_run(path: YamlPath, value: Any) -> str:
    if is_step_path(path) or path == ("finally",):
        return f"step {path[-1]!r} must be a mapping with 'run' (a task) or 'steps' (a group), not {_what(value)}"
    if _is_run_path(path):
        return "'run' must be {python: 'module.path:function'} or {image: ..., command: [...]}, not " + _what(
            value
        )
    return f"unexpected {_what(value)}"


def _not_a_literal(path: YamlPath, value: Any, ctx: Mapping[str, Any]) -> tuple[str, str | None]:
    expected = str(ctx.get("expected", ""))
    options = [o.strip().strip("'") for o in expected.replace(" or ", ", ").split(",") if o.strip()]
    msg = f"{_what(value)} is not allowed here; use one of: {', '.join(options)}"
    best = nearest(str(value), options) if isinstance(value, str) else None
    hint = f"did you mean {best!r}?" if best else None
    if (path and path[-1] == "type") or (len(path) >= 2 and path[-2] == "outputs"):
        msg = f"unknown type {value!r}; types are: {', '.join(options)}"
    return msg, hint
