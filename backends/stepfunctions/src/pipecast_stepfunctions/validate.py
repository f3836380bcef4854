"""Check compiled definitions with the real tools: statelint (PyPI) and asl-validator (npm).

statelint reports every problem but misses a Task without ``Resource`` and bad JSONPath;
asl-validator catches those but stops at the first state with schema errors. Both run
when available; a missing tool is a warning, never a silent pass.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pipecast.diagnostics import Diagnostic

REPO_TOOLS = Path(__file__).resolve().parents[4] / "tools" / "asl-validator"


def asl_validator_command() -> list[str] | None:
    """The asl-validator executable: ``$PIPECAST_ASL_VALIDATOR``, the repo's tools folder, or PATH."""
    env = os.environ.get("PIPECAST_ASL_VALIDATOR")
    if env:
        return [env]
    local = REPO_TOOLS / "node_modules" / ".bin" / "asl-validator"
    if local.exists():
        return [str(local)]
    found = shutil.which("asl-validator")
    return [found] if found else None


def statelint_problems(definition: str) -> list[str] | None:
    try:
        from statelint.linter import Linter
    except ImportError:
        return None
    return list(Linter.validate(json.loads(definition)))


def asl_validator_problems(paths: list[Path]) -> dict[str, list[str]] | None:
    """Problems per file name, from one ``asl-validator`` run over every path (Node starts
    once: it costs about a second each time)."""
    cmd = asl_validator_command()
    if cmd is None:
        return None
    if not paths:
        return {}
    args = [a for p in paths for a in ("--json-path", str(p))]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300)
    if proc.returncode == 0:
        return {}
    return _by_file(proc.stdout + "\n" + proc.stderr, [p.name for p in paths], proc.returncode)


def _by_file(text: str, names: list[str], code: int) -> dict[str, list[str]]:
    """Split asl-validator's report (``✕ State machine definition "f" is invalid:`` + lines)."""
    out: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        m = re.search(r'State machine definition "(.+?)" is (valid|invalid)', line)
        if m:
            current = m.group(1) if m.group(2) == "invalid" else None
            if current is not None:
                out.setdefault(current, [])
            continue
        if current is not None and line.strip():
            out[current].append(line.strip())
    if not out:
        # Not a per-file report (a crash, an unknown option): blame every file.
        summary = text.strip() or f"asl-validator exited {code}"
        out = {n: [summary] for n in names}
    return {k: v or ["invalid (no details)"] for k, v in out.items()}


def moto_problems(text: str) -> list[str] | None:
    """Syntax errors from moto's ANTLR grammar of ASL (the one LocalStack's emulator uses; it
    rejects what the service's parser rejects, such as exponents in numbers), or ``None``
    when moto is not installed."""
    try:
        from moto.stepfunctions.parser.asl.parse.asl_parser import (
            AmazonStateLanguageParser,
            ASLParserException,
        )
    except ImportError:
        return None
    try:
        AmazonStateLanguageParser.parse(text)
    except ASLParserException as exc:
        return [str(e) for e in exc.errors] or [repr(exc)]
    except Exception as exc:
        return [f"{type(exc).__name__}: {exc}"]
    return []


def validate_files(files: Mapping[str, str]) -> list[Diagnostic]:
    defs = {rel: text for rel, text in sorted(files.items()) if rel.endswith(".asl.json")}
    diags: list[Diagnostic] = []
    missing = []
    for rel, text in defs.items():
        problems = statelint_problems(text)
        if problems is None:
            missing.append("statelint (pip install 'pipecast-stepfunctions[check]')")
            break
        diags.extend(Diagnostic(f"statelint: {p}", file=rel, code="asl-invalid") for p in problems)
    for rel, text in defs.items():
        problems = moto_problems(text)
        if problems is None:
            missing.append("moto's ASL parser (pip install moto)")
            break
        diags.extend(Diagnostic(f"ASL parser: {p}", file=rel, code="asl-invalid") for p in problems)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for rel, text in defs.items():
            p = Path(tmp) / rel
            p.write_text(text, encoding="utf-8")
            paths.append(p)
        found = asl_validator_problems(paths)
        if found is None:
            missing.append("asl-validator (scripts/install-tools.sh, or npm install -g asl-validator)")
        else:
            for name, problems in sorted(found.items()):
                diags.extend(
                    Diagnostic(f"asl-validator: {p}", file=name, code="asl-invalid") for p in problems
                )
    for tool in missing:
        diags.append(
            Diagnostic(
                f"stepfunctions: {tool} is not installed; output not checked with it",
                severity="warning",
                code="no-validator",
            )
        )
    return diags
