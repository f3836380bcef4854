"""Whole-pipeline validation: every SPEC rule (§2-§10) the models cannot check alone.

:func:`validate` walks a loaded pipeline once and returns every problem it finds (errors
and warnings), each with the YAML path where it was written, so the user fixes them all
in one round. :func:`check_params` checks run-time ``--param`` values.

Decisions where SPEC is silent are listed in docs/semantics.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipecast.diagnostics import Diagnostic, UserError, YamlPath
from pipecast.ir import condition as cond
from pipecast.ir import values
from pipecast.ir.models import ContainerRun, GroupStep, Pipeline, PythonRun
from pipecast.ir.refs import ESCAPE_HINT, Ref, RefSyntaxError
from pipecast.passes import cron
from pipecast.passes.analysis import (
    ANY,
    FINALLY,
    FinallyKind,
    PipelineIndex,
    Scope,
    StepNode,
    accepts,
    element_type,
    is_artifact_type,
    nearest,
)
from pipecast.passes.parse import parse_condition, parse_template, single_ref
from pipecast.passes.signatures import check_python_signature

#: Loop-variable names that would shadow a reference root.
RESERVED_LOOP_VARS = frozenset({"params", "steps", "pipeline", "inputs", "outputs", "true", "false"})
_NUMBERS = ("int", "float")


def validate(loaded: Any) -> list[Diagnostic]:
    """Every problem in a loaded pipeline (errors and warnings), in writing order.

    Args:
        loaded: a :class:`pipecast.loader.Loaded` (pipeline, path, source map, index).
    """
    checker = _Checker(loaded)
    checker.run()
    return checker.out


class _Checker:
    def __init__(self, loaded: Any) -> None:
        self.pipeline: Pipeline = loaded.pipeline
        self.index: PipelineIndex = loaded.index
        self.source = loaded.source
        self.base_dir: Path | None = Path(loaded.path).resolve().parent if loaded.path else None
        self.out: list[Diagnostic] = []
        self.used_params: set[str] = set()
        self.modules: dict[str, Any] = {}
        self.import_warned: set[str] = set()

    # ------------------------------------------------------------------ helpers

    def error(self, message: str, path: YamlPath, hint: str | None = None, code: str = "invalid") -> None:
        self.out.append(Diagnostic(message, path, hint=hint, code=code))

    def warn(self, message: str, path: YamlPath, hint: str | None = None, code: str = "warning") -> None:
        self.out.append(Diagnostic(message, path, hint=hint, severity="warning", code=code))

    def run(self) -> None:
        self.check_names()
        for node in self.index.walk():
            self.check_node(node)
        for fin in self.index.finals.values():
            self.check_group_finally(fin)
        if self.index.finally_node is not None:
            self.check_finally(self.index.finally_node)
        self.check_pipeline_outputs()
        self.check_cycles()
        self.check_schedule()
        self.check_params()
        self.check_defaults()
        self.check_unused_params()

    # ------------------------------------------------------------------ names

    def check_names(self) -> None:
        for name, first, second in self.index.duplicates:
            self.error(
                f"step name {name!r} is used twice (first at {_fmt(first)}); step names are unique "
                "across the whole pipeline, groups included",
                second,
                hint="rename one of them",
                code="duplicate-step",
            )
        for node in self.index.walk():
            if node.name == FINALLY:
                self.error(
                    "'finally' is a reserved step name",
                    node.yaml_path,
                    hint="rename the step; to run a step last whatever happens, use the top-level 'finally' key",
                    code="reserved-name",
                )
            elif not values.STEP_NAME_RE.match(node.name) and not self.lowered_name(node):
                self.error(
                    f"step name {node.name!r} must match ^[a-z][a-z0-9_]{{0,62}}$ "
                    "(lower-case letters, digits and '_', starting with a letter)",
                    node.yaml_path,
                    hint=f"e.g. {_suggest_name(node.name)!r}",
                    code="name",
                )

    def lowered_name(self, node: StepNode) -> bool:
        """A dotted name the loader gave a sub-pipeline's step (SPEC §17): ``<step>.<inner>``
        anywhere inside the group ``<step>`` it lowered (an inner group's steps too, as names
        are unique in the whole called pipeline), each part checked in its own file."""
        if "." not in node.name:
            return False
        for group in self.index.ancestors(node):
            sub = group.step
            if (
                isinstance(sub, GroupStep)
                and sub.subpipeline is not None
                and node.name.startswith(group.name + ".")
            ):
                return True
        return False

    # ------------------------------------------------------------------ steps

    def check_node(self, node: StepNode) -> None:
        step = node.step
        if step.when is not None:
            self.check_condition(node, step.when, (*node.yaml_path, "when"))
        self.check_after(node)
        if node.is_task:
            self.check_task(node)
        else:
            self.check_group(node)

    def check_task(self, node: StepNode) -> None:
        task = node.task
        comp = task.component
        scope, dependent, in_finally = self.index.context(node)
        for name, value in task.inputs.items():
            path = (*node.yaml_path, "inputs", name)
            kind = self.check_value(value, scope, dependent, path, in_finally=in_finally)
            if comp is not None and name in comp.inputs:
                self.check_declared(
                    kind, comp.inputs[name], f"input {name!r} of component {comp.name!r}", path
                )
        if task.import_ is not None:
            self.check_import(node, task.import_.uri)
        elif isinstance(task.run, ContainerRun):
            self.check_container(node, task.run)
        elif isinstance(task.run, PythonRun):
            self.check_python(node, task.run, in_finally)
        overlap = sorted(set(task.env) & set(task.secrets))
        for name in overlap:
            self.error(
                f"{name!r} is set both in 'env' and in 'secrets'",
                (*node.yaml_path, "secrets", name),
                hint="keep one of them",
            )

    def check_import(self, node: StepNode, uri: str) -> None:
        """SPEC §14: ``import.uri`` is a string that may reference params (and pipeline.*)."""
        path = (*node.yaml_path, "import", "uri")
        refs = self.refs_of(uri, path) if "{{" in uri else []
        for ref in refs or []:
            if ref.kind not in ("param", "pipeline", "loop"):
                self.error(
                    f"import.uri may reference only params, loop variables and pipeline.name/run_id, "
                    f"not {{{{ {ref.path} }}}}",
                    path,
                    hint="an import reads an artifact from outside the pipeline; to use a step's output, "
                    "reference it directly in the consuming step's inputs",
                    code="import-uri",
                )
                return
        kind = self.check_value(uri, node.scope, node.name, path)
        if kind is not None and kind not in ("str", ANY) and not is_artifact_type(kind):
            self.error(
                f"import.uri must be a URI or a path, not {_a(kind)}",
                path,
                hint="reference a str or artifact parameter",
                code="import-uri",
            )

    def check_finite(self, value: Any, path: YamlPath) -> None:
        """NaN and infinities have no JSON form: no target can pass them (issue 15)."""
        bad = _non_finite(value)
        if bad is not None:
            self.error(
                f"{bad!r} is not a JSON number; no target can pass NaN or an infinity",
                path,
                hint="use null, a string such as 'nan', or a large finite number",
                code="value",
            )

    def check_params(self) -> None:
        scheduled = self.pipeline.schedule is not None
        for name, param in self.pipeline.params.items():
            if param.has_default:
                self.check_finite(param.default, ("params", name, "default"))
            elif scheduled:
                self.error(
                    f"parameter {name!r} has no default, but the pipeline has a schedule: a scheduled run "
                    "has no one to give it a value",
                    ("params", name),
                    hint="give it a default, or remove the schedule",
                    code="schedule",
                )

    def check_value(
        self,
        value: Any,
        scope: Scope,
        dependent: str | None,
        path: YamlPath,
        *,
        in_finally: FinallyKind = False,
    ) -> str | None:
        self.check_finite(value, path)
        """Check a value (literal or template) and return its type (``None`` on error)."""
        if isinstance(value, list | dict):
            # SPEC §19: each string inside is checked like a value of its own; the literal
            # keeps its type (list/dict), built at run time.
            ok = True
            for inner_path, inner in _nested_templates(value, path):
                if self.check_value(inner, scope, dependent, inner_path, in_finally=in_finally) is None:
                    ok = False
            return values.json_type_of(value) if ok else None
        if not (isinstance(value, str) and "{{" in value):
            return values.json_type_of(value) or ANY
        refs = self.refs_of(value, path)
        if refs is None:
            return None
        ok = True
        for ref in refs:
            res = self.resolve(ref, scope, dependent, path, in_finally=in_finally)
            if res is None:
                ok = False
            elif (len(refs) > 1 or single_ref(value) is None) and is_artifact_type(res):
                self.warn(
                    f"artifact {ref} is embedded in a string; it is rendered as its URI",
                    path,
                    hint="pass the artifact as its own input to receive it as a local path",
                )
        if not ok:
            return None
        return self.index.value_type(value, scope, dependent, in_finally=in_finally)

    def refs_of(self, text: str, path: YamlPath) -> list[Ref] | None:
        try:
            segments = parse_template(text)
        except RefSyntaxError as exc:
            message, escape, _ = str(exc).partition(ESCAPE_HINT)
            hint = _REF_SHAPES
            if escape:  # SPEC §19
                hint = "to pass a literal '{{' (Helm, Jinja, Go templates) write '\\{{'; " + hint
            self.error(f"bad reference: {message}", path, hint=hint, code="ref-syntax")
            return None
        return [seg for seg in segments if isinstance(seg, Ref)]

    def resolve(
        self,
        ref: Ref,
        scope: Scope,
        dependent: str | None,
        path: YamlPath,
        *,
        in_finally: FinallyKind = False,
    ) -> str | None:
        if ref.kind == "param":
            self.used_params.add(ref.name)
        res = self.index.resolve(ref, scope, dependent=dependent, in_finally=in_finally)
        if not res.ok:
            self.error(f"{ref}: {res.error}", path, hint=res.hint, code="reference")
            return None
        return res.type or ANY

    def check_after(self, node: StepNode) -> None:
        for i, target in enumerate(node.step.after):
            path = (*node.yaml_path, "after", i)
            if target == node.name:
                self.error(f"step {node.name!r} cannot wait for itself", path, code="after")
                continue
            target_node = self.index.nodes.get(target)
            if target_node is None:
                hint = nearest(target, list(self.index.nodes))
                self.error(
                    f"'after' names unknown step {target!r}",
                    path,
                    hint=f"did you mean {hint!r}?" if hint else None,
                    code="after",
                )
                continue
            if self.index.lift_after(node, target) is None:
                if target_node in self.index.ancestors(node):
                    msg = f"step {node.name!r} cannot wait for {target!r}, a group that encloses it"
                    hint = None
                else:
                    owner = target_node.scope.owner
                    msg = f"step {target!r} is inside group {owner!r} and not visible from {node.name!r}"
                    hint = f"wait for the group instead: after: [{_outermost_hidden(self.index, node, target_node)}]"
                self.error(msg, path, hint=hint, code="after")

    def check_declared(self, kind: str | None, declared: str, what: str, path: YamlPath) -> None:
        """SPEC §16-§17: a value given to a component input or a sub-pipeline parameter has its
        declared type (an ``int`` may flow into a ``float``; a URI string into an artifact)."""
        if kind is None or kind == ANY or accepts(declared, kind):
            return
        if is_artifact_type(declared) and kind == "str":
            return
        self.error(
            f"{what} is {_a(declared)}, but the value given is {_a(kind)}",
            path,
            hint=f"give {_a(declared)} value or a reference to one",
            code="input-type",
        )

    def check_group(self, node: StepNode) -> None:
        group = node.group
        path = node.yaml_path
        sub = group.subpipeline
        if sub is not None:
            for name, value in sub.bindings.items():
                kind = self.check_value(value, node.scope, node.name, (*path, "inputs", name))
                if name in sub.params:
                    self.check_declared(
                        kind,
                        sub.params[name],
                        f"parameter {name!r} of pipeline {sub.name!r}",
                        (*path, "inputs", name),
                    )
        if not group.steps:
            self.error(f"group {node.name!r} has no steps", (*path, "steps"), code="empty-group")
        if group.else_ is not None and not group.else_.steps:
            self.error(f"the 'else' branch of {node.name!r} has no steps", (*path, "else", "steps"))
        if group.is_loop:
            self.check_for_each(node)
        outputs_types: dict[str, str | None] = {}
        for name, expr in group.outputs.items():
            outputs_types[name] = self.check_group_output(node, expr, node.body, (*path, "outputs", name))
        if group.is_condition and not (sub is not None and group.else_ is None):
            # A sub-pipeline step with 'when' keeps its outputs: like a task with 'when', a step
            # reading them is skipped when it was (SPEC §22 skipped producers, passes.lower).
            else_types: dict[str, str | None] = {}
            if group.else_ is not None:
                for name, expr in group.else_.outputs.items():
                    else_types[name] = self.check_group_output(
                        node, expr, node.else_body, (*path, "else", "outputs", name)
                    )
            self.check_branch_outputs(node, outputs_types, else_types)

    def check_group_output(self, node: StepNode, expr: str, body: Scope | None, path: YamlPath) -> str | None:
        if body is None:
            return None
        if not (isinstance(expr, str) and "{{" in expr):
            self.error(
                f"group output {path[-1]!r} must reference an output of a step inside {node.name!r}",
                path,
                hint="e.g. '{{ steps.<inner step>.outputs.<name> }}'",
                code="group-output",
            )
            return None
        refs = self.refs_of(expr, path)
        if refs is None:
            return None
        ok = all(self.resolve(ref, body, None, path) is not None for ref in refs)
        if not ok:
            return None
        return self.index.group_output_inner_type(node, expr, body)

    def check_branch_outputs(
        self, node: StepNode, then: dict[str, str | None], other: dict[str, str | None]
    ) -> None:
        path = node.yaml_path
        if not then and not other:
            return
        if node.group.else_ is None:
            self.error(
                f"a 'when' group has outputs only when its 'else' branch declares the same ones "
                f"(SPEC §3.2); group {node.name!r} has no 'else'",
                (*path, "outputs"),
                hint="add 'else: {steps: ..., outputs: {...}}' with the same output names",
                code="group-output",
            )
            return
        for name in then:
            if name not in other:
                self.error(
                    f"output {name!r} of group {node.name!r} is missing from its 'else' outputs",
                    (*path, "outputs", name),
                    hint="both branches must declare the same outputs",
                    code="group-output",
                )
        for name in other:
            if name not in then:
                self.error(
                    f"'else' output {name!r} of group {node.name!r} is not declared by the group's outputs",
                    (*path, "else", "outputs", name),
                    hint="both branches must declare the same outputs",
                    code="group-output",
                )
        for name in sorted(set(then) & set(other)):
            a, b = then[name], other[name]
            if a is None or b is None or ANY in (a, b):
                continue
            if a != b:
                self.error(
                    f"output {name!r} of group {node.name!r} is {a} in the main branch but {b} in 'else'",
                    (*path, "else", "outputs", name),
                    hint="both branches must give the same type",
                    code="type",
                )

    def check_for_each(self, node: StepNode) -> None:
        group = node.group
        path = (*node.yaml_path, "for_each")
        as_ = group.as_
        if as_ in RESERVED_LOOP_VARS:
            self.error(f"'as: {as_}' would hide the {as_!r} references", (*node.yaml_path, "as"), code="name")
        outer = self.index.loop_vars(node.scope)
        if as_ in outer:
            self.error(
                f"loop variable {as_!r} hides the one of enclosing group {outer[as_].name!r}",
                (*node.yaml_path, "as"),
                hint="give the inner loop its own name with 'as: <name>'",
                code="name",
            )
        value = group.for_each
        if isinstance(value, list):
            self.check_value(value, node.scope, node.name, path)
            return
        if not (isinstance(value, str) and "{{" in value):
            self.error(
                f"for_each needs a list, got {_describe(value)}",
                path,
                hint="write a list ([a, b]) or reference one ('{{ params.items }}')",
                code="for-each",
            )
            return
        kind = self.check_value(value, node.scope, node.name, path)
        if kind is None:
            return
        if single_ref(value) is None:
            self.error(
                "for_each needs a list; text mixed with references is a string",
                path,
                hint="reference the list alone: for_each: '{{ params.items }}'",
                code="for-each",
            )
        elif element_type(kind) is None:
            self.error(
                f"for_each needs a list, but {value.strip()} is {kind}",
                path,
                hint="give the parameter or output the type 'list'",
                code="for-each",
            )

    # ------------------------------------------------------------------ run kinds

    def check_container(self, node: StepNode, run: ContainerRun) -> None:
        task = node.task
        for field, items in (("command", run.command), ("args", run.args)):
            for i, item in enumerate(items):
                path = (*node.yaml_path, "run", field, i)
                if "{{" not in item:
                    continue
                refs = self.refs_of(item, path)
                for ref in refs or []:
                    if ref.kind == "inputs":
                        if ref.name not in task.inputs:
                            self.error(
                                f"{ref} names no input of step {node.name!r}",
                                path,
                                hint=_names_hint(ref.name, task.inputs, "inputs"),
                                code="placeholder",
                            )
                    elif ref.kind == "outputs":
                        if ref.name not in task.outputs:
                            self.error(
                                f"{ref} names no output of step {node.name!r}",
                                path,
                                hint=_names_hint(ref.name, task.outputs, "outputs"),
                                code="placeholder",
                            )
                    elif ref.kind == "pipeline" and ref.name in ("name", "run_id"):
                        continue  # SPEC §4: everywhere; lowered to an input (passes/lower.py)
                    else:
                        self.error(
                            f"{ref} cannot be used in a container command; only {{{{ inputs.X }}}}, "
                            "{{ outputs.Y }}, {{ pipeline.name }} and {{ pipeline.run_id }} can",
                            path,
                            hint=f"add an input (e.g. x: '{ref}') and use '{{{{ inputs.x }}}}'",
                            code="placeholder",
                        )
        for name, type_name in task.outputs.items():
            used = any(f"outputs.{name}" in item and "{{" in item for item in [*run.command, *run.args])
            if not used:
                self.warn(
                    f"container step {node.name!r} declares output {name!r} ({type_name}) but its "
                    f"command never uses '{{{{ outputs.{name} }}}}', so nothing can write it",
                    (*node.yaml_path, "outputs", name),
                    code="unused-output",
                )
        if task.image is not None:
            self.warn(
                "'image' is ignored on a container step: its 'run.image' is used",
                (*node.yaml_path, "image"),
            )

    def check_python(self, node: StepNode, run: PythonRun, in_finally: FinallyKind) -> None:
        task = node.task
        for name, type_name in task.outputs.items():
            if values.is_artifact(type_name) and name in task.inputs:
                self.error(
                    f"artifact output {name!r} has the same name as an input; the function receives "
                    "both as keyword arguments",
                    (*node.yaml_path, "outputs", name),
                    hint="rename the output or the input",
                )
        scope, dependent, _ = self.index.context(node)
        types = {
            name: self.index.value_type(value, scope, dependent, in_finally=in_finally)
            for name, value in task.inputs.items()
        }
        for diag in check_python_signature(run, task, types, node.yaml_path, self.base_dir, self.modules):
            if diag.code == "python-import":
                # One warning per module, not one per step.
                if run.module in self.import_warned:
                    continue
                self.import_warned.add(run.module)
            self.out.append(diag)

    # ------------------------------------------------------------------ conditions

    def check_condition(self, node: StepNode, text: str, path: YamlPath) -> None:
        try:
            expr = parse_condition(text)
        except cond.ConditionSyntaxError as exc:
            pos = self.source.locate_in_value(path, exc.column - 1) if self.source else None
            line, column = pos if pos else (None, None)
            self.out.append(
                Diagnostic(
                    f"bad condition: {exc} (at column {exc.column} of {text!r})",
                    path,
                    hint="conditions look like: steps.eval.outputs.auc >= params.min_auc and not params.dry",
                    code="condition",
                    line=line,
                    column=column,
                )
            )
            return
        # A task's own condition reads from its scope; a group's from the group's scope.
        types: dict[int, str | None] = {}
        for ref in cond.paths(expr):
            types[id(ref)] = self.resolve(ref, node.scope, node.name, path)
        kind = self.expr_type(expr, path)
        if kind not in (None, ANY, "bool"):
            self.error(
                f"condition {text!r} is {_a(kind)}, not a boolean",
                path,
                hint="compare it, e.g. 'params.n > 0' or \"params.mode == 'fast'\"",
                code="condition-type",
            )

    def expr_type(self, expr: cond.Expr, path: YamlPath) -> str | None:
        """Type of a condition expression; reports operand type errors (``None`` = unknown)."""
        if isinstance(expr, cond.Literal):
            return values.json_type_of(expr.value)
        if isinstance(expr, cond.Path):
            # Already reported by check_condition's resolve pass; just compute the type.
            node_scope = self._cond_scope(path)
            res = self.index.resolve(
                expr.ref, node_scope[0], dependent=node_scope[1], in_finally=node_scope[1] == FINALLY
            )
            return res.type if res.ok else None
        if isinstance(expr, cond.Not):
            self.need_bool(expr.operand, path, "not")
            return "bool"
        if isinstance(expr, cond.BoolOp):
            for op in expr.operands:
                self.need_bool(op, path, expr.op)
            return "bool"
        if isinstance(expr, cond.Compare):
            left = self.expr_type(expr.left, path)
            right = self.expr_type(expr.right, path)
            self.check_compare(expr, left, right, path)
            return "bool"
        if isinstance(expr, cond.In):
            kind = self.expr_type(expr.operand, path)
            if kind in (None, ANY):
                return "bool"
            if kind not in (*_NUMBERS, "str"):
                self.error(
                    f"'{cond.to_text(expr.operand)} in [...]' needs a number or a string; it is {kind}",
                    path,
                    code="condition-type",
                )
                return "bool"
            for opt in expr.options:
                opt_kind = values.json_type_of(opt.value)
                if not _comparable(kind, opt_kind or ANY):
                    self.error(
                        f"{cond.to_text(opt)} in the list is {opt_kind} but "
                        f"{cond.to_text(expr.operand)} is {kind}",
                        path,
                        hint="the list holds values of the operand's type",
                        code="condition-type",
                    )
            return "bool"
        return None

    def _cond_scope(self, path: YamlPath) -> tuple[Scope, str]:
        name = str(path[-2])
        if path[:-1] == ("finally",):
            return self.index.root, FINALLY
        node = self.index.nodes[name]
        return node.scope, node.name

    def need_bool(self, expr: cond.Expr, path: YamlPath, op: str) -> None:
        kind = self.expr_type(expr, path)
        if kind not in (None, ANY, "bool"):
            self.error(
                f"'{op}' needs booleans, but {cond.to_text(expr)} is {kind}",
                path,
                hint="compare it first, e.g. 'params.n > 0'",
                code="condition-type",
            )

    def check_compare(self, expr: cond.Compare, left: str | None, right: str | None, path: YamlPath) -> None:
        if left in (None, ANY) or right in (None, ANY):
            return
        assert left is not None and right is not None
        text = f"{cond.to_text(expr.left)} {expr.op} {cond.to_text(expr.right)}"
        for kind in (left, right):
            if kind not in (*_NUMBERS, "str", "bool"):
                self.error(
                    f"'{text}' compares {_a(kind)}; conditions compare numbers, strings and booleans",
                    path,
                    code="condition-type",
                )
                return
        if not _comparable(left, right):
            self.error(
                f"'{text}' compares {_a(left)} with {_a(right)}",
                path,
                hint="compare numbers with numbers, strings with strings, booleans with booleans",
                code="condition-type",
            )
        elif left == "bool" and expr.op not in ("==", "!="):
            self.error(
                f"'{text}': booleans can only be compared with == and !=",
                path,
                code="condition-type",
            )

    # ------------------------------------------------------------------ finally, outputs, cycles

    def check_finally(self, node: StepNode) -> None:
        task = node.task
        if task.after:
            self.error(
                "'finally' runs after every other step; it cannot have 'after'",
                ("finally", "after"),
                hint="remove 'after'",
            )
        if task.when is not None:
            self.error(
                "'finally' always runs; it cannot have 'when'",
                ("finally", "when"),
                hint="check the condition inside the step, e.g. on pipeline.status",
            )
        self.check_task(node)

    def check_group_finally(self, node: StepNode) -> None:
        """SPEC §18: one task step that runs after the group's steps ended, whatever happened."""
        task, path = node.task, node.yaml_path
        if task.after:
            self.error(
                "a group's 'finally' runs after the group's steps; it cannot have 'after'",
                (*path, "after"),
                hint="put 'after' on the group itself",
            )
        if task.when is not None:
            self.error(
                "a group's 'finally' always runs when its group ran; it cannot have 'when'",
                (*path, "when"),
                hint="check the condition inside the step, e.g. on group.status",
            )
        self.check_task(node)

    def check_pipeline_outputs(self) -> None:
        for name, expr in self.pipeline.outputs.items():
            path = ("outputs", name)
            if not values.IDENT_RE.match(name):
                self.error(f"{name!r} is not a valid output name (use a Python identifier)", path)
            if not (isinstance(expr, str) and "{{" in expr):
                self.error(
                    f"pipeline output {name!r} must reference a step output",
                    path,
                    hint="e.g. '{{ steps.train.outputs.model }}'",
                )
                continue
            refs = self.refs_of(expr, path)
            for ref in refs or []:
                self.resolve(ref, self.index.root, None, path)

    def check_cycles(self) -> None:
        for scope in self.index.scopes():
            cycle = self.index.find_cycle(scope)
            if not cycle:
                continue
            first = scope.steps[cycle[0]]
            if len(cycle) == 2 and cycle[0] == cycle[1]:
                msg = f"step {cycle[0]!r} depends on itself"
            else:
                msg = "dependency cycle: " + " -> ".join(cycle)
            self.error(
                msg + " (through references and 'after')",
                first.yaml_path,
                hint="steps form a graph without cycles; remove one reference or 'after' entry",
                code="cycle",
            )

    # ------------------------------------------------------------------ schedule, defaults, params

    def check_schedule(self) -> None:
        schedule = self.pipeline.schedule
        if schedule is None:
            return
        for problem in cron.check_cron(schedule.cron):
            self.error(problem, ("schedule", "cron"), hint=cron.CRON_HINT, code="cron")
        tz_problem = cron.check_timezone(schedule.timezone)
        if tz_problem is not None:
            self.error(tz_problem[0], ("schedule", "timezone"), hint=tz_problem[1], code="timezone")

    def check_defaults(self) -> None:
        d = self.pipeline.defaults
        if d.retry is not None and d.retry.max_delay < d.retry.delay:
            self.warn("retry max_delay is shorter than delay", ("defaults", "retry", "max_delay"))
        for node in self.index.tasks():
            retry = node.task.retry
            if retry is not None and retry.max_delay < retry.delay and "max_delay" in retry.model_fields_set:
                self.warn("retry max_delay is shorter than delay", (*node.yaml_path, "retry", "max_delay"))
            if not any(r is not None and r.accelerator for r in (d.resources, node.task.resources)):
                continue  # no accelerator asked for (skips merging settings per step)
            res = self.index.effective(node).resources
            if res.accelerator and res.gpu == 0:
                self.error(
                    f"step {node.name!r} asks for accelerator {res.accelerator!r} with gpu: 0",
                    (*node.yaml_path, "resources"),
                    hint="set gpu to 1 or more, or drop the accelerator",
                    code="resources",
                )

    def check_unused_params(self) -> None:
        for name in self.pipeline.params:
            if name not in self.used_params:
                self.warn(f"parameter {name!r} is never used", ("params", name), code="unused-param")


