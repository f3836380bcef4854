"""Components (SPEC §16) and sub-pipelines (SPEC §17): the loader replaces every ``uses:`` step
before the IR is built, so validation, the simulator and every backend see ordinary steps.

* A **component** ``uses:`` becomes a :class:`~pipecast.ir.models.TaskStep`: the component's
  fields, then the step's own fields on top (``retry``, ``resources``, ``env`` and ``secrets``
  key by key, everything else whole), the component's input defaults filled in, and a
  :class:`~pipecast.ir.models.ComponentRef` naming the file so targets with a component
  concept can emit one component per file and reuse it.
* A **sub-pipeline** ``uses:`` becomes a *plain group* (a ``when`` group if the step has
  ``when``) with a :class:`~pipecast.ir.models.SubPipelineRef`: the called pipeline's steps
  renamed ``<step>.<inner>`` (unique pipeline-wide and equal to their run-record key base),
  its own ``defaults`` applied to them, ``{{ params.X }}`` replaced by the step's input
  binding (its default if not given), ``steps.<inner>`` references and ``after`` entries
  renamed, and its ``outputs`` as the group's outputs.

Every mistake is reported with the file it is in (the using file or the component/pipeline
file) and its position. Decisions where SPEC is silent are in docs/semantics.md.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipecast.diagnostics import Diagnostic, SourceMap, UserError, YamlPath
from pipecast.ir import condition as cond
from pipecast.ir import values
from pipecast.ir.models import ComponentFile, UsesStep
from pipecast.ir.refs import Ref, RefSyntaxError, render_value
from pipecast.passes.parse import is_structured_template, parse_condition, parse_template, refs_in

#: Keys the loader sets on lowered steps. A file may hold them (``pipecast export`` writes the
#: lowered form, which loads back to the same IR); they are not in the JSON Schema.
MARKERS = ("component", "subpipeline")
#: The most steps sub-pipelines may inline into one pipeline.
MAX_INLINED_STEPS = 50_000
#: Step fields merged key by key when a using step overrides a component's (docs/semantics.md).
_MERGED = ("retry", "resources", "env", "secrets")
#: Component fields copied onto the step (then overridden by the step's own).
_COMPONENT_FIELDS = (
    "run",
    "image",
    "retry",
    "timeout",
    "resources",
    "env",
    "secrets",
    "cache",
    "description",
)
_OVERRIDES = (
    "image",
    "retry",
    "timeout",
    "resources",
    "env",
    "secrets",
    "cache",
    "description",
    "after",
    "when",
)
#: Fields a step using a sub-pipeline may have besides ``uses``.
_SUBPIPELINE_FIELDS = ("uses", "inputs", "outputs", "after", "when", "description")
#: A component may not have these (SPEC §16).
_NOT_IN_COMPONENT = {
    "after": "a component cannot know its neighbours; put 'after' on the step that uses it",
    "when": "put 'when' on the step that uses the component",
    "uses": "a component is one task step; to combine steps, write a pipeline and use it as a sub-pipeline",
}


@dataclass(frozen=True)
class _Edge:
    """One ``uses:`` of a pipeline file being loaded: where it is written and what it names."""

    file: Path
    display: str
    line: int | None
    column: int | None
    uses: str
    path: YamlPath = ()

    @property
    def where(self) -> str:
        return f"{self.display}:{self.line}:{self.column}" if self.line is not None else self.display


@dataclass
class Context:
    """State shared by one top-level load: caches and the chain of files being loaded."""

    top_dir: Path
    chain: tuple[Path, ...] = ()
    edges: tuple[_Edge, ...] = ()
    components: dict[Path, tuple[ComponentFile, Any] | None] = field(default_factory=dict)
    pipelines: dict[Path, Any] = field(default_factory=dict)
    #: (using folder, ``uses:`` text) → the file; file → its data and source map (read once).
    targets: dict[tuple[Path, str], Path | None] = field(default_factory=dict)
    raw: dict[Path, tuple[Any, SourceMap | None]] = field(default_factory=dict)
    component_data: dict[Path, dict[str, Any]] = field(default_factory=dict)
    #: Steps inlined so far by sub-pipelines (a chain of files each using the next twice
    #: doubles at every level: bounded like alias expansion in the loader).
    inlined: list[int] = field(default_factory=lambda: [0])

    def enter(self, file: Path, edge: _Edge | None) -> Context:
        return Context(
            self.top_dir,
            (*self.chain, file),
            (*self.edges, edge) if edge is not None else self.edges,
            self.components,
            self.pipelines,
            self.targets,
            self.raw,
            self.component_data,
            self.inlined,
        )


def has_uses(data: Any) -> bool:
    """Whether a pipeline's data has a ``uses:`` step (or a marker key) anywhere."""
    if not isinstance(data, dict):
        return False
    return _steps_have_uses(data.get("steps")) or _step_has_uses(data.get("finally"))


