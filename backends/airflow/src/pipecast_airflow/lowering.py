"""Lower a validated pipeline to the shape of an Airflow DAG: tasks, mapped task groups,
edges, trigger rules, and the per-task documents the runtime reads at run time.

The DAG file is dumb on purpose: every value a task needs (the step spec, where each input
comes from) is a JSON document stored in the file as a string literal and read only inside
the task callable, so parsing the file builds operators and nothing else.

Shape (one ``when`` or ``for_each`` group becomes helper tasks, never a user-visible rename):

* task step ``s``: task ``s`` (inside a loop: ``<loop>.s``, the mapped task group's prefix);
* ``when`` group or task with ``when`` ``w``: ``w-condition`` (a branch task that evaluates
  the condition and picks the entry tasks of the branch that runs, always with ``w-join``),
  the branch's tasks, and ``w-join`` (trigger rule ``none_failed_min_one_success``) so steps
  after the group run whether or not the branch ran;
* ``for_each`` group ``g``: ``g-items`` (resolves the list), the mapped task group ``g``
  expanded over it (``g-s1``, ``g-s2``... for the later stages of a body holding a loop), and
  ``g-done`` (``none_failed_min_one_success``: an empty list skips the mapped tasks but not
  the steps after the group), which collects the group's outputs; a loop inside a loop is
  lowered to the top level too (see :meth:`Lowering.loop`);
* ``finally``: a task downstream of everything with trigger rule ``all_done``, then a
  ``pipeline-status`` leaf (``all_done``) that fails the run when any task failed;
* a group ``g``'s own ``finally`` (SPEC §18): ``g-finally`` after the group's last task with
  trigger rule ``all_done`` (``group.status`` read by the runtime from the states of the
  group's tasks; skipped with its ``when`` group), then ``g-end``
  (``none_failed_min_one_success`` over the group's last task and the finally): what comes
  after the group waits for it and still sees the group's failure;
* a plain group ``p`` (a sub-pipeline that keeps its ``finally``; the others are inlined):
  its steps' tasks, then ``p-join`` (``none_failed_min_one_success``) and its finally's tasks;
* pipeline ``outputs``: a ``pipeline-outputs`` task returning them as its XCom.

Helper ids contain ``-``, which step names cannot, so they never clash with a step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipecast.ir import condition as cond
from pipecast.ir.models import ContainerRun
from pipecast.ir.refs import Ref
from pipecast.ir.values import is_artifact
from pipecast.passes.analysis import FinallyKind, PipelineIndex, Scope, StepNode
from pipecast.passes.resolve import RefNode, Value, has_template_text, refs_of
from pipecast.runtime.retry import backoff_delay
from pipecast.runtime.spec import step_spec

#: Airflow's ``[core] max_map_length`` default: the most items one mapped task expands to.
MAX_MAP_LENGTH = 1024
#: Default of ``reader``: the innermost loop around the scope (see :meth:`Lowering.source`).
SCOPE: Any = object()
#: Extra time Airflow waits past the step's own timeout (the runtime enforces the timeout and
#: kills the step's whole process tree; Airflow's ``execution_timeout`` is the backstop).
TIMEOUT_GRACE = 60.0


@dataclass
class Op:
    """One operator: ``var = cls(task_id=..., ...)``.

    Attributes:
        kwargs: ``(name, kind, value)``; ``kind`` tells the template how to render the value:
            ``lit`` (a Python literal through the escaping filter), ``seconds`` (a timedelta),
            ``code`` (a fixed code fragment from this module, never pipeline text).
    """

    var: str
    cls: str
    task_id: str
    kwargs: list[tuple[str, str, Any]] = field(default_factory=list)
    #: A container step that runs its image unchanged: retries and timeout are Airflow's own.
    stock: bool = False
    teardown: bool = False

    @property
    def local_id(self) -> str:
        """The id as written in the file: Airflow prefixes the task group's id itself."""
        return self.task_id.rsplit(".", 1)[-1]


@dataclass
class Group:
    """A mapped task group expanded over the XCom of its items task."""

    var: str
    group_id: str
    items_var: str
    body: list[Op | Group | Edge] = field(default_factory=list)

    @property
    def func(self) -> str:
        """The name of the decorated task-group function (``g_x`` → ``f_x``, ``g2_x`` → ``f2_x``)."""
        return "f" + self.var[1:]


@dataclass
class Edge:
    up: str
    down: str