# ---------------------------------------------------------------------------- run-time params


def parse_param_value(type_name: str, text: str) -> Any:
    """Parse a ``--param`` value by its declared type.

    ``str`` takes the text as is; the other types read it as a JSON value, falling back to
    a YAML flow value for lists and dicts (``[eu, us]``).

    Raises:
        ValueError: the text is not a value of that type.
    """
    import json

    if type_name == "str" or values.is_artifact(type_name):
        return text  # an artifact parameter's value is a URI or a path (SPEC §14)
    try:
        value = json.loads(text)
    except ValueError:
        value = _MISSING
        if type_name in ("list", "dict", "bool"):
            from pipecast.loader import parse_yaml

            try:
                data, _src, problems = parse_yaml(text)
                if not problems:
                    value = data
            except UserError:
                pass
    if type_name == "bool" and isinstance(text, str) and text.lower() in ("true", "false"):
        value = text.lower() == "true"
    actual = values.json_type_of(value) if value is not _MISSING else None
    if actual is None or not values.type_accepts(type_name, actual):
        examples = {
            "int": "42",
            "float": "0.5",
            "bool": "true",
            "list": '\'["a", "b"]\'',
            "dict": "'{\"k\": 1}'",
        }
        raise ValueError(f"{text!r} is not {_a(type_name)} (e.g. {examples.get(type_name, '')})")
    return float(value) if type_name == "float" else value


