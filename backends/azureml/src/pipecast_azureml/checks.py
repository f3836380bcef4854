"""pipecast's own checks of compiled Azure ML files: what ``load_job``/``_validate()`` miss.

* every ``${{inputs.X}}`` / ``${{outputs.Y}}`` in a command is declared by its component, and
  sits alone in a quoted here-document (Azure ML pastes values unquoted: anywhere else a
  quote or ``$(...)`` in a value would break or inject into the command);
* every ``${{parent.inputs.X}}`` is an input of the enclosing pipeline, every
  ``${{parent.outputs.Y}}`` an output of it;
* every ``${{parent.jobs.J...}}`` points at an existing job of the same pipeline, and
  ``.outputs.O`` at an output that job has;
* pipeline nodes and command nodes using a command component file point at files that exist,
  and such a command node binds every required input of its file;
* the jobs of each pipeline form no cycle;
* ``settings.on_finalize`` names a job.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any

from pipecast.diagnostics import Diagnostic
from pipecast.passes.analysis import find_cycle

_EXPR = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")
_PRIMITIVE = {"string", "integer", "number", "boolean"}


def _problem(file: str, where: str, message: str) -> Diagnostic:
    return Diagnostic(f"{where}: {message}", file=file, code="azureml-check")


def _strings(value: Any, path: str) -> list[tuple[str, str]]:
    """Every string inside ``value`` with its dotted path."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, f"{path}[{i}]")]
    return []


class _Files:
    def __init__(self, docs: Mapping[str, Any]) -> None:
        self.docs = docs

    def component(self, base: str, ref: str) -> tuple[str, Any] | None:
        rel = posixpath.normpath(posixpath.join(posixpath.dirname(base), ref))
        doc = self.docs.get(rel)
        return (rel, doc) if isinstance(doc, dict) else None


def _job_outputs(files: _Files, file: str, jobs: dict[str, Any], name: str) -> set[str] | None:
    """The outputs a job exposes (``None`` when it cannot be known)."""
    job = jobs.get(name)
    if not isinstance(job, dict):
        return None
    kind = job.get("type")
    if kind == "command":
        comp = job.get("component")
        if isinstance(comp, str):  # a command component file (SPEC §16)
            found = files.component(file, comp)
            comp = found[1] if found else None
        return set((comp or {}).get("outputs") or {}) if isinstance(comp, dict) else None
    if kind == "pipeline":
        found = files.component(file, str(job.get("component", "")))
        return set(found[1].get("outputs") or {}) if found else None
    if kind == "parallel_for":
        body = _EXPR.fullmatch(str(job.get("body", "")).strip())
        if body and body.group(1).startswith("parent.jobs."):
            return _job_outputs(files, file, jobs, body.group(1).split(".")[2])
        return None
    return set()


def _unsafe_substitutions(file: str, where: str, command: str) -> list[Diagnostic]:
    """Azure ML pastes values into the command text unquoted: each ``${{...}}`` must be a whole
    line inside a quoted here-document (``<<'END'``), the one place the shell reads nothing."""
    out = []
    lines = command.split("\n")
    for i, line in enumerate(lines):
        if "${{" not in line and "$[[" not in line:
            continue
        opener = re.search(r"<<-?'([A-Za-z_][A-Za-z0-9_]*)'$", lines[i - 1]) if i else None
        if not (_EXPR.fullmatch(line) and opener and i + 1 < len(lines) and lines[i + 1] == opener.group(1)):
            out.append(
                _problem(
                    file,
                    where,
                    f"line {i + 1} ({line[:60]!r}) puts an Azure ML expression where the shell parses "
                    "the value; it must be the only line of a quoted here-document",
                )
            )
    return out


