"""The build context of the DSL: which pipeline is being built, the open scopes, the
recorded steps and where in the user's file each one was written.

A pipeline is built by calling its function once with parameter references. While it
runs, a :class:`Builder` is active (a context variable); step calls and ``with`` blocks
record into the innermost open :class:`ScopeRec`.
"""

from __future__ import annotations

import contextvars
import os
import sys
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

from pipecast.diagnostics import Diagnostic, UserError, YamlPath
from pipecast.ir import values
from pipecast.passes.analysis import nearest

if TYPE_CHECKING:
    from pipecast.dsl.groups import Group

_DSL_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_ACTIVE: contextvars.ContextVar[Builder | None] = contextvars.ContextVar("pipecast_dsl_builder", default=None)

Position = tuple[str, int, int]  # file, line, column (1-based)


def _frame_position(frame: FrameType) -> Position:
    line, col = frame.f_lineno, 1
    try:
        # Python 3.11+: the exact span of the instruction being executed (the call).
        pos = list(frame.f_code.co_positions())[frame.f_lasti // 2]
        if pos[0] is not None:
            line = pos[0]
        if pos[2] is not None:
            col = pos[2] + 1
    except (AttributeError, IndexError):
        pass
    return frame.f_code.co_filename, line, col


def user_position(prefer_file: str | None = None) -> Position:
    """Where the user's code called into the DSL.

    With ``prefer_file`` (the pipeline's file), the innermost frame in that file wins, so a
    step called from a helper in another module still points into the pipeline file.
    """
    frame: FrameType | None = sys._getframe(1)
    first: FrameType | None = None
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not filename.startswith(_DSL_DIR):
            if first is None:
                first = frame
            if prefer_file is None or filename == prefer_file:
                return _frame_position(frame)
        frame = frame.f_back
    if first is not None:
        return _frame_position(first)
    return ("<unknown>", 1, 1)


def dsl_error(message: str, hint: str | None = None, where: Position | None = None) -> UserError:
    """A :class:`UserError` located at the user's line (or ``where``)."""
    builder = _ACTIVE.get()
    file, line, col = where or user_position(builder.file if builder else None)
    return UserError(Diagnostic(message, hint=hint, file=file, line=line, column=col, code="dsl"))


def did_you_mean(name: str, options: list[str]) -> str | None:
    best = nearest(name, options)
    return f"did you mean {best!r}?" if best else None


def active() -> Builder | None:
    return _ACTIVE.get()


@dataclass(eq=False)
class StepRec:
    """A recorded task step (also the ``finally`` step, with ``name == 'finally'``)."""

    name: str
    data: dict[str, Any]
    outputs: dict[str, str]
    scope: ScopeRec | None
    where: Position


@dataclass(eq=False)
class ScopeRec:
    """A map of sibling steps: the top level, a group body, or a ``when``'s else branch."""

    path: YamlPath  # YAML path of the mapping that holds this scope's ``steps``
    parent: ScopeRec | None = None
    owner: Group | None = None
    branch: str = "root"  # root | body | then | else
    items: list[StepRec | Group] = field(default_factory=list)

    def chain(self) -> list[ScopeRec]:
        out: list[ScopeRec] = []
        scope: ScopeRec | None = self
        while scope is not None:
            out.append(scope)
            scope = scope.parent
        return out

    def step_path(self, name: str) -> YamlPath:
        return (*self.path, "steps", name)

    def loop_vars(self) -> list[str]:
        from pipecast.dsl.groups import ForEach

        return [s.owner.as_ for s in self.chain() if isinstance(s.owner, ForEach) and s.branch == "body"]


@dataclass(eq=False)
class Builder:
    """State of one pipeline build."""

    file: str
    root: ScopeRec = field(default_factory=lambda: ScopeRec(()))
    stack: list[ScopeRec] = field(default_factory=list)
    names: dict[str, Position] = field(default_factory=dict)
    positions: dict[YamlPath, tuple[int, int]] = field(default_factory=dict)
    finally_: StepRec | None = None
    pending: list[Group] = field(default_factory=list)
    in_finally: bool = False
    #: ``uses:`` text → the loaded sub-pipeline a ``@pipeline`` call recorded (SPEC §17).
    subpipelines: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.stack.append(self.root)

    @property
    def scope(self) -> ScopeRec:
        return self.stack[-1]

    def where(self) -> Position:
        return user_position(self.file)

    def mark(self, path: YamlPath, where: Position) -> None:
        """Remember the line of a YAML path, if it was written in the pipeline's file."""
        file, line, col = where
        if os.path.abspath(file) == self.file:
            self.positions.setdefault(path, (line, col))

    def claim(self, wanted: str, explicit: bool, where: Position, what: str = "step") -> str:
        """Reserve a step name. Explicit names must be free; a default name gets ``_2``, ``_3``…"""
        if not values.STEP_NAME_RE.match(wanted) or wanted in values.RESERVED_STEP_NAMES:
            raise dsl_error(
                f"{what} name {wanted!r} is not a valid step name (^[a-z][a-z0-9_]{{0,62}}$, not 'finally')",
                hint="pass name='...' with lower-case letters, digits and '_'",
                where=where,
            )
        if explicit:
            if wanted in self.names:
                _, line, _ = self.names[wanted]
                raise dsl_error(
                    f"step name {wanted!r} is already used (line {line}); step names are unique "
                    "in the whole pipeline",
                    hint="pass a different name='...'",
                    where=where,
                )
            name = wanted
        else:
            name, n = wanted, 1
            while name in self.names:
                n += 1
                suffix = f"_{n}"
                name = wanted[: 63 - len(suffix)] + suffix
        self.names[name] = where
        return name

    def __enter__(self) -> Builder:
        self._token = _ACTIVE.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.reset(self._token)