_MISSING = object()


def check_params(pipeline: Pipeline, given: dict[str, str]) -> dict[str, Any]:
    """Check and parse run-time ``--param name=value`` values.

    Returns:
        Every parameter's value: parsed given values, defaults for the rest.

    Raises:
        UserError: unknown names (with the nearest one), values of the wrong type, and
            required parameters (no default) that were not given, all at once.
    """
    problems: list[Diagnostic] = []
    out: dict[str, Any] = {}
    for name, text in given.items():
        param = pipeline.params.get(name)
        if param is None:
            best = nearest(name, list(pipeline.params))
            declared = ", ".join(pipeline.params) or "none"
            problems.append(
                Diagnostic(
                    f"--param {name}: the pipeline has no parameter {name!r} (its parameters: {declared})",
                    ("params",),
                    hint=f"did you mean {best!r}?" if best else None,
                    code="param",
                )
            )
            continue
        try:
            out[name] = parse_param_value(param.type, text) if isinstance(text, str) else text
        except ValueError as exc:
            problems.append(Diagnostic(f"--param {name}: {exc}", ("params", name), code="param"))
    for name, param in pipeline.params.items():
        if name in given:
            continue
        if param.has_default:
            out[name] = param.default
        else:
            problems.append(
                Diagnostic(
                    f"parameter {name!r} ({param.type}) has no default and was not given",
                    ("params", name),
                    hint=f"pass --param {name}=<value>",
                    code="param",
                )
            )
    if problems:
        raise UserError(problems)
    return out