def check_pipeline(files: _Files, file: str, doc: dict[str, Any]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    jobs = doc.get("jobs") or {}
    deps: dict[str, set[str]] = {name: set() for name in jobs}
    for name, job in jobs.items():
        where = f"jobs.{name}"
        if not isinstance(job, dict):
            out.append(_problem(file, where, "is not a mapping"))
            continue
        comp = job.get("component")
        if job.get("type") == "command" and isinstance(comp, str):
            found = files.component(file, comp)
            if found is None:
                out.append(_problem(file, f"{where}.component", f"component file {comp!r} does not exist"))
            else:
                out.extend(_command_job(file, where, job, found[1], found[0]))
        elif job.get("type") == "command" and isinstance(comp, dict):
            out.extend(_command_job(file, where, job, comp))
        if job.get("type") == "pipeline":
            out.extend(_pipeline_job(files, file, where, job, comp))
        out.extend(_parent_refs(files, file, doc, name, deps[name]))
    final = (doc.get("settings") or {}).get("on_finalize")
    if final is not None and final not in jobs:
        out.append(_problem(file, "settings.on_finalize", f"no job {final!r}"))
    # Jobs in name order, each trying its dependencies from the last name back.
    cycle = find_cycle({k: sorted(deps[k], reverse=True) for k in sorted(deps)})
    if cycle:
        out.append(_problem(file, "jobs", "cycle: " + " -> ".join(cycle)))
    return out


def _command_job(
    file: str, where: str, job: dict[str, Any], comp: dict[str, Any], comp_file: str | None = None
) -> list[Diagnostic]:
    """A command job: its command's expressions and its bindings name declared inputs/outputs.
    ``comp_file``: the command component file the job uses (its command is checked there);
    every required input it declares is bound by the job."""
    out: list[Diagnostic] = []
    declared_in = set(comp.get("inputs") or {})
    declared_out = set(comp.get("outputs") or {})
    command = str(comp.get("command", ""))
    cfile, cwhere = (comp_file, "command") if comp_file else (file, f"{where}.component.command")
    out.extend(_unsafe_substitutions(cfile, cwhere, command))
    for m in _EXPR.finditer(command):
        parts = m.group(1).split(".")
        if parts[0] == "inputs" and (len(parts) != 2 or parts[1] not in declared_in):
            out.append(_problem(cfile, cwhere, f"${{{{{m.group(1)}}}}} is not a declared input"))
        elif parts[0] == "outputs" and (len(parts) != 2 or parts[1] not in declared_out):
            out.append(_problem(cfile, cwhere, f"${{{{{m.group(1)}}}}} is not a declared output"))
    if comp_file:
        for name, decl in sorted((comp.get("inputs") or {}).items()):
            required = not (isinstance(decl, dict) and (decl.get("optional") or "default" in decl))
            if required and name not in (job.get("inputs") or {}):
                out.append(_problem(file, f"{where}.inputs", f"{comp_file} input {name!r} is not bound"))
    for bound in job.get("inputs") or {}:
        if bound not in declared_in:
            out.append(_problem(file, f"{where}.inputs.{bound}", "the component declares no such input"))
    for bound in job.get("outputs") or {}:
        if bound not in declared_out:
            out.append(_problem(file, f"{where}.outputs.{bound}", "the component declares no such output"))
    return out


def _pipeline_job(files: _Files, file: str, where: str, job: dict[str, Any], comp: Any) -> list[Diagnostic]:
    """A pipeline job: its component file exists and declares every bound input."""
    found = files.component(file, str(comp))
    if found is None:
        return [_problem(file, f"{where}.component", f"component file {comp!r} does not exist")]
    declared_in = set(found[1].get("inputs") or {})
    return [
        _problem(file, f"{where}.inputs.{bound}", f"{found[0]} declares no such input")
        for bound in job.get("inputs") or {}
        if bound not in declared_in
    ]


def _parent_refs(
    files: _Files, file: str, doc: dict[str, Any], name: str, deps: set[str]
) -> list[Diagnostic]:
    """Every ``${{parent.*}}`` of job ``name`` (outside its component) names a pipeline input or
    output, or another job (and its output); the jobs it reads go into ``deps``."""
    out: list[Diagnostic] = []
    jobs = doc.get("jobs") or {}
    inputs = set(doc.get("inputs") or {})
    outputs = set(doc.get("outputs") or {})
    job = jobs[name]
    for path, text in _strings({k: v for k, v in job.items() if k != "component"}, f"jobs.{name}"):
        for m in _EXPR.finditer(text):
            parts = m.group(1).split(".")
            if parts[0] != "parent":
                continue
            if parts[1:2] == ["inputs"] and (len(parts) != 3 or parts[2] not in inputs):
                out.append(_problem(file, path, f"${{{{{m.group(1)}}}}}: the pipeline has no such input"))
            elif parts[1:2] == ["outputs"] and (len(parts) != 3 or parts[2] not in outputs):
                out.append(_problem(file, path, f"${{{{{m.group(1)}}}}}: the pipeline has no such output"))
            elif parts[1:2] == ["jobs"]:
                out.extend(_job_ref(files, file, jobs, name, path, m.group(1), parts, deps))
    return out


def _job_ref(
    files: _Files,
    file: str,
    jobs: dict[str, Any],
    name: str,
    path: str,
    expr: str,
    parts: list[str],
    deps: set[str],
) -> list[Diagnostic]:
    """``${{parent.jobs.<target>[.outputs.<o>]}}`` in job ``name``."""
    target = parts[2] if len(parts) > 2 else ""
    if target not in jobs:
        return [_problem(file, path, f"${{{{{expr}}}}}: no job {target!r}")]
    if target == name:
        return [_problem(file, path, "a job binds to itself")]
    deps.add(target)
    if len(parts) == 5 and parts[3] == "outputs":
        have = _job_outputs(files, file, jobs, target)
        if have is not None and parts[4] not in have:
            return [_problem(file, path, f"${{{{{expr}}}}}: job {target!r} has no output {parts[4]!r}")]
    return []


def check_files(files: Mapping[str, str]) -> list[Diagnostic]:
    """Run every check over the compiled files (relative path → YAML text)."""
    import yaml

    docs: dict[str, Any] = {}
    out: list[Diagnostic] = []
    for rel, text in files.items():
        try:
            docs[rel] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            out.append(_problem(rel, "<file>", f"not valid YAML: {exc}"))
    index = _Files(docs)
    for rel, doc in sorted(docs.items()):
        if isinstance(doc, dict) and doc.get("type") == "pipeline":
            out.extend(check_pipeline(index, rel, doc))
    return out
