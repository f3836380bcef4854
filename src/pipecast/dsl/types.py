"""Types of the Python DSL: artifact classes, ``Input``/``Output`` markers, ``Param`` and the
mapping from Python annotations to SPEC type names.

Artifact classes subclass ``str`` because that is what a step function really receives at
run time: a local path (SPEC §3.1). ``Output[Model]`` is ``Annotated[Model, OUTPUT]``, so
type checkers see a ``str`` path and the DSL sees an output.
"""

from __future__ import annotations

import collections.abc
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, TypeVar

from pipecast.ir import values


class Artifact(str):
    """A file or folder stored under the target's artifact root; a step gets a local path."""

    type_name: ClassVar[str] = "Artifact"


class Dataset(Artifact):
    """A data set artifact (a file or a folder)."""

    type_name = "Dataset"


class Model(Artifact):
    """A trained model artifact."""

    type_name = "Model"


class Metrics(Artifact):
    """A metrics artifact."""

    type_name = "Metrics"


ARTIFACT_CLASSES: dict[str, type[Artifact]] = {
    cls.type_name: cls for cls in (Artifact, Dataset, Model, Metrics)
}


@dataclass(frozen=True)
class _Direction:
    """Marker inside ``Annotated``: whether an artifact parameter is read or written."""

    kind: str  # "input" | "output"

    def __repr__(self) -> str:
        return self.kind.upper()


INPUT = _Direction("input")
OUTPUT = _Direction("output")

A = TypeVar("A", bound=Artifact)

Input = Annotated[A, INPUT]
"""``Input[Dataset]``: an artifact input; the function receives a local path to read."""

Output = Annotated[A, OUTPUT]
"""``Output[Model]``: an artifact output; the function receives a local path to write to."""


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Param:
    """A pipeline parameter's default with extras, used as the default in the signature.

    ``def p(regions: list = Param(["eu", "us"], description="where to train"))``. Use
    ``Param(description=...)`` without a default for a required parameter with a description.
    """

    default: Any = REQUIRED
    description: str | None = None
    type: str | None = None


_SCALARS: dict[Any, str] = {str: "str", int: "int", float: "float", bool: "bool"}
_LISTS = (list, tuple, collections.abc.Sequence, typing.List, typing.Tuple)  # noqa: UP006
_DICTS = (dict, collections.abc.Mapping, typing.Dict)  # noqa: UP006
_NAMES = {**{t: t for t in values.ALL_TYPES}, "Any": "any", "typing.Any": "any"}


@dataclass(frozen=True)
class TypeInfo:
    """What an annotation means to the DSL.

    Attributes:
        type: a SPEC type name (``str`` … ``Artifact``), ``any``, or ``None`` (unknown).
        direction: ``"input"``/``"output"`` for artifact parameters marked as such.
        description: a ``str`` in ``Annotated[...]`` metadata (pipeline parameters).
    """

    type: str | None
    direction: str | None = None
    description: str | None = None


def type_info(annotation: Any) -> TypeInfo:
    """Map a Python annotation to a :class:`TypeInfo` (never raises)."""
    if annotation is None or annotation is type(None):
        return TypeInfo(None)
    if typing.get_origin(annotation) is Annotated:
        base, *meta = typing.get_args(annotation)
        inner = type_info(base)
        direction = next((m.kind for m in meta if isinstance(m, _Direction)), inner.direction)
        description = next((m for m in meta if isinstance(m, str)), inner.description)
        return TypeInfo(inner.type, direction, description)
    if isinstance(annotation, str):
        return TypeInfo(_NAMES.get(annotation.strip()))
    if annotation is Any:
        return TypeInfo("any")
    if isinstance(annotation, type) and issubclass(annotation, Artifact):
        return TypeInfo(annotation.type_name)
    if annotation in _SCALARS:
        return TypeInfo(_SCALARS[annotation])
    origin = typing.get_origin(annotation) or annotation
    if origin in _LISTS or (isinstance(origin, type) and issubclass(origin, list | tuple)):
        return TypeInfo("list")
    if origin in _DICTS or (isinstance(origin, type) and issubclass(origin, dict)):
        return TypeInfo("dict")
    if origin in (typing.Union, types.UnionType):
        options = {type_info(a).type for a in typing.get_args(annotation) if a is not type(None)}
        return TypeInfo(options.pop() if len(options) == 1 else None)
    return TypeInfo(None)


def output_type_name(value: Any) -> str | None:
    """An output type as written in ``outputs={...}``: a Python type, an artifact class or a name."""
    if isinstance(value, str):
        return value if value in values.ALL_TYPES else None
    info = type_info(value)
    return info.type if info.type in values.ALL_TYPES else None


def hints(obj: Any) -> dict[str, Any]:
    """``typing.get_type_hints`` with extras; falls back to raw (string) annotations."""
    try:
        return typing.get_type_hints(obj, include_extras=True)
    except Exception:
        return dict(getattr(obj, "__annotations__", {}) or {})
