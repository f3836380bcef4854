"""User-facing problems: where they are, what is wrong, and how to fix them.

Every user error in pipecast is a :class:`Diagnostic`. It names the file, the location
(YAML path plus ``line:col`` from the :class:`SourceMap`, or a Python line for DSL files)
and a hint. :class:`UserError` carries one or more of them; the CLI prints them and exits
with code 1, without a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

Severity = Literal["error", "warning"]
YamlPath = tuple[str | int, ...]


def format_path(path: YamlPath) -> str:
    """``("steps", "train", "inputs", "x")`` → ``steps.train.inputs.x``; list items as ``[i]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<top>"


@dataclass
class SourceMap:
    """Where each YAML path was written: ``path → (line, column)``, both 1-based."""

    file: str = "<pipeline>"
    positions: dict[YamlPath, tuple[int, int]] = field(default_factory=dict)
    #: Where each mapping value starts: ``(line, column, quote)``; ``quote`` is the number of
    #: quote characters before the text on a single-line scalar, or -1 when the value spans
    #: lines. Lets errors inside a string (a ``when`` condition) point at the exact column.
    value_positions: dict[YamlPath, tuple[int, int, int]] = field(default_factory=dict)

    def locate(self, path: YamlPath) -> tuple[int, int] | None:
        """The position of the path, or of its nearest written ancestor."""
        for end in range(len(path), -1, -1):
            pos = self.positions.get(path[:end])
            if pos is not None:
                return pos
        return None

    def locate_in_value(self, path: YamlPath, offset: int) -> tuple[int, int] | None:
        """The position of the character at 0-based ``offset`` inside a single-line string value."""
        pos = self.value_positions.get(path)
        if pos is None or pos[2] < 0:
            return None
        return pos[0], pos[1] + pos[2] + offset


#: The ``file`` of a diagnostic about a command-line option value: no pipeline position.
COMMAND_LINE = "command line"


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a pipeline, a settings file or a compiled output."""

    message: str
    path: YamlPath = ()
    hint: str | None = None
    severity: Severity = "error"
    code: str = "invalid"
    file: str | None = None
    line: int | None = None
    column: int | None = None
    #: The target whose check found it (``None``: the format itself).
    target: str | None = None

    def located(self, source: SourceMap | None) -> Diagnostic:
        """A copy with file, line and column filled in from a source map."""
        if source is None or self.file == COMMAND_LINE:
            return self
        pos = source.locate(self.path) if self.line is None else (self.line, self.column or 1)
        line, column = pos if pos else (None, None)
        return replace(self, file=self.file or source.file, line=line, column=column)

    def render(self) -> str:
        where = self.file or "<pipeline>"
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        text = f"{where}: {self.severity}: {self.message}"
        if self.path:
            text += f"\n  at {format_path(self.path)}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def to_dict(self) -> dict[str, object]:
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": format_path(self.path) if self.path else None,
            "hint": self.hint,
            "target": self.target,
        }


def for_target(d: Diagnostic, target: str) -> Diagnostic:
    """``d`` as a diagnostic of ``target``: its ``target`` set (unless it names one already) and
    its message starting with the one prefix every target's diagnostics share,
    ``target '<name>':`` (or ``target '<name>' (<setting>):``). A message a backend wrote as
    ``<name>: ...`` or ``<name> (<setting>): ...`` is rewritten to it; one with no prefix gets it
    (one that starts ``target '<name>'`` already is left as it is)."""
    name = d.target or target
    if d.message.startswith(f"target {name!r}"):
        return replace(d, target=name)
    found = re.match(rf"(?:target )?'?{re.escape(name)}'?( \([^)]*\))?: ", d.message)
    qualifier, rest = (found.group(1) or "", d.message[found.end() :]) if found else ("", d.message)
    return replace(d, target=name, message=f"target {name!r}{qualifier}: {rest}")


class UserError(Exception):
    """An error in what the user gave us. The CLI prints it and exits 1, no traceback."""

    def __init__(self, diagnostics: Diagnostic | Sequence[Diagnostic] | str) -> None:
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(diagnostics)]
        elif isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(d.render() for d in self.diagnostics)


def errors(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if d.severity == "error"]


def raise_if_errors(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Raise :class:`UserError` if any diagnostic is an error; return the warnings."""
    items = list(diagnostics)
    errs = errors(items)
    if errs:
        raise UserError(errs)
    return items