@dataclass
class Lowered:
    body: list[Op | Group | Edge]
    docs: dict[str, dict[str, Any]]
    task_ids: list[str]
    operators: set[str]
    #: Container steps' stock-image plans (SPEC §21) and the warnings lowering raised.
    plans: dict[str, Any] = field(default_factory=dict)
    warnings: list[Any] = field(default_factory=list)


class Lowering:
    """Builds :class:`Lowered` for one pipeline (see the module docstring)."""

    def __init__(self, index: PipelineIndex, settings: Any) -> None:
        self.index = index
        self.settings = settings
        self.docs: dict[str, dict[str, Any]] = {}
        self.task_ids: list[str] = []
        self.operators: set[str] = set()
        #: Loop name -> the ``parallelism`` bounds of the loops around it whose body is only
        #: this loop (they bound its items, see :meth:`loop`).
        self.bounds: dict[str, list[int]] = {}
        #: Container steps' stock-image plans (SPEC §21) and the warnings they raise.
        self.plans: dict[str, Any] = {}
        self.warnings: list[Any] = []

    # ------------------------------------------------------------------ ids

    def context(self, scope: Scope) -> StepNode | None:
        """The innermost ``for_each`` whose body holds ``scope`` (``None``: the DAG's top level).

        Every ``for_each`` is its own mapped task groups at the DAG's top level (Airflow cannot
        map inside a mapped task group, see docs/targets/airflow.md), so a binding is resolved
        relative to the items of this loop: a task at map index ``m`` of its groups."""
        for sc in scope.chain():
            if sc.owner is not None and sc.branch == "body":
                return self.index.nodes[sc.owner]
        return None

    def stage(self, node: StepNode) -> tuple[StepNode, int] | None:
        """The loop whose mapped task groups hold task ``node``, and which of them (its stage)."""
        loop = self.context(node.scope)
        if loop is None:
            return None
        assert loop.body is not None
        top = node
        while top.scope is not loop.body:
            assert top.scope.owner is not None
            top = self.index.nodes[top.scope.owner]
        return loop, stages(self.index, loop)[top.name]

    def prefix(self, node: StepNode) -> str:
        """The task group prefix: the group id of the loop stage that holds the task."""
        found = self.stage(node)
        return "" if found is None else group_id(found[0], found[1]) + "."

    def tid(self, node: StepNode, suffix: str = "") -> str:
        if node.is_group and node.group.is_loop:
            return node.name + suffix  # a loop's own tasks are never inside a mapped group
        return self.prefix(node) + node.name + suffix

    def entry(self, node: StepNode) -> list[str]:
        """The variables of the first tasks of a sibling (what its dependencies point at): a
        plain group (a sub-pipeline keeping its ``finally``) has no task of its own before its
        steps, so its body's first tasks."""
        if node.is_group and node.group.is_plain:
            body = node.body
            assert body is not None
            deps = self.index.deps(body)
            return [v for n in self.index.toposort(body) if not deps[n] for v in self.entry(body.steps[n])]
        if node.is_group:
            return [f"i_{node.name}" if node.group.is_loop else f"c_{node.name}"]
        return [f"c_{node.name}" if node.step.when is not None else f"t_{node.name}"]

    def exit(self, node: StepNode) -> str:
        """The variable of the last task of a sibling (what steps after it wait for)."""
        if node.is_group and node.finally_node is not None:
            return f"e_{node.name}"
        return self.body_exit(node)

    def body_exit(self, node: StepNode) -> str:
        """The last task of a sibling before its group's own ``finally``."""
        if node.is_group:
            return f"d_{node.name}" if node.group.is_loop else f"j_{node.name}"
        return f"j_{node.name}" if node.step.when is not None else f"t_{node.name}"

    def entries(self, scope: Scope) -> list[str]:
        """Task ids that start a branch: siblings with no dependency inside it."""
        deps = self.index.deps(scope)
        out = []
        for name in self.index.toposort(scope):
            if deps[name]:
                continue
            node = scope.steps[name]
            if node.is_group and node.group.is_plain:
                assert node.body is not None
                out.extend(self.entries(node.body))
            elif node.is_group:
                suffix = "-items" if node.group.is_loop else "-condition"
                out.append(self.tid(node, suffix))
            else:
                out.append(self.tid(node, "-condition" if node.step.when is not None else ""))
        return out

    # ------------------------------------------------------------------ values

    def source(
        self,
        ref: Ref,
        scope: Scope,
        dependent: str | None,
        in_finally: FinallyKind = False,
        reader: Any = SCOPE,
    ) -> dict[str, Any]:
        """Where the runtime finds one reference's value at run time, for a reader whose items
        are those of loop ``reader`` (by default the innermost loop holding ``scope``)."""
        if reader is SCOPE:
            reader = self.context(scope)
        if ref.kind == "param":
            if is_artifact(self.index.pipeline.params[ref.name].type):
                # A local path is read on the worker (SPEC §14, docs/semantics.md).
                return {"param": ref.name, "artifact": True}
            return {"param": ref.name}
        if ref.kind == "pipeline":
            return {"pipeline": ref.name}
        if ref.kind == "group" and "group" not in self.index.loop_vars(scope):
            return {"group": ref.name}  # SPEC §18: from the group's task states (doc "group")
        if ref.kind == "group":
            ref = Ref("loop", "group", ref.name)
        if ref.kind == "loop":
            group = self.index.loop_vars(scope)[ref.name]
            assert reader is not None
            if not self.index.loops(reader):
                return {"loop": self.tid(group, "-items"), "key": ref.key}
            # A nested loop's items are paths: {"ix": [i, j], "items": [x, y]}.
            return {"loop": self.tid(reader, "-items"), "level": len(self.index.loops(group)), "key": ref.key}
        res = self.index.resolve(ref, scope, dependent=dependent, in_finally=in_finally)
        assert res.ok and res.target is not None, res.error
        src = self.output_source(self.index.nodes[res.target], ref.key or "", reader)
        if ref.metric is not None:
            # One number of a Metrics output (SPEC §15), published by the runtime to XCom.
            src["metric"] = ref.metric
        return src

    def at(self, owner: StepNode | None, reader: StepNode | None) -> dict[str, Any]:
        """How a reader in loop ``reader`` finds the map index of a task of loop ``owner``
        (``owner`` is ``reader`` or a loop around it): its own, or the position of its item
        path's first levels among ``owner``'s items."""
        if owner is None:
            return {}
        if owner is reader:
            return {"mapped": True}
        assert reader is not None
        return {
            "via": self.tid(reader, "-items"),
            "depth": len(self.index.loops(owner)) + 1,
            "of": self.tid(owner, "-items"),
        }

    def output_source(self, node: StepNode, output: str, reader: StepNode | None) -> dict[str, Any]:
        if node.is_task:
            src: dict[str, Any] = {"xcom": self.tid(node), "output": output}
            src.update(self.at(self.context(node.scope), reader))
            if self.uses_operator(node) == "docker":
                src["json"] = True
            return src
        group = node.group
        assert node.body is not None
        if group.is_loop:
            # The loop's `-done` task collected the outputs: one row per item of the loop
            # around it (docs/targets/airflow.md, "Nested for_each").
            parent = self.context(node.scope)
            src = {"xcom": self.tid(node, "-done"), "output": output}
            if parent is not None:
                src.update(row=True, **self.at(parent, reader))
            return src
        if group.is_plain:
            # A plain group's output is what it is bound to inside (SPEC §17: normally exactly
            # one reference, read where it is produced; else built by the runtime).
            resolved = node.resolved.outputs[output]
            if isinstance(resolved, RefNode):
                return self.source(resolved.ref, node.body, None, reader=reader)
            return {
                "bind": self.value(
                    group.outputs[output], node.resolved.outputs[output], node.body, None, reader=reader
                )
            }
        then = self.value(
            group.outputs[output], node.resolved.outputs[output], node.body, None, reader=reader
        )
        other = None
        if group.else_ is not None and node.else_body is not None:
            other = self.value(
                group.else_.outputs[output],
                node.resolved.else_outputs[output],
                node.else_body,
                None,
                reader=reader,
            )
        # Which branch ran: the consumer evaluates the group's condition again on the same
        # (immutable) inputs, so it needs nothing from the branch task itself.
        return {"switch": self.condition_doc(node, reader), "then": then, "else": other}

    def condition_doc(self, node: StepNode, reader: Any = SCOPE) -> dict[str, Any]:
        """A ``when`` condition with a source per path it reads (resolved in the step's scope)."""
        text = node.step.when
        expr = node.resolved.when
        assert text is not None and expr is not None
        refs = {ref.path: self.source(ref, node.scope, node.name, reader=reader) for ref in cond.paths(expr)}
        return {"when": text, "refs": dict(sorted(refs.items()))}

    def value(
        self,
        value: Any,
        resolved: Value,
        scope: Scope,
        dependent: str | None,
        in_finally: FinallyKind = False,
        reader: Any = SCOPE,
    ) -> dict[str, Any]:
        """A binding: a literal, or a template whose references have sources (a list or mapping
        literal holding references is a template too, built by the runtime: SPEC §19).
        ``value`` is the value as written (the runtime renders it), ``resolved`` its resolved
        form (which references it reads)."""
        if not has_template_text(value):
            return {"value": value}
        refs = {n.path: self.source(n.ref, scope, dependent, in_finally, reader) for n in refs_of(resolved)}
        return {"template": value, "refs": dict(sorted(refs.items()))}

    # ------------------------------------------------------------------ operators

    def uses_operator(self, node: StepNode) -> str:
        """The operator kind that runs a task: container steps never run as plain python."""
        op = self.settings.operator
        return op

    # ------------------------------------------------------------------ lowering

    def lower(self) -> Lowered:
        body = self.scope_body(self.index.root)
        root_exits = [self.exit(self.index.root.steps[n]) for n in self.index.toposort(self.index.root)]
        pipeline = self.index.pipeline
        if pipeline.outputs:
            outputs = {
                name: self.value(expr, self.index.resolved.outputs[name], self.index.root, None)
                for name, expr in pipeline.outputs.items()
            }
            self.add_doc("pipeline-outputs", {"kind": "outputs", "outputs": outputs})
            outputs_op = self.python_op("o_pipeline_outputs", "pipeline-outputs", "_outputs")
            # Runs when a top-level task was skipped too (a for_each over a skipped step's
            # list, SPEC §22); its outputs are absent then (docs/semantics.md).
            outputs_op.kwargs.append(("trigger_rule", "lit", "none_failed"))
            body.append(outputs_op)
            body.extend(Edge(up, "o_pipeline_outputs") for up in root_exits)
            root_exits = [*root_exits, "o_pipeline_outputs"]
        fin = self.index.finally_node
        if fin is not None:
            # `finally` runs whatever happened upstream (all_done). Airflow derives the run's
            # state from its leaves, so a last `pipeline-status` task (all_done) fails when any
            # task failed, the finally step included: the run fails exactly when SPEC §10 says.
            op = self.task_op(fin, "t_finally", "finally")
            op.kwargs.append(("trigger_rule", "lit", "all_done"))
            body.append(op)
            body.extend(Edge(up, "t_finally") for up in root_exits)
            self.add_doc("pipeline-status", {"kind": "status"})
            status = self.python_op("s_pipeline_status", "pipeline-status", "_status")
            status.kwargs.append(("trigger_rule", "lit", "all_done"))
            body.append(status)
            body.append(Edge("t_finally", "s_pipeline_status"))
        return Lowered(
            body, dict(sorted(self.docs.items())), self.task_ids, self.operators, self.plans, self.warnings
        )

    def add_doc(self, task_id: str, doc: dict[str, Any]) -> None:
        self.docs[task_id] = doc
        self.task_ids.append(task_id)

    def scope_body(self, scope: Scope) -> list[Op | Group | Edge]:
        out: list[Op | Group | Edge] = []
        deps = self.index.deps(scope)
        for name in self.index.toposort(scope):
            node = scope.steps[name]
            out.extend(self.sibling(node))
            out.extend(Edge(self.exit(scope.steps[d]), e) for d in deps[name] for e in self.entry(node))
        return out

    def sibling(self, node: StepNode) -> list[Op | Group | Edge]:
        body = self.sibling_body(node)
        if node.is_group and node.finally_node is not None:
            body.extend(self.group_finally(node, body))
        return body

    def group_finally(self, node: StepNode, body: list[Op | Group | Edge]) -> list[Op | Group | Edge]:
        """``g-finally`` and ``g-end`` (see the module docstring)."""
        fin = node.finally_node
        assert fin is not None
        fid = self.tid(node, "-finally")
        op = self.task_op(fin, f"f_{node.name}", fid)
        op.kwargs.append(("trigger_rule", "lit", "all_done"))
        doc = self.docs[fid]
        doc["group"] = {
            # Every task of the group: group.status is "failed" when one failed (or was stopped,
            # SPEC §10); none started means the group never ran, and neither does its finally.
            "tasks": sorted(_task_ids(body)),
            "same_index": bool(self.index.loops(node)),
        }
        if node.group.is_condition and node.group.else_ is None:
            # SPEC §18: a skipped when group does not run its finally.
            doc["guard"] = {**self.condition_doc(node), "expect": True}
        end = Op(
            f"e_{node.name}",
            "EmptyOperator",
            self.tid(node, "-end"),
            [("trigger_rule", "lit", "none_failed_min_one_success")],
        )
        self.operators.add("EmptyOperator")
        last = self.body_exit(node)
        return [op, end, Edge(last, op.var), Edge(last, end.var), Edge(op.var, end.var)]

    def sibling_body(self, node: StepNode) -> list[Op | Group | Edge]:
        if node.is_task and node.step.when is None:
            return [self.task_op(node, f"t_{node.name}", self.tid(node))]
        if node.is_task:
            return self.when(node, [self.task_op(node, f"t_{node.name}", self.tid(node))], None, None)
        group = node.group
        assert node.body is not None
        if group.is_loop:
            return self.loop(node)
        if group.is_plain:
            return self.plain(node)
        return self.when(
            node,
            self.scope_body(node.body),
            node.body,
            node.else_body,
        )

    def when(
        self, node: StepNode, then_body: list[Op | Group | Edge], then: Scope | None, other: Scope | None
    ) -> list[Op | Group | Edge]:
        """Branch task, the branches, and the join (see the module docstring)."""
        text = node.step.when
        assert text is not None
        cid, jid = self.tid(node, "-condition"), self.tid(node, "-join")
        then_ids = self.entries(then) if then is not None else [self.tid(node)]
        else_ids = self.entries(other) if other is not None else []
        self.add_doc(
            cid,
            {
                "kind": "branch",
                **self.condition_doc(node),
                "then": then_ids,
                "else": else_ids,
                "join": jid,
            },
        )
        cvar, jvar = f"c_{node.name}", f"j_{node.name}"
        out: list[Op | Group | Edge] = [self.python_op(cvar, cid, "_branch", cls="BranchPythonOperator")]
        branches = [then_body]
        then_exits = (
            [self.exit(then.steps[n]) for n in self.index.toposort(then)] if then else [f"t_{node.name}"]
        )
        then_entries = (
            [
                e
                for n in self.index.toposort(then)
                if not self.index.deps(then)[n]
                for e in self.entry(then.steps[n])
            ]
            if then
            else [f"t_{node.name}"]
        )
        exits = list(then_exits)
        entries = list(then_entries)
        if other is not None:
            branches.append(self.scope_body(other))
            deps = self.index.deps(other)
            order = self.index.toposort(other)
            exits += [self.exit(other.steps[n]) for n in order]
            entries += [e for n in order if not deps[n] for e in self.entry(other.steps[n])]
        for branch in branches:
            out.extend(branch)
        # Each entry task checks the condition again and skips itself when its branch was not
        # chosen: inside a mapped task group Airflow 3.3 does not skip per map index.
        guard = self.condition_doc(node)
        for ids, expect in ((then_ids, True), (else_ids, False)):
            for tid in ids:
                self.docs[tid]["guard"] = {**guard, "expect": expect}
        self.operators.add("EmptyOperator")
        out.append(Op(jvar, "EmptyOperator", jid, [("trigger_rule", "lit", "none_failed_min_one_success")]))
        out.extend(Edge(cvar, e) for e in entries)
        out.extend(Edge(e, jvar) for e in exits)
        out.append(Edge(cvar, jvar))
        return out

    def plain(self, node: StepNode) -> list[Op | Group | Edge]:
        """A plain group (a sub-pipeline that keeps its ``finally``, SPEC §17-§18; the others are
        inlined, :mod:`pipecast.passes.inline`): its steps, then ``<group>-join``
        (``none_failed_min_one_success``, as a ``when`` group's join) that its ``finally``
        follows: a failure inside the group reaches the join as ``upstream_failed``."""
        body = node.body
        assert body is not None
        jvar = f"j_{node.name}"
        self.operators.add("EmptyOperator")
        join = Op(
            jvar,
            "EmptyOperator",
            self.tid(node, "-join"),
            [("trigger_rule", "lit", "none_failed_min_one_success")],
        )
        exits = [Edge(self.exit(body.steps[n]), jvar) for n in self.index.toposort(body)]
        return [*self.scope_body(body), join, *exits]

    def loop(self, node: StepNode) -> list[Op | Group | Edge]:
        """``<loop>-items``, one mapped task group per stage of the body, the inner loops'
        own tasks, and ``<loop>-done`` (docs/targets/airflow.md, "Nested for_each").

        Airflow cannot map inside a mapped task group, so every loop's tasks are at the DAG's
        top level. A nested loop's items task computes the flattened item paths at run time
        (the inner list resolved once per outer item); the outer body's steps that read an
        inner loop's outputs run in a later stage: another mapped task group over the same
        outer items, after the inner loop's ``-done`` task regrouped its outputs per outer item.
        """
        group = node.group
        body = node.body
        assert body is not None
        if isinstance(group.for_each, list) and len(group.for_each) > MAX_MAP_LENGTH:
            from pipecast.diagnostics import Diagnostic, UserError

            raise UserError(
                Diagnostic(
                    f"airflow: for_each of {node.name!r} has {len(group.for_each)} items; Airflow maps "
                    f"at most {MAX_MAP_LENGTH} ([core] max_map_length)",
                    (*node.yaml_path, "for_each"),
                    hint="split the list, or raise max_map_length in airflow.cfg",
                )
            )
        parent = self.context(node.scope)
        iid = self.tid(node, "-items")
        doc: dict[str, Any] = {
            "kind": "items",
            "for_each": self.value(group.for_each, _items(node), node.scope, node.name),
        }
        if parent is not None:
            # Resolved once per item of the loop around (a path when that loop is nested too).
            doc["parent"] = {"items": self.tid(parent, "-items"), "paths": bool(self.index.loops(parent))}
        self.add_doc(iid, doc)
        ivar, dvar = f"i_{node.name}", f"d_{node.name}"
        staged = stages(self.index, node)
        deps = self.index.deps(body)
        order = self.index.toposort(body)
        groups: dict[int, Group] = {}
        for k in sorted({staged[n] for n in order if not _is_loop(body.steps[n])}):
            gvar = f"g_{node.name}" if k == 0 else f"g{k}_{node.name}"
            groups[k] = Group(gvar, group_id(node, k), ivar)
        inner: list[Op | Group | Edge] = []
        edges: list[Edge] = []
        for name in order:
            n = body.steps[name]
            if _is_loop(n):
                inner.extend(self.loop(n))
                down = f"i_{n.name}"
                edges.append(Edge(ivar, down))  # it reads this loop's items
            else:
                groups[staged[name]].body.extend(self.sibling(n))
                down = groups[staged[name]].var
            for d in deps[name]:
                dn = body.steps[d]
                if not _is_loop(dn) and not _is_loop(n) and staged[d] == staged[name]:
                    groups[staged[name]].body.extend(Edge(self.exit(dn), e) for e in self.entry(n))
                else:
                    edges.append(Edge(f"d_{dn.name}" if _is_loop(dn) else groups[staged[d]].var, down))
        self.bound(node, order, groups)
        # The group's own task: it collects the group's outputs (its XCom, which the run record
        # shows as the group's entry) and completes the group even when the list is empty.
        did = self.tid(node, "-done")
        outputs = {
            name: self.value(expr, node.resolved.outputs[name], body, None)
            for name, expr in group.outputs.items()
        }
        done_doc: dict[str, Any] = {"kind": "done", "items": iid, "outputs": dict(sorted(outputs.items()))}
        if parent is not None:
            done_doc["parent"] = doc["parent"]
        self.add_doc(did, done_doc)
        done = self.python_op(dvar, did, "_done")
        done.kwargs.append(("trigger_rule", "lit", "none_failed_min_one_success"))
        edges += [Edge(ivar, dvar)]
        edges += [Edge(g.var, dvar) for g in groups.values()]
        edges += [Edge(f"d_{n}", dvar) for n in order if _is_loop(body.steps[n])]
        unique = list({(e.up, e.down): e for e in edges}.values())
        return [self.python_op(ivar, iid, "_items"), *groups.values(), *inner, done, *unique]

    def bound(self, node: StepNode, order: list[str], groups: dict[int, Group]) -> None:
        """``parallelism`` (SPEC §22). A loop whose body is only a loop hands its bound down:
        bounding the inner items in progress bounds the outer ones. Otherwise the body is one
        mapped task group (AirflowBackend.check_target refuses other shapes)."""
        body = node.body
        assert body is not None
        limits = [*self.bounds.get(node.name, [])]
        if node.group.parallelism is not None:
            limits.append(node.group.parallelism)
        if not limits:
            return
        if len(order) == 1 and _is_loop(body.steps[order[0]]):
            self.bounds[order[0]] = limits
            return
        if len(groups) != 1 or len(groups[0].body) == 0:
            return  # refused by check_target
        # An item of a one-task body is one task instance: the per-task limit bounds the
        # items exactly. With more tasks the runtime bounds the items in progress (SPEC §22):
        # each first task of an item waits for a slot (conventions.airflow.slot_free).
        gbody = groups[0].body
        downs = {e.down for e in gbody if isinstance(e, Edge)}
        ops = _ops(gbody)
        for item in ops:
            item.kwargs.append(("max_active_tis_per_dagrun", "lit", min(limits)))
            if len(ops) > 1 and item.var not in downs:
                self.slot_entry(node, item, min(limits), groups[0].group_id, _early_task_ids(gbody))

    def slot_entry(self, node: StepNode, op: Op, bound: int, group: str, tasks: list[str]) -> None:
        """Make ``op``, a first task of an item of loop ``node``, wait for a ``parallelism`` slot."""
        key = next((value for name, _, value in op.kwargs if name == "op_kwargs"), None)
        doc = self.docs.get(key) if isinstance(key, str) else None
        if doc is None or doc.get("kind") not in ("step", "branch"):
            from pipecast.diagnostics import Diagnostic, UserError

            raise UserError(
                Diagnostic(
                    f"airflow: 'parallelism' of {node.name!r} needs its first steps to run through "
                    f"the pipecast runtime; {op.task_id!r} runs as {op.cls}",
                    (*node.yaml_path, "parallelism"),
                    hint="start the loop body with a python step (or a 'when'), or drop 'parallelism'",
                    code="unsupported-feature",
                )
            )
        # An item is done when every task of ``tasks`` is (SPEC §22: an item is in progress
        # until its last inner step ended; see _early_task_ids for the tasks left out).
        doc["slot"] = {"group": group, "bound": bound, "tasks": sorted(tasks)}

    def python_op(self, var: str, task_id: str, func: str, cls: str = "PythonOperator") -> Op:
        self.operators.add(cls)
        return Op(
            var,
            cls,
            task_id,
            [("python_callable", "code", func), ("op_kwargs", "key", task_id)],
        )

    def task_op(self, node: StepNode, var: str, task_id: str) -> Op:
        """The operator of one task step, with retries and timeout mapped natively."""
        from pipecast_airflow import operators

        scope, dependent, in_finally = self.index.context(node)
        spec_import = node.task.import_
        if spec_import is not None:
            # An import step runs no code (SPEC §14): a worker task resolves the URI (a local
            # path on the worker's disk, see docs/semantics.md) and returns it as the artifact.
            self.add_doc(
                task_id,
                {
                    "kind": "import",
                    "uri": self.value(spec_import.uri, _import_uri(node), node.scope, node.name, in_finally),
                    "metadata": spec_import.metadata,
                    "python_path": [self.settings.project_dir, *self.settings.python_path],
                },
            )
            return self.python_op(var, task_id, "_import")
        eff = self.index.effective(node)
        # In a pod, Kubernetes puts each secret into PIPECAST_SECRET_<NAME> (see operators.py),
        # where the runtime's `env` store reads it; elsewhere the `secret_store` setting says.
        store: Any = "env" if self.settings.operator == "kubernetes" else self.settings.secret_store
        # Retries run inside the runtime (SPEC §6 timing exactly: Airflow's own exponential
        # backoff adds jitter in [delay, 2*delay) and knows only factor 2 on Airflow 2).
        # Airflow has no task result cache: the runtime keeps one under artifact_root (SPEC §20);
        # without the setting, the worker's default artifact root (filled in at run time).
        root = self.settings.artifact_root
        cache_store = f"{root.rstrip('/')}/.pipecast-cache/{self.index.pipeline.name}" if root else ""
        spec = step_spec(
            self.index,
            node,
            retry_in_runtime=True,
            timeout_in_runtime=True,
            secret_store=store,
            cache_store=cache_store,
        )
        inputs = {
            name: self.value(value, node.resolved.inputs[name], scope, dependent, in_finally)
            for name, value in node.task.inputs.items()
            if has_template_text(value)
        }
        doc: dict[str, Any] = {
            "kind": "step",
            "spec": spec.model_dump(mode="json", by_alias=True, exclude_defaults=True),
            "inputs": inputs,
            # Relative entries are resolved on the worker against the DAG file's folder.
            "python_path": [self.settings.project_dir, *self.settings.python_path],
            "artifact_root": self.settings.artifact_root,
        }
        if isinstance(node.task.run, ContainerRun):
            doc["containers"] = "host"
        self.add_doc(task_id, doc)
        op = operators.build(self, node, var, task_id, eff)
        if eff.timeout is not None and not op.stock:
            # The backstop covers every attempt and the waits between them.
            retry = eff.retry
            waits = sum(backoff_delay(retry, n) for n in range(1, retry.attempts))
            total = eff.timeout * retry.attempts + waits + TIMEOUT_GRACE
            op.kwargs.append(("execution_timeout", "seconds", total))
        return op