# ---------------------------------------------------------------------------- small helpers

_REF_SHAPES = (
    "references look like {{ params.P }}, {{ steps.S.outputs.O }}, {{ item }}, {{ item.key }} "
    "or {{ pipeline.name }}"
)


def _fmt(path: YamlPath) -> str:
    from pipecast.diagnostics import format_path

    return format_path(path)


def _nested_templates(value: Any, path: YamlPath) -> Iterator[tuple[YamlPath, str]]:
    if isinstance(value, str):
        if "{{" in value:
            yield path, value
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _nested_templates(item, (*path, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _nested_templates(item, (*path, key))


def _describe(value: Any) -> str:
    kind = values.json_type_of(value)
    return f"{kind} {value!r}" if kind else "null"


def _a(type_name: str) -> str:
    """``int`` → ``an int``; ``list[float]`` → ``a list[float]``."""
    return ("an " if type_name[:1] in "aeiouAEIOU" else "a ") + type_name


def _comparable(a: str, b: str) -> bool:
    if ANY in (a, b):
        return True
    if a in _NUMBERS and b in _NUMBERS:
        return True
    return a == b


def _names_hint(name: str, options: dict[str, Any], kind: str) -> str:
    best = nearest(name, list(options))
    if best:
        return f"did you mean {{{{ {kind}.{best} }}}}?"
    listing = ", ".join(options) or "none"
    return f"declared {kind}: {listing}"


def _suggest_name(name: str) -> str:
    import re

    out = re.sub(r"[^a-z0-9_]", "_", name.lower())
    if not out or not out[0].isalpha():
        out = "s_" + out
    return out[:63]


def _outermost_hidden(index: PipelineIndex, node: StepNode, target: StepNode) -> str:
    chain = list(node.scope.chain())
    producer = target
    while producer.scope not in chain and producer.scope.owner is not None:
        producer = index.nodes[producer.scope.owner]
    return producer.name


def _non_finite(value: Any) -> float | None:
    """The first NaN or infinity inside a value (lists and mappings searched), or ``None``."""
    if isinstance(value, float):
        return value if value != value or value in (float("inf"), float("-inf")) else None
    if isinstance(value, list | tuple):
        for item in value:
            if (bad := _non_finite(item)) is not None:
                return bad
    elif isinstance(value, dict):
        for item in value.values():
            if (bad := _non_finite(item)) is not None:
                return bad
    return None
