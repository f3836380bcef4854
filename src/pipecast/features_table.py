"""The feature table: every IR feature x every installed target, from the backends' own
declarations (:attr:`pipecast.backend.Backend.features`), as Markdown (for the README) or
plain text (for a terminal).

The README embeds the Markdown between two markers; :func:`check_readme` tells whether that
copy is stale and :func:`update_readme` rewrites it, so the table is never edited by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipecast.backend import Backend, Feature, Support

START = "<!-- feature-table:start -->"
END = "<!-- feature-table:end -->"
REFRESH = "pipecast targets --table --update-readme README.md"

#: Cell text per support level; a note (how it is done, or why not) goes to a footnote.
_CELL = {"native": "yes", "runtime": "runtime", "approximate": "approx", "unsupported": "no"}
_LEGEND = (
    "yes: the target does it; runtime: the pipecast step runtime does it inside the step; "
    "approx: an approximation, accepted only with --lenient (a warning), otherwise an error; "
    "no: a compile error that says what to do instead."
)


@dataclass(frozen=True)
class _Note:
    target: str
    feature: Feature
    support: Support

    def text(self) -> str:
        level = {"runtime": "runtime", "approximate": "approximated", "unsupported": "not supported"}
        out = f"{self.target}, {self.feature.value}: {level[self.support.level]}"
        if self.support.note:
            out += f": {self.support.note}"
        if self.support.instead:
            out += f" (instead: {self.support.instead})"
        return out


def _backends(names: list[str] | None = None) -> list[Backend]:
    from pipecast import registry

    return [registry.get(n) for n in (names if names is not None else registry.available())]


def readme_targets() -> list[str]:
    """The README's columns: every installed target and every first-party one
    (:data:`pipecast.registry.DISTRIBUTED`), ``local`` first; one that is not installed makes
    :func:`readme_block` a user error naming its distribution, never a table without it."""
    from pipecast import registry

    names = set(registry.available()) | set(registry.DISTRIBUTED)
    return sorted(names, key=lambda n: (n != "local", n))


def not_installed() -> list[str]:
    """First-party targets whose distribution is not installed here."""
    from pipecast import registry

    return sorted(set(registry.DISTRIBUTED) - set(registry.available()))


def _grid(backends: list[Backend]) -> tuple[list[list[str]], list[_Note]]:
    """Rows of cells (first column: the feature) and the numbered notes they refer to."""
    rows: list[list[str]] = []
    notes: list[_Note] = []
    for feature in Feature:
        row = [feature.value]
        for backend in backends:
            sup = backend.support(feature)
            cell = _CELL[sup.level]
            if sup.level != "native":
                notes.append(_Note(backend.name, feature, sup))
                cell += f" [{len(notes)}]"
            row.append(cell)
        rows.append(row)
    return rows, notes


def _md_escape(text: str) -> str:
    """Table-cell safe Markdown: no pipes or newlines; ``<x>`` outside code spans shown, not
    taken for HTML."""
    parts = text.replace("\n", " ").split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts).replace("|", "\\|")


def render_table(fmt: str = "markdown", targets: list[str] | None = None) -> str:
    """The feature table.

    Args:
        fmt: ``markdown`` (GitHub table + numbered notes) or ``text`` (aligned columns).
        targets: target names (default: every installed target, ``local`` first).

    Returns:
        The table, ending with a newline.
    """
    backends = _backends(targets)
    rows, notes = _grid(backends)
    header = ["feature", *(b.name for b in backends)]
    if fmt == "markdown":
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows),
            "",
            _LEGEND,
            "",
            *(f"{i}. {_md_escape(n.text())}" for i, n in enumerate(notes, 1)),
        ]
        return "\n".join(lines) + "\n"
    if fmt != "text":
        raise ValueError(f"unknown table format {fmt!r} (markdown or text)")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt_row = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    lines = [fmt_row(header), "-" * len(fmt_row(header)), *(fmt_row(r) for r in rows), "", _LEGEND, ""]
    lines += [f"[{i}] {n.text()}" for i, n in enumerate(notes, 1)]
    return "\n".join(lines) + "\n"


def readme_block(targets: list[str] | None = None) -> str:
    """What belongs between the README markers (markers included); ``targets`` defaults to
    :func:`readme_targets`."""
    note = f"<!-- generated from the backends' declarations; refresh with: {REFRESH} -->"
    table = render_table("markdown", targets if targets is not None else readme_targets())
    return f"{START}\n{note}\n\n{table}{END}"


def _split(text: str, path: Path) -> tuple[str, str, str]:
    from pipecast.diagnostics import Diagnostic, UserError

    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise UserError(
            Diagnostic(
                f"{path} has no feature-table markers",
                file=str(path),
                hint=f"add the lines {START} and {END} where the table belongs",
            )
        )
    return text[:start], text[start : end + len(END)], text[end + len(END) :]


def check_readme(path: str | Path, targets: list[str] | None = None) -> bool:
    """True when the README's embedded table equals the generated one."""
    p = Path(path)
    _before, block, _after = _split(p.read_text(encoding="utf-8"), p)
    return block == readme_block(targets)


def update_readme(path: str | Path, targets: list[str] | None = None) -> bool:
    """Rewrite the table between the markers; True when the file changed."""
    from pipecast.io import atomic_write

    p = Path(path)
    text = p.read_text(encoding="utf-8")
    before, block, after = _split(text, p)
    fresh = readme_block(targets)
    if block == fresh:
        return False
    atomic_write(p, before + fresh + after)
    return True