def _ops(body: list[Op | Group | Edge]) -> list[Op]:
    return [item for item in body if isinstance(item, Op)]


def _is_loop(node: StepNode) -> bool:
    return node.is_group and node.group.is_loop


def group_id(loop: StepNode, stage: int) -> str:
    """The task group id of one stage of a loop's body: ``<loop>``, then ``<loop>-s<k>``."""
    return loop.name if stage == 0 else f"{loop.name}-s{stage}"


def stages(index: PipelineIndex, loop: StepNode) -> dict[str, int]:
    """The stage of each step of a loop's body: a step that needs an inner loop's outputs (or
    waits for it) runs in a later mapped task group than the steps that inner loop needs.

    ``stage(s) = max over its dependencies d of stage(d) + (1 if d is a loop else 0)``; an inner
    loop's items task runs after the stage it is in."""
    body = loop.body
    assert body is not None
    deps = index.deps(body)
    out: dict[str, int] = {}
    for name in index.toposort(body):
        out[name] = max((out[d] + int(_is_loop(body.steps[d])) for d in deps[name]), default=0)
    return out


def _items(node: StepNode) -> Value:
    """A ``for_each`` group's list, resolved."""
    items = node.resolved.for_each
    assert items is not None
    return items


def _import_uri(node: StepNode) -> Value:
    """An import step's URI, resolved."""
    uri = node.resolved.import_uri
    assert uri is not None
    return uri


