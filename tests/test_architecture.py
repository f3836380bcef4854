"""Architecture rules (issue 16): only the passes parse reference templates and ``when``
conditions; everything else reads the resolved form (pipecast.passes.resolve)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARSERS = frozenset(
    {
        "parse_template",
        "single_ref",
        "parse_condition",
        "parse_path",
        "refs_in",
        "is_template",
        "is_structured_template",
    }
)
PARSE_MODULES = ("pipecast.passes.parse",)
#: Modules the parsers used to live in (issue 16 removed the re-exports; an import from them fails).
OLD_HOMES = ("pipecast.ir.refs", "pipecast.ir.condition")

#: Files that still parse on their own, to be migrated to the resolved form. The list only
#: shrinks: a file listed here that no longer parses fails the test until it is removed.
NOT_MIGRATED: frozenset[str] = frozenset()
#: Exempt for good, not awaiting migration. The step runtime is a separate program: it runs in
#: the step's own process on the target and reads the compiled spec (template text, ``when``
#: gates, container command text), where no pipeline, IR or resolved form exists, so it has to
#: parse strings. It parses with the compiler's parser, through this one module only, so a
#: template means the same at compile and at run time; the other runtime modules are checked.
RUNTIME_ENTRY = frozenset({"src/pipecast/runtime/spec_text.py"})


def _sources() -> list[Path]:
    files = sorted((ROOT / "src" / "pipecast").rglob("*.py"))
    for backend in sorted((ROOT / "backends").glob("*/src")):
        files += sorted(backend.rglob("*.py"))
    passes = ROOT / "src" / "pipecast" / "passes"
    return [f for f in files if passes not in f.parents]


def parser_uses(source: str) -> list[str]:
    """Where a module imports or calls a reference/condition parser: ``line: what``."""
    hits: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module in PARSE_MODULES or (
                node.module == "pipecast.passes" and any(a.name == "parse" for a in node.names)
            ):
                hits.append(f"{node.lineno}: imports {node.module}")
            elif node.module in OLD_HOMES:
                hits += [f"{node.lineno}: imports {a.name}" for a in node.names if a.name in PARSERS]
        elif isinstance(node, ast.Call):
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            if name in PARSERS:
                hits.append(f"{node.lineno}: calls {name}()")
    return hits


def test_the_check_finds_parser_calls() -> None:
    assert parser_uses("from pipecast.ir.refs import Ref, single_ref\n") == ["1: imports single_ref"]
    assert parser_uses("from pipecast.passes.parse import render\n") == ["1: imports pipecast.passes.parse"]
    assert parser_uses("import x\nx.cond.parse_condition('a')\n") == ["2: calls parse_condition()"]
    assert parser_uses("from pipecast.passes.resolve import Text\nText(())\n") == []


def test_only_passes_parse_references_and_conditions() -> None:
    offending: dict[str, list[str]] = {}
    for path in _sources():
        hits = parser_uses(path.read_text())
        if hits:
            offending[path.relative_to(ROOT).as_posix()] = hits
    new = {f: h for f, h in offending.items() if f not in NOT_MIGRATED | RUNTIME_ENTRY}
    assert not new, (
        "these modules parse reference templates or conditions; read the resolved form "
        f"(index.resolved, pipecast.passes.resolve) instead: {new}"
    )
    done = sorted((NOT_MIGRATED | RUNTIME_ENTRY) - set(offending))
    assert not done, f"migrated; remove from NOT_MIGRATED in tests/test_architecture.py: {done}"