def _steps_have_uses(steps: Any) -> bool:
    if not isinstance(steps, dict):
        return False
    return any(_step_has_uses(s) for s in steps.values())


def _step_has_uses(step: Any) -> bool:
    if not isinstance(step, dict):
        return False
    if "uses" in step or "component" in step or "subpipeline" in step:
        return True
    if "steps" in step:
        if _steps_have_uses(step["steps"]) or _step_has_uses(step.get("finally")):
            return True
        else_ = step.get("else")
        return isinstance(else_, dict) and _steps_have_uses(else_.get("steps"))
    return False


class Expander:
    """Replaces the ``uses:`` steps of one file's data (see the module docstring)."""

    def __init__(
        self, file: Path, source: SourceMap, ctx: Context, inline: dict[str, Any] | None = None
    ) -> None:
        self.file = file
        self.source = source
        self.ctx = ctx
        #: ``uses:`` text → an already loaded pipeline (the DSL's ``@pipeline`` calls).
        self.inline = inline or {}
        self.problems: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []

    # ------------------------------------------------------------------ walking

    def expand(self, data: dict[str, Any]) -> dict[str, Any]:
        out = dict(data)
        if isinstance(data.get("steps"), dict):
            out["steps"] = self._steps(data["steps"], ("steps",))
        fin = data.get("finally")
        if isinstance(fin, dict):
            out["finally"] = self._finally(fin, ("finally",))
        return out

    def _steps(self, steps: dict[str, Any], path: YamlPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, step in steps.items():
            sub = (*path, name)
            if not isinstance(step, dict):
                out[name] = step
                continue
            if "uses" in step:
                new = self._uses(str(name), step, sub)
                if new is not None:
                    out[name] = new
                continue
            if "steps" in step and isinstance(step["steps"], dict):
                step = {**step, "steps": self._steps(step["steps"], (*sub, "steps"))}
                else_ = step.get("else")
                if isinstance(else_, dict) and isinstance(else_.get("steps"), dict):
                    step["else"] = {**else_, "steps": self._steps(else_["steps"], (*sub, "else", "steps"))}
                if isinstance(step.get("finally"), dict):
                    step["finally"] = self._finally(step["finally"], (*sub, "finally"))
            out[name] = step
        return out

    def _finally(self, step: dict[str, Any], path: YamlPath) -> Any:
        if "uses" not in step:
            return step
        return self._uses("finally", step, path, pipeline_allowed=False)

    def problem(self, message: str, path: YamlPath, *, hint: str | None = None, code: str = "uses") -> None:
        self.problems.append(Diagnostic(message, path, hint=hint, code=code).located(self.source))

    # ------------------------------------------------------------------ one uses: step

    def _uses(
        self, name: str, step: dict[str, Any], path: YamlPath, *, pipeline_allowed: bool = True
    ) -> dict[str, Any] | None:
        from pipecast.loader import diagnostics_from_validation

        try:
            UsesStep.model_validate(step)
        except ValidationError as exc:
            for d in diagnostics_from_validation(exc, step):
                self.problems.append(replace(d, path=(*path, *d.path)).located(self.source))
            return None
        text = step["uses"]
        if text in self.inline:
            if not pipeline_allowed:
                self.problem(
                    f"{text!r} is a pipeline; a 'finally' step may use a component only", (*path, "uses")
                )
                return None
            return self._subpipeline(name, step, path, Path(text), called=self.inline[text])
        key = (self.file.parent, text)
        if key not in self.ctx.targets:
            try:
                found: Path | None = (self.file.parent / text).resolve()
                if found is not None and not found.is_file():
                    found = None
            except (OSError, ValueError, RuntimeError):  # a NUL byte, a symlink loop
                found = None
            self.ctx.targets[key] = found
        target = self.ctx.targets[key]
        if target is None:
            self.problem(
                f"no such file: {text!r} (read relative to the folder of {self.source.file})",
                (*path, "uses"),
                hint="give the component or pipeline file's path relative to this file",
                code="no-file",
            )
            return None
        data, source = self._read(target)
        if data is None or source is None:
            return None
        if isinstance(data, dict) and "component" in data:
            return self._component(name, step, path, target, data, source)
        if isinstance(data, dict) and ("steps" in data or "name" in data):
            if not pipeline_allowed:
                self.problem(
                    f"{text!r} is a pipeline; a 'finally' step may use a component only",
                    (*path, "uses"),
                    hint="use a component file here, or call the pipeline from a step",
                )
                return None
            return self._subpipeline(name, step, path, target)
        self.problem(
            f"{text!r} is neither a component file ('component: <name>') nor a pipeline file ('name:', 'steps:')",
            (*path, "uses"),
            hint="start a component file with 'pipecast: 1' and 'component: <name>' (SPEC §16)",
        )
        return None

    def _read(self, target: Path) -> tuple[Any, SourceMap | None]:
        if target not in self.ctx.raw:
            self.ctx.raw[target] = self._read_file(target)
        return self.ctx.raw[target]

    def _read_file(self, target: Path) -> tuple[Any, SourceMap | None]:
        from pipecast import loader

        try:
            loader._check_file(target)
            text = target.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.problems.append(Diagnostic(f"cannot read {self._display(target)}: {exc}", code="no-file"))
            return None, None
        display = self._display(target)
        try:
            if target.suffix == ".json":
                data, source, problems = loader.parse_json(text, display)
            else:
                data, source, problems = loader.parse_yaml(text, display)
        except UserError as exc:
            self.problems.extend(exc.diagnostics)
            return None, None
        if problems:
            self.problems.extend(d.located(source) for d in problems)
            return None, None
        return data, source

    def _display(self, target: Path) -> str:
        """How a used file is named in messages: relative to the using file's folder, as the
        user wrote it (joined to the using file's own name as shown)."""
        base = Path(self.source.file).parent
        try:
            rel = os.path.relpath(target, self.file.parent)
        except ValueError:
            return str(target)
        return os.path.normpath(str(base / rel))

    def _rel(self, target: Path) -> str:
        """The marker path: relative to the top-level pipeline's folder, POSIX, machine-free."""
        if str(target) in self.inline:
            return str(target)
        return _relpath(target, self.ctx.top_dir)

    # ------------------------------------------------------------------ components

    def _load_component(self, target: Path, data: Any, source: SourceMap) -> ComponentFile | None:
        from pipecast.loader import diagnostics_from_validation

        if target in self.ctx.components:
            cached = self.ctx.components[target]
            return None if cached is None else cached[0]
        problems: list[Diagnostic] = []
        for key, why in _NOT_IN_COMPONENT.items():
            if key in data:
                problems.append(
                    Diagnostic(
                        f"a component may not have {key!r} (SPEC §16)", (key,), hint=why, code="component"
                    ).located(source)
                )
        comp = None
        if not problems:
            try:
                comp = ComponentFile.model_validate(data)
            except ValidationError as exc:
                problems.extend(d.located(source) for d in diagnostics_from_validation(exc, data))
        self.problems.extend(problems)
        self.ctx.components[target] = None if comp is None else (comp, source)
        return comp

    def _outputs_fit(self, label: str, comp: ComponentFile, step: dict[str, Any], path: YamlPath) -> bool:
        """Whether the outputs a ``uses:`` step writes are the component's (each misfit reported)."""
        ok = True
        for key, kind in (step.get("outputs") or {}).items():
            declared = comp.outputs.get(key)
            if declared is None:
                ok = False
                self.problem(
                    f"{label} declares no output {key!r}",
                    (*path, "outputs", key),
                    hint=_options("its outputs are", list(comp.outputs), key),
                    code="component-output",
                )
            elif declared != kind:
                ok = False
                self.problem(
                    f"output {key!r} of {label} is {_a(declared)}, not {_a(kind)}",
                    (*path, "outputs", key),
                    hint=f"write {key}: {declared}, or leave 'outputs' out (the component declares them)",
                    code="component-output",
                )
        return ok

    def _component(
        self, name: str, step: dict[str, Any], path: YamlPath, target: Path, data: Any, source: SourceMap
    ) -> dict[str, Any] | None:
        comp = self._load_component(target, data, source)
        if comp is None:
            return None
        label = f"component {comp.component!r} ({step['uses']})"
        given = step.get("inputs") or {}
        declared = {k: (spec.type, spec.has_default) for k, spec in comp.inputs.items()}
        ok = self._given_fit(name, step, path, label, declared, "input")
        ok = self._outputs_fit(label, comp, step, path) and ok
        if not ok:
            return None
        cdata = self.ctx.component_data.get(target)
        if cdata is None:
            cdata = self.ctx.component_data[target] = comp.to_data()
        task: dict[str, Any] = {k: cdata[k] for k in _COMPONENT_FIELDS if k in cdata}
        for key in _OVERRIDES:
            if key not in step:
                continue
            mine, theirs = step[key], task.get(key)
            task[key] = (
                {**theirs, **mine}
                if key in _MERGED and isinstance(theirs, dict) and isinstance(mine, dict)
                else mine
            )
        inputs = {}
        for key, spec in comp.inputs.items():
            if key in given:
                inputs[key] = given[key]
            elif spec.has_default:
                inputs[key] = spec.default
        if inputs:
            task["inputs"] = inputs
        if comp.outputs:
            task["outputs"] = dict(comp.outputs)
        task["component"] = {
            "name": comp.component,
            "path": self._rel(target),
            "inputs": {k: s.type for k, s in comp.inputs.items()},
            "outputs": dict(comp.outputs),
            **({"description": comp.description} if comp.description is not None else {}),
        }
        return task

    def _given_fit(
        self,
        name: str,
        step: dict[str, Any],
        path: YamlPath,
        label: str,
        declared: Mapping[str, tuple[str, bool]],
        noun: str,
    ) -> bool:
        """The ``uses:`` step's ``inputs`` against what the used file declares (name → type and
        whether it has a default): no unknown name, literals of the declared type, nothing
        required left out. One rule for component inputs and sub-pipeline params."""
        ok = True
        given = step.get("inputs") or {}
        for key, value in given.items():
            if key not in declared:
                ok = False
                self.problem(
                    f"{label} has no {noun} {key!r}",
                    (*path, "inputs", key),
                    hint=_options(
                        f"its {'inputs' if noun == 'input' else 'params'} are", list(declared), key
                    ),
                    code="component-input",
                )
            elif not self._literal_fits(
                value, declared[key][0], f"{noun} {key!r} of {label}", (*path, "inputs", key)
            ):
                ok = False
        missing = [k for k, (_type, has_default) in declared.items() if k not in given and not has_default]
        if missing:
            ok = False
            self.problem(
                f"step {name!r} does not give the required {noun}{'s' if len(missing) > 1 else ''} "
                + ", ".join(repr(k) for k in missing)
                + f" of {label}",
                (*path, "inputs") if "inputs" in step else (*path, "uses"),
                hint="add " + ", ".join(f"{k}: <value>" for k in missing) + " under 'inputs'",
                code="component-input",
            )
        return ok

    def _literal_fits(self, value: Any, declared: str, what: str, path: YamlPath) -> bool:
        """A literal input value against its declared type (references are checked by validate)."""
        if (isinstance(value, str) and "{{" in value) or is_structured_template(value):
            return True
        actual = values.json_type_of(value)
        if values.is_artifact(declared):
            fits = actual == "str" and bool(value)
            shown = "a URI or a path"
        else:
            fits = actual is not None and values.type_accepts(declared, actual)
            shown = _a(declared)
        if not fits:
            self.problem(
                f"{what} is {_a(declared)}; {_show(value)} is {_a(actual) if actual else 'null'}",
                path,
                hint=f"give {shown}"
                + (", or a reference to one" if not values.is_artifact(declared) else ""),
                code="input-type",
            )
        return fits

    # ------------------------------------------------------------------ sub-pipelines

    def _subpipeline(
        self, name: str, step: dict[str, Any], path: YamlPath, target: Path, called: Any = None
    ) -> dict[str, Any] | None:
        from pipecast.loader import Loaded

        edge = _Edge(self.file, self.source.file, *self._pos((*path, "uses")), step["uses"], (*path, "uses"))
        if called is None and target in self.ctx.chain:
            first = self.ctx.chain.index(target)
            cycle = [*self.ctx.edges[first:], edge]
            start = cycle[0]
            self.problems.append(
                Diagnostic(
                    "a pipeline may not use itself, directly or through others: "
                    + " -> ".join(f"{e.where} uses {e.uses}" for e in cycle),
                    start.path,
                    hint="break the cycle: move the shared steps into a component or a third pipeline",
                    code="uses-cycle",
                    file=start.display,
                    line=start.line,
                    column=start.column,
                )
            )
            return None
        bad = [k for k in step if k not in _SUBPIPELINE_FIELDS]
        if bad:
            self.problem(
                f"{bad[0]!r} does not apply to a step that uses a pipeline ({step['uses']})",
                (*path, bad[0]),
                hint="set it on the called pipeline's steps or in its 'defaults'; a sub-pipeline step takes "
                + ", ".join(_SUBPIPELINE_FIELDS),
            )
            return None
        if called is None:
            called = self.ctx.pipelines.get(target)
        if called is None:
            called = self._load_pipeline(target, edge)
            if called is None:
                return None
        assert isinstance(called, Loaded)
        sub = called.pipeline
        label = f"pipeline {sub.name!r} ({step['uses']})"
        given = step.get("inputs") or {}
        declared = {k: (p.type, p.has_default) for k, p in sub.params.items()}
        ok = self._given_fit(name, step, path, label, declared, "parameter")
        for key in step.get("outputs") or {}:
            if key not in sub.outputs:
                ok = False
                self.problem(
                    f"{label} has no output {key!r}",
                    (*path, "outputs", key),
                    hint=_options("its outputs are", list(sub.outputs), key),
                    code="component-output",
                )
        if not ok:
            return None
        if sub.schedule is not None:
            self.warnings.append(
                Diagnostic(
                    f"the schedule of {label} is ignored: it runs as part of this pipeline (SPEC §17)",
                    (*path, "uses"),
                    severity="warning",
                    code="subpipeline-schedule",
                ).located(self.source)
            )
        bindings = {k: given.get(k, p.default) for k, p in sub.params.items() if k in given or p.has_default}
        return self._lower(name, step, path, target, called, bindings)

    def _pos(self, path: YamlPath) -> tuple[int | None, int | None]:
        pos = self.source.locate(path)
        return pos if pos else (None, None)

    def _load_pipeline(self, target: Path, edge: _Edge) -> Any:
        from pipecast.diagnostics import raise_if_errors
        from pipecast.loader import Loaded, load
        from pipecast.passes.validate import validate

        try:
            called = load(target, _ctx=self.ctx.enter(target, edge), _display=self._display(target))
            # Its python modules are imported from the top-level pipeline's folder, as at run
            # time (SPEC §3.1: the run's pipeline file); positions stay in its own file.
            as_run = Loaded(called.pipeline, self.ctx.chain[0], called.source)
            diags = sorted(
                (d.located(called.source) for d in validate(as_run)),
                key=lambda d: (d.line or 0, d.column or 0),
            )
            self.warnings.extend(called.warnings)
            self.warnings.extend(raise_if_errors(diags))
        except UserError as exc:
            if any(d.code == "too-big" for d in exc.diagnostics):
                raise
            self.problems.extend(exc.diagnostics)
            return None
        self.ctx.pipelines[target] = called
        return called

    def _lower(
        self,
        name: str,
        step: dict[str, Any],
        path: YamlPath,
        target: Path,
        called: Any,
        bindings: dict[str, Any],
    ) -> dict[str, Any] | None:
        sub = called.pipeline
        data = sub.to_data()
        inner = _step_names(data.get("steps", {}))
        loop_names = _loop_vars(data.get("steps", {}))
        for key, value in bindings.items():
            for ref in _refs(value):
                if ref.kind == "loop" and ref.name in loop_names:
                    self.problem(
                        f"input {key!r} reads loop variable {ref.name!r}, which {step['uses']} also uses as a "
                        "loop variable ('as:') inside",
                        (*path, "inputs", key),
                        hint=f"rename the enclosing loop variable (as: {ref.name}_item)",
                    )
                    return None
        self.ctx.inlined[0] += len(inner)
        if self.ctx.inlined[0] > MAX_INLINED_STEPS:
            # Stop at once: every further use would only grow it (and repeat this error).
            raise UserError(
                Diagnostic(
                    f"the pipeline grows past {MAX_INLINED_STEPS:,} steps through sub-pipelines; refusing to load it",
                    (*path, "uses"),
                    hint="a chain of pipelines each using the next several times multiplies its steps; "
                    "use a for_each instead of repeated uses",
                    code="too-big",
                ).located(self.source)
            )
        rw = _Rewriter(name, inner, bindings, self, (*path, "uses"))
        if target.is_absolute() and target.parent != self.file.parent:
            # Each level rewrites to the file that uses it, so nested files end relative to the top.
            rw.moved = (target.parent, self.file.parent)
        defaults = data.get("defaults") or {}
        steps = rw.steps(data.get("steps", {}), defaults)
        group: dict[str, Any] = {"steps": steps}
        if data.get("outputs"):
            group["outputs"] = {k: rw.value(v) for k, v in data["outputs"].items()}
        if "finally" in data:  # SPEC §17-§18: the group's own finally
            group["finally"] = rw.task(_with_defaults(data["finally"], defaults), group_finally=True)
        for key in ("after", "when", "description"):
            if key in step:
                group[key] = step[key]
        group["subpipeline"] = {
            "name": sub.name,
            "path": self._rel(target),
            "params": {k: p.type for k, p in sub.params.items()},
            "bindings": bindings,
        }
        return None if rw.failed else group


class _Rewriter:
    """Renames a called pipeline's steps under ``prefix`` and replaces its params by bindings."""

    def __init__(
        self, prefix: str, inner: set[str], bindings: dict[str, Any], owner: Expander, where: YamlPath
    ) -> None:
        self.prefix = prefix
        self.inner = inner
        self.bindings = bindings
        self.owner = owner
        self.where = where
        self.failed = False
        self.group_finally = False
        #: (called file's folder, using file's folder) when they differ: relative import paths
        #: (SPEC §14, relative to the file they are written in) are rewritten to the user's.
        self.moved: tuple[Path, Path] | None = None

    def fail(self, message: str) -> None:
        if not self.failed:
            self.owner.problem(message, self.where, hint="pass a reference or a literal of a simple type")
        self.failed = True

    def name(self, n: str) -> str:
        return f"{self.prefix}.{n}"

    def steps(self, steps: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for n, s in steps.items():
            if "steps" in s:
                g = dict(s)
                g["steps"] = self.steps(s["steps"], defaults)
                if "else" in s:
                    g["else"] = {**s["else"], "steps": self.steps(s["else"]["steps"], defaults)}
                    if "outputs" in s["else"]:
                        g["else"]["outputs"] = {k: self.value(v) for k, v in s["else"]["outputs"].items()}
                for key in ("for_each",):
                    if key in g:
                        g[key] = self.value(g[key])
                if "when" in g:
                    g["when"] = self.condition(g["when"])
                if "outputs" in g:
                    g["outputs"] = {k: self.value(v) for k, v in g["outputs"].items()}
                if "after" in g:
                    g["after"] = [self.name(a) if a in self.inner else a for a in g["after"]]
                if "finally" in g:
                    g["finally"] = self.task(_with_defaults(g["finally"], defaults))
                if "subpipeline" in g:
                    sp = dict(g["subpipeline"])
                    sp["bindings"] = {k: self.value(v) for k, v in sp.get("bindings", {}).items()}
                    g["subpipeline"] = sp
                out[self.name(n)] = g
            else:
                out[self.name(n)] = self.task(_with_defaults(s, defaults))
        return out

    def task(self, t: dict[str, Any], group_finally: bool = False) -> dict[str, Any]:
        self.group_finally = group_finally
        t = dict(t)
        if "inputs" in t:
            t["inputs"] = {k: self.value(v) for k, v in t["inputs"].items()}
        if "import" in t and "uri" in t["import"]:
            uri = t["import"]["uri"]
            # A path written in the called file moves with it; a value bound from the using file
            # (``{{ params.X }}``) is already relative to the using file.
            t["import"] = {**t["import"], "uri": self.value(uri) if "{{" in uri else self.local_path(uri)}
        if "when" in t:
            t["when"] = self.condition(t["when"])
        if "after" in t:
            t["after"] = [self.name(a) if a in self.inner else a for a in t["after"]]
        self.group_finally = False
        return t

    def local_path(self, uri: Any) -> Any:
        """A relative import path of the called file, relative to the top-level file instead."""
        if self.moved is None or not isinstance(uri, str) or "{{" in uri or "://" in uri:
            return uri
        if uri.startswith("/") or not uri:
            return uri
        here, top = self.moved
        return Path(os.path.relpath(here / uri, top)).as_posix()

    def ref(self, ref: Ref) -> Ref | tuple[Any]:
        """The reference's replacement: a reference, or a 1-tuple holding a value."""
        if ref.kind == "step" and ref.name in self.inner:
            return Ref("step", self.name(ref.name), ref.key, ref.metric)
        if ref.kind == "param":
            value = self.bindings.get(ref.name)
            if isinstance(value, str) and "{{" in value:
                segments = parse_template(value.strip())
                if len(segments) == 1 and isinstance(segments[0], Ref):
                    return segments[0]
            return (value,)
        if ref.kind == "pipeline" and ref.name == "status" and self.group_finally:
            # SPEC §17-§18: the sub-pipeline's finally sees its group's status.
            return Ref("group", "status")
        return ref

    def value(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if not isinstance(value, str) or "{{" not in value:
            return value
        segments = parse_template(value)
        stripped = value.strip()
        if len(segments) != 1 and stripped != value:
            alone = parse_template(stripped)
            if len(alone) == 1 and isinstance(alone[0], Ref):
                segments = alone
        if len(segments) == 1 and isinstance(segments[0], Ref):
            new = self.ref(segments[0])
            return new[0] if isinstance(new, tuple) else "{{ " + new.path + " }}"
        out: list[str | Ref] = []
        for seg in segments:
            if isinstance(seg, str):
                out.append(seg)
                continue
            new = self.ref(seg)
            if isinstance(new, Ref):
                out.append(new)
            elif isinstance(new[0], str) and "{{" in new[0]:
                out.extend(parse_template(new[0]))
            elif is_structured_template(new[0]):
                self.fail(f"parameter {seg.name!r} is written inside a text; its value holds references")
                return value
            else:
                out.append(render_value(new[0]))
        return template_text(out)

    def condition(self, text: str) -> str:
        try:
            expr = parse_condition(text)
        except (cond.ConditionSyntaxError, RefSyntaxError):
            return text  # validated already; leave as written

        def walk(e: cond.Expr) -> cond.Expr:
            if isinstance(e, cond.Path):
                new = self.ref(e.ref)
                if isinstance(new, Ref):
                    return cond.Path(new)
                v = new[0]
                if isinstance(v, bool | int | float | str) and not (isinstance(v, str) and "{{" in v):
                    return cond.Literal(v)
                self.fail(
                    f"parameter {e.ref.name!r} is read in a condition of the called pipeline; its value "
                    f"{_show(v)} has no condition form"
                )
                return e
            if isinstance(e, cond.Not):
                return cond.Not(walk(e.operand))
            if isinstance(e, cond.BoolOp):
                return cond.BoolOp(e.op, tuple(walk(o) for o in e.operands))
            if isinstance(e, cond.Compare):
                return cond.Compare(e.op, walk(e.left), walk(e.right))
            if isinstance(e, cond.In):
                return cond.In(walk(e.operand), e.options)
            return e

        return cond.to_text(walk(expr))


@functools.lru_cache(maxsize=1024)
def _relpath(target: Path, top: Path) -> str:
    try:
        return Path(os.path.relpath(target, top)).as_posix()
    except ValueError:
        return target.name


def template_text(segments: list[str | Ref]) -> str:
    """Write segments back as template text, escaping literal ``{{`` (SPEC §19)."""
    out = []
    for i, seg in enumerate(segments):
        if isinstance(seg, Ref):
            out.append("{{ " + seg.path + " }}")
            continue
        text = seg
        if "{{" in text:
            pieces = text.split("{{")
            text = pieces[0]
            for piece in pieces[1:]:
                slashes = len(text) - len(text.rstrip("\\"))
                text += "\\" * (slashes + 1) + "{{" + piece
        nxt = segments[i + 1] if i + 1 < len(segments) else None
        if isinstance(nxt, Ref):
            slashes = len(text) - len(text.rstrip("\\"))
            text += "\\" * slashes
        out.append(text)
    return "".join(out)


def _with_defaults(task: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """A called pipeline's task step with its own ``defaults`` applied (as analysis does)."""
    if not defaults or "import" in task:
        return task
    out = dict(task)
    for key in ("image", "timeout"):
        if key in defaults and key not in out:
            out[key] = defaults[key]
    for key in ("retry", "resources", "env"):
        if key in defaults:
            out[key] = {**defaults[key], **(out.get(key) or {})}
    if "cache" in defaults:
        mine = out.get("cache")
        if mine is None or (mine is True and isinstance(defaults["cache"], dict)):
            out["cache"] = defaults["cache"]
        elif isinstance(mine, dict) and isinstance(defaults["cache"], dict):
            out["cache"] = {**defaults["cache"], **mine}
    return out


def _step_names(steps: dict[str, Any]) -> set[str]:
    out = set()
    for n, s in steps.items():
        out.add(n)
        if isinstance(s, dict) and "steps" in s:
            out |= _step_names(s["steps"])
            if "else" in s:
                out |= _step_names(s["else"].get("steps", {}))
    return out


def _loop_vars(steps: dict[str, Any]) -> set[str]:
    out = set()
    for s in steps.values():
        if isinstance(s, dict) and "steps" in s:
            if "for_each" in s:
                out.add(s.get("as", "item"))
            out |= _loop_vars(s["steps"])
            if "else" in s:
                out |= _loop_vars(s["else"].get("steps", {}))
    return out


def _refs(value: Any) -> list[Ref]:
    try:
        return list(refs_in(value))
    except RefSyntaxError:
        return []


def _options(lead: str, names: list[str], wrong: str) -> str:
    from pipecast.passes.analysis import nearest

    if not names:
        return lead.replace("are", "are none")
    best = nearest(wrong, names)
    return (f"did you mean {best!r}? " if best else "") + f"{lead}: " + ", ".join(names)


def _a(kind: str | None) -> str:
    if kind is None:
        return "null"
    return ("an " if kind[0] in "aeiouAEIOU" else "a ") + kind


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


Lookup = Callable[[Ref], Any]