#: Trigger rules Airflow evaluates over every item before it expands a task of a mapped task
#: group (``_get_relevant_upstream_map_indexes`` in airflow/ti_deps/deps/trigger_rule_dep.py,
#: issues #34023, #39801): such a task, and what runs after it, has no instance for any item
#: until the items before it all ended.
LATE_EXPANDED_RULES = frozenset({"one_success", "one_failed", "one_done", "none_failed_min_one_success"})


def _early_task_ids(body: list[Op | Group | Edge]) -> list[str]:
    """The task ids of a lowered loop body an item's slot waits for (SPEC §22): every task
    but those Airflow expands only after all items (:data:`LATE_EXPANDED_RULES`, joins and
    what follows them: a nested group's ``finally``), which a slot cannot wait for without
    waiting for itself; those run after the items (docs/targets/airflow.md)."""
    ops: dict[str, Op] = {}
    downs: dict[str, list[str]] = {}

    def walk(items: list[Op | Group | Edge]) -> None:
        for item in items:
            if isinstance(item, Op):
                ops[item.var] = item
            elif isinstance(item, Group):
                walk(item.body)
            else:
                downs.setdefault(item.up, []).append(item.down)

    walk(body)
    late = [
        v
        for v, op in ops.items()
        if any(k == "trigger_rule" and x in LATE_EXPANDED_RULES for k, _, x in op.kwargs)
    ]
    seen: set[str] = set()
    while late:
        var = late.pop()
        if var not in seen:
            seen.add(var)
            late.extend(downs.get(var, []))
    late_ids = {ops[v].task_id for v in seen if v in ops}
    return [t for t in _task_ids(body) if t not in late_ids]


def _task_ids(body: list[Op | Group | Edge]) -> list[str]:
    """Every task id of a lowered body, inside mapped task groups too."""
    out: list[str] = []
    for item in body:
        if isinstance(item, Op):
            out.append(item.task_id)
        elif isinstance(item, Group):
            out.extend(_task_ids(item.body))
    return out
