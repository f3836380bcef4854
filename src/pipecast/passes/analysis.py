"""Whole-pipeline analysis shared by validation, the simulator and every backend.

:class:`PipelineIndex` answers the questions every consumer of the IR asks:

* where a step lives (its scope, enclosing groups and loops, YAML path);
* what a reference points at, whether it is in scope, and its type (SPEC §3.2, §4);
* which sibling steps a step depends on (references lifted to the scope level, plus
  ``after``), in a stable topological order;
* a task step's effective settings after ``defaults`` are applied.

Building the index never raises for user mistakes; resolution returns
:class:`Resolution` objects that carry the error, so validation can report every
problem in one pass, and backends (which only see validated pipelines) can rely on it.
"""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pipecast.ir import condition as cond
from pipecast.ir import values
from pipecast.ir.models import CacheSpec, ContainerRun, GroupStep, Pipeline, Resources, Retry, TaskStep
from pipecast.ir.refs import Ref, RefSyntaxError
from pipecast.passes.parse import parse_condition, parse_template, single_ref

if TYPE_CHECKING:
    from pipecast.passes.resolve import Resolved, ResolvedStep

ANY = "any"
Branch = Literal["root", "body", "then", "else"]


def list_of(inner: str) -> str:
    return f"list[{inner}]"


def element_type(type_name: str) -> str | None:
    """``list[T]`` → ``T``; ``list`` / ``any`` → ``any``; anything else → ``None`` (not a list)."""
    if type_name.startswith("list[") and type_name.endswith("]"):
        return type_name[5:-1]
    if type_name in ("list", ANY):
        return ANY
    return None


def accepts(declared: str, actual: str) -> bool:
    """Whether a value of type ``actual`` may be used where ``declared`` is expected."""
    if ANY in (declared, actual):
        return True
    if declared == actual or values.type_accepts(declared, actual):
        return True
    decl_el, act_el = element_type(declared), element_type(actual)
    if declared == "list" and act_el is not None:
        return True
    if decl_el is not None and act_el is not None and declared != "list":
        return accepts(decl_el, act_el)
    return False


def is_artifact_type(type_name: str) -> bool:
    """An artifact, or a (nested) list of artifacts collected by a fan-out."""
    inner = type_name
    while (el := element_type(inner)) is not None and inner != el and inner not in ("list", ANY):
        inner = el
    return values.is_artifact(inner)


@dataclass(eq=False)
class Scope:
    """A set of sibling steps: the pipeline root, a group's body, or a branch of a ``when``."""

    owner: str | None
    branch: Branch
    parent: Scope | None
    yaml_path: tuple[str | int, ...]
    steps: dict[str, StepNode] = field(default_factory=dict)
    loop_var: str | None = None  # the loop variable introduced by this scope (for_each body)

    def chain(self) -> Iterator[Scope]:
        scope: Scope | None = self
        while scope is not None:
            yield scope
            scope = scope.parent

    @property
    def label(self) -> str:
        if self.owner is None:
            return "the pipeline's top level"
        return f"group {self.owner!r}" + (" (else branch)" if self.branch == "else" else "")


@dataclass(eq=False)
class StepNode:
    """One step (task or group) with where it lives."""

    name: str
    step: TaskStep | GroupStep
    scope: Scope
    yaml_path: tuple[str | int, ...]
    index: int  # position in writing order across the whole pipeline
    body: Scope | None = None  # groups: the body (for_each) or then-branch (when)
    else_body: Scope | None = None
    #: groups: the group's own ``finally`` step (SPEC §18), named ``<group>.finally``.
    finally_node: StepNode | None = None
    #: a group's ``finally`` step: that group.
    finally_of: StepNode | None = None
    owner: PipelineIndex | None = field(default=None, repr=False)

    @property
    def resolved(self) -> ResolvedStep:
        """This step in the resolved form of its pipeline (:mod:`pipecast.passes.resolve`)."""
        assert self.owner is not None
        return self.owner.resolved.step(self)

    @property
    def is_task(self) -> bool:
        return isinstance(self.step, TaskStep)

    @property
    def is_group(self) -> bool:
        return isinstance(self.step, GroupStep)

    @property
    def task(self) -> TaskStep:
        assert isinstance(self.step, TaskStep)
        return self.step

    @property
    def group(self) -> GroupStep:
        assert isinstance(self.step, GroupStep)
        return self.step

    @property
    def parent(self) -> str | None:
        return self.scope.owner


@dataclass(frozen=True)
class Resolution:
    """What a reference resolves to from a given place.

    Attributes:
        type: the value's type (``any`` when not known statically), or ``None`` on error.
        error: what is wrong, for the user; ``None`` when the reference is fine.
        hint: a fix or the nearest valid name.
        target: for step references, the step that produces the value.
        dependency: for step references, ``(scope, dependent_sibling, producer_sibling)``:
            the edge the reference adds among siblings of that scope.
    """

    type: str | None
    error: str | None = None
    hint: str | None = None
    target: str | None = None
    dependency: tuple[Scope, str, str] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class EffectiveTask:
    """A task step's settings after ``defaults`` are applied (docs/semantics.md)."""

    image: str | None
    retry: Retry
    timeout: float | None
    resources: Resources
    env: dict[str, str]
    secrets: dict[str, str]
    cache: bool
    #: SPEC §20 ``cache.version`` and ``cache.max_age`` (seconds), after defaults.
    cache_version: str | None = None
    cache_max_age: float | None = None


FINALLY = "finally"
#: Where a step is, for what it may reference: ``False`` (an ordinary step), ``True`` (the
#: pipeline's ``finally``), ``"group"`` (a group's ``finally``, SPEC §18).
FinallyKind = bool | Literal["group"]


def group_finally_name(group: str) -> str:
    """The IR name and run-record key base of a group's ``finally`` step (SPEC §18)."""
    return f"{group}.{FINALLY}"


def find_cycle(deps: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle of a dependency graph (name → the names it depends on, tried in that order),
    searched depth first from each name in the mapping's order: the names along the cycle in
    the direction of ``deps`` (``a -> b``: ``a`` depends on ``b``), the first repeated at the
    end; ``None`` when there is none. A name that is not a key is a leaf. Iterative, so a
    long chain does not reach Python's recursion limit. The one cycle search of pipecast (the
    validator's and the backends' checks of their output)."""
    color: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in deps:
        if start in color:
            continue
        path = [start]
        color[start] = 1
        todo = [iter(deps[start])]
        while todo:
            for d in todo[-1]:
                if color.get(d) == 1:
                    return [*path[path.index(d) :], d]
                if d not in color and d in deps:
                    color[d] = 1
                    path.append(d)
                    todo.append(iter(deps[d]))
                    break
            else:
                color[path.pop()] = 2
                todo.pop()
    return None


def nearest(name: str, options: Iterator[str] | list[str]) -> str | None:
    """The closest valid name, for "did you mean" hints."""
    matches = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return matches[0] if matches else None


class PipelineIndex:
    """Index of a pipeline's steps and scopes; see the module docstring."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.root = Scope(owner=None, branch="root", parent=None, yaml_path=("steps",))
        self.nodes: dict[str, StepNode] = {}
        self.duplicates: list[tuple[str, tuple[str | int, ...], tuple[str | int, ...]]] = []
        self._counter = 0
        #: Group ``finally`` steps by name (``<group>.finally``), in writing order.
        self.finals: dict[str, StepNode] = {}
        self._fill(self.root, pipeline.steps)
        self.finally_node: StepNode | None = None
        if pipeline.finally_ is not None:
            self.finally_node = StepNode(
                name=FINALLY,
                step=pipeline.finally_,
                scope=self.root,
                yaml_path=("finally",),
                index=self._counter,
                owner=self,
            )
        self._deps_cache: dict[int, dict[str, list[str]]] = {}
        # Validation, deps() and backends resolve the same references over and over.
        self._resolve_cache: dict[tuple[Ref, int, str | None, FinallyKind], Resolution] = {}
        self._resolved: Resolved | None = None
        # effective() merges defaults into pydantic models: once per task, not per reader.
        self._effective: dict[int, tuple[StepNode, EffectiveTask]] = {}

    @property
    def resolved(self) -> Resolved:
        """The resolved form of the pipeline (:mod:`pipecast.passes.resolve`), built once per
        index (lazily per step); the simulator, the runtime helpers and the backends read it."""
        if self._resolved is None:
            from pipecast.passes.resolve import Resolved

            self._resolved = Resolved(self)
        return self._resolved

    # ------------------------------------------------------------------ building

    def _fill(self, scope: Scope, steps: dict[str, Any]) -> None:
        for name, step in steps.items():
            path = (*scope.yaml_path, name)
            node = StepNode(
                name=name, step=step, scope=scope, yaml_path=path, index=self._counter, owner=self
            )
            self._counter += 1
            scope.steps[name] = node
            if name in self.nodes:
                self.duplicates.append((name, self.nodes[name].yaml_path, path))
            else:
                self.nodes[name] = node
            if isinstance(step, GroupStep):
                branch: Branch = "body" if step.is_loop else "then"
                node.body = Scope(
                    owner=name,
                    branch=branch,
                    parent=scope,
                    yaml_path=(*path, "steps"),
                    loop_var=step.as_ if step.is_loop else None,
                )
                self._fill(node.body, step.steps)
                if step.else_ is not None:
                    node.else_body = Scope(
                        owner=name, branch="else", parent=scope, yaml_path=(*path, "else", "steps")
                    )
                    self._fill(node.else_body, step.else_.steps)
                if step.finally_ is not None:
                    fin = StepNode(
                        name=group_finally_name(name),
                        step=step.finally_,
                        scope=scope,
                        yaml_path=(*path, "finally"),
                        index=self._counter,
                        finally_of=node,
                        owner=self,
                    )
                    self._counter += 1
                    node.finally_node = fin
                    self.finals[fin.name] = fin

    # ------------------------------------------------------------------ walking

    def walk(self, scope: Scope | None = None) -> Iterator[StepNode]:
        """Every step node (groups and tasks, not ``finally``) in writing order, depth first."""
        for node in (scope or self.root).steps.values():
            yield node
            if node.body is not None:
                yield from self.walk(node.body)
            if node.else_body is not None:
                yield from self.walk(node.else_body)

    def tasks(self) -> Iterator[StepNode]:
        """Every task node in writing order (a group's ``finally`` after the group's steps),
        the pipeline's ``finally`` last."""
        if not self.finals:
            for node in self.walk():
                if node.is_task:
                    yield node
        else:
            yield from self._tasks(self.root)
        if self.finally_node is not None:
            yield self.finally_node

    def _tasks(self, scope: Scope) -> Iterator[StepNode]:
        for node in scope.steps.values():
            if node.is_task:
                yield node
                continue
            if node.body is not None:
                yield from self._tasks(node.body)
            if node.else_body is not None:
                yield from self._tasks(node.else_body)
            if node.finally_node is not None:
                yield node.finally_node

    def context(self, node: StepNode) -> tuple[Scope, str, FinallyKind]:
        """Where a task's references are resolved: ``(scope, dependent, in_finally)``.

        A group's ``finally`` sees what its group sees from outside (SPEC §18): it resolves in
        the group's scope as the group itself, so what it reads becomes the group's dependency.
        """
        if node.finally_of is not None:
            return node.finally_of.scope, node.finally_of.name, "group"
        return node.scope, node.name, node is self.finally_node

    def scopes(self) -> Iterator[Scope]:
        yield self.root
        for node in self.walk():
            if node.body is not None:
                yield node.body
            if node.else_body is not None:
                yield node.else_body

    def node(self, name: str) -> StepNode:
        if name == FINALLY and self.finally_node is not None:
            return self.finally_node
        found = self.nodes.get(name)
        if found is None and name in self.finals:
            return self.finals[name]
        return self.nodes[name]

    def ancestors(self, node: StepNode) -> list[StepNode]:
        """Enclosing groups, innermost first."""
        out = []
        scope: Scope | None = node.scope
        while scope is not None and scope.owner is not None:
            owner = self.nodes[scope.owner]
            out.append(owner)
            scope = owner.scope
        return out

    def loops(self, node: StepNode) -> list[StepNode]:
        """Enclosing ``for_each`` groups, outermost first (the order of ``[i]`` in run keys)."""
        return [g for g in reversed(self.ancestors(node)) if g.group.is_loop]

    def loop_vars(self, scope: Scope) -> dict[str, StepNode]:
        """Loop variables visible in a scope (innermost wins), mapped to their group."""
        out: dict[str, StepNode] = {}
        for sc in scope.chain():
            if sc.loop_var is not None and sc.loop_var not in out and sc.owner is not None:
                out[sc.loop_var] = self.nodes[sc.owner]
        return out

    # ------------------------------------------------------------------ references

    def resolve(
        self, ref: Ref, scope: Scope, *, dependent: str | None, in_finally: FinallyKind = False
    ) -> Resolution:
        """Resolve a reference used in ``scope``.

        Args:
            ref: the reference.
            scope: the scope of the step (or group outputs) that uses it.
            dependent: the name of the sibling in ``scope`` that uses it (a step's own
                name), or ``None`` for group/pipeline outputs, which read their own scope.
            in_finally: whether it is used by the pipeline's ``finally`` step (``True``) or by
                a group's (``"group"``, resolved in the group's scope as the group).
        """
        key = (ref, id(scope), dependent, in_finally)
        cached = self._resolve_cache.get(key)
        if cached is None:
            cached = self._resolve_cache[key] = self._resolve(ref, scope, dependent, in_finally)
        return cached

    def _resolve(self, ref: Ref, scope: Scope, dependent: str | None, in_finally: FinallyKind) -> Resolution:
        if ref.kind == "param":
            param = self.pipeline.params.get(ref.name)
            if param is None:
                return Resolution(
                    None,
                    f"unknown parameter {ref.name!r}",
                    _did_you_mean(ref.name, self.pipeline.params, "params."),
                )
            return Resolution(param.type)
        if ref.kind == "pipeline":
            if ref.name == "status":
                if in_finally == "group":
                    return Resolution(
                        None,
                        "pipeline.status is not known yet when a group's 'finally' runs",
                        "use group.status (the group's own outcome: 'succeeded' or 'failed')",
                    )
                if not in_finally:
                    return Resolution(None, "pipeline.status is only available in the 'finally' step")
                return Resolution("str")
            if ref.name in ("name", "run_id"):
                return Resolution("str")
            return Resolution(
                None,
                f"unknown pipeline field {ref.name!r}",
                "use pipeline.name, pipeline.run_id or (in finally) pipeline.status",
            )
        if ref.kind == "group":
            if "group" in self.loop_vars(scope):  # a loop variable named 'group' shadows it
                return self._resolve_loop(Ref("loop", "group", ref.name), scope)
            if in_finally != "group":
                return Resolution(
                    None,
                    "it is only available in a group's 'finally' step (SPEC §18)",
                    "move this step into the 'finally' of a for_each or when group, or use "
                    "pipeline.status in the pipeline's 'finally'",
                )
            if ref.name != "status":
                return Resolution(None, f"unknown group field {ref.name!r}", "use group.status")
            return Resolution("str")
        if ref.kind == "loop":
            return self._resolve_loop(ref, scope)
        if ref.kind in ("inputs", "outputs"):
            return Resolution(
                None,
                f"{{{{ {ref.path} }}}} is only meaningful inside a container step's command or args",
            )
        return self._resolve_step(ref, scope, dependent, in_finally)

    def _resolve_loop(self, ref: Ref, scope: Scope) -> Resolution:
        loop_vars = self.loop_vars(scope)
        group = loop_vars.get(ref.name)
        if group is None:
            candidates = [f"params.{p}" for p in self.pipeline.params] + list(loop_vars)
            hint = nearest(ref.name, candidates)
            msg = f"unknown name {ref.name!r}"
            if loop_vars:
                msg += f" (loop variables here: {', '.join(sorted(loop_vars))})"
            else:
                msg += " (no loop variable is in scope here)"
            return Resolution(None, msg, f"did you mean {hint!r}?" if hint else None)
        item_type = self.loop_item_type(group)
        if ref.key is None:
            return Resolution(item_type)
        if item_type not in ("dict", ANY):
            return Resolution(None, f"loop variable {ref.name!r} holds {item_type} items, not dicts")
        return Resolution(ANY)

    def loop_item_type(self, group: StepNode) -> str:
        """The type of one item of a ``for_each`` group's list (``any`` when unknown)."""
        value = group.group.for_each
        try:
            ref = single_ref(value) if isinstance(value, str) else None
        except RefSyntaxError:
            ref = None
        if ref is not None:
            res = self.resolve(ref, group.scope, dependent=group.name)
            return element_type(res.type or ANY) or ANY
        if isinstance(value, list) and value:
            kinds = {values.json_type_of(v) for v in value}
            if len(kinds) == 1:
                only = kinds.pop()
                return only or ANY
            if kinds <= {"int", "float"}:
                return "float"
        return ANY

    def _resolve_step(
        self, ref: Ref, scope: Scope, dependent: str | None, in_finally: FinallyKind
    ) -> Resolution:
        target = self.nodes.get(ref.name)
        if target is None:
            hint = _did_you_mean(ref.name, self.nodes, "steps.")
            return Resolution(None, f"unknown step {ref.name!r}", hint)
        if in_finally is True:
            return Resolution(
                None,
                "the 'finally' step may reference only params and pipeline.* (it also runs when "
                "steps did not)",
            )
        chain = list(scope.chain())
        # Climb from the target until we reach a node whose scope encloses the user.
        producer = target
        while producer.scope not in chain:
            assert producer.scope.owner is not None
            producer = self.nodes[producer.scope.owner]
        if producer is not target:
            return Resolution(
                None,
                f"step {ref.name!r} is inside group {producer.name!r} and not visible here",
                f"expose it as an output of group {producer.name!r} and reference "
                f"steps.{producer.name}.outputs.<name>",
            )
        # The sibling (in the producer's scope) that encloses the user.
        if dependent is None:
            user_sibling = None
            if producer.scope is not scope:
                return Resolution(
                    None,
                    f"group and pipeline outputs may only reference steps directly inside them; "
                    f"{ref.name!r} is not",
                )
        else:
            user = self.node(dependent)
            user_sibling = user
            while user_sibling.scope is not producer.scope:
                assert user_sibling.scope.owner is not None
                user_sibling = self.nodes[user_sibling.scope.owner]
            if user_sibling is producer:
                if in_finally == "group":
                    return Resolution(
                        None,
                        f"a group's 'finally' cannot read the outputs of {ref.name!r} (it also runs when "
                        "the group's steps did not)",
                        "read it after the group, in a step that references the group's outputs",
                    )
                return Resolution(None, f"a step cannot reference {ref.name!r}, a group that encloses it")
        out_type = self.output_type(target, ref.key or "")
        if out_type is None:
            outputs = self.output_names(target)
            hint = nearest(ref.key or "", outputs)
            listing = ", ".join(outputs) if outputs else "none"
            return Resolution(
                None,
                f"step {ref.name!r} has no output {ref.key!r} (its outputs: {listing})",
                f"did you mean steps.{ref.name}.outputs.{hint}?" if hint else None,
            )
        dep = (producer.scope, user_sibling.name, producer.name) if user_sibling is not None else None
        if ref.metric is not None:
            # SPEC §15: one metric of a Metrics output, read as a number at run time.
            if out_type != "Metrics":
                return Resolution(
                    None,
                    f"{ref.path} reads metric {ref.metric!r}, but output {ref.key!r} of step "
                    f"{ref.name!r} is {out_type}, not Metrics",
                    f"declare {ref.key}: Metrics, or reference steps.{ref.name}.outputs.{ref.key}",
                )
            return Resolution("float", target=target.name, dependency=dep)
        return Resolution(out_type, target=target.name, dependency=dep)

    def output_names(self, node: StepNode) -> list[str]:
        if node.is_task:
            return list(node.task.outputs)
        return list(node.group.outputs)

    def output_type(self, node: StepNode, output: str) -> str | None:
        """The type of a step's output; for groups, derived from what the output references."""
        if node.is_task:
            return node.task.outputs.get(output)
        group = node.group
        expr = group.outputs.get(output)
        if expr is None:
            return None
        inner = self.group_output_inner_type(node, expr, node.body)
        if inner is None:
            return ANY
        return list_of(inner) if group.is_loop else inner

    def group_output_inner_type(self, node: StepNode, expr: str, body: Scope | None) -> str | None:
        """The type a group output expression has inside one iteration / branch."""
        if body is None:
            return None
        try:
            ref = single_ref(expr)
        except RefSyntaxError:
            return None
        if ref is None:
            return "str"
        res = self.resolve(ref, body, dependent=None)
        return res.type

    # ------------------------------------------------------------------ step I/O

    def value_type(
        self, value: Any, scope: Scope, dependent: str | None, in_finally: FinallyKind = False
    ) -> str | None:
        """The type of an input value: a literal's JSON type, a reference's type, or ``str``."""
        if isinstance(value, str) and "{{" in value:
            try:
                ref = single_ref(value)
            except RefSyntaxError:
                return None  # validation reports the syntax error
            if ref is None:
                return "str"
            return self.resolve(ref, scope, dependent=dependent, in_finally=in_finally).type
        return values.json_type_of(value) or ANY

    def input_refs(self, node: StepNode) -> Iterator[tuple[tuple[str | int, ...], Ref]]:
        """Every reference a step reads directly, with the YAML path where it is written.

        Task: inputs, ``when``. Group: ``for_each``, ``when``. (Group outputs are read in the
        group's own body; see :meth:`group_output_refs`.) Unparsable templates are skipped:
        validation reports them.
        """
        step = node.step
        if isinstance(step, TaskStep):
            for name, value in step.inputs.items():
                yield from _template_refs(value, (*node.yaml_path, "inputs", name))
        else:
            if step.is_loop:
                yield from _template_refs(step.for_each, (*node.yaml_path, "for_each"))
        if step.when is not None:
            try:
                expr = parse_condition(step.when)
            except cond.ConditionSyntaxError:
                return
            for ref in cond.paths(expr):
                yield (*node.yaml_path, "when"), ref

    def group_output_refs(self, node: StepNode) -> Iterator[tuple[Scope, str, tuple[str | int, ...], Ref]]:
        group = node.group
        assert node.body is not None
        for name, expr in group.outputs.items():
            for path, ref in _template_refs(expr, (*node.yaml_path, "outputs", name)):
                yield node.body, name, path, ref
        if group.else_ is not None and node.else_body is not None:
            for name, expr in group.else_.outputs.items():
                for path, ref in _template_refs(expr, (*node.yaml_path, "else", "outputs", name)):
                    yield node.else_body, name, path, ref

    # ------------------------------------------------------------------ dependencies

    def deps(self, scope: Scope) -> dict[str, list[str]]:
        """Sibling dependencies in a scope: step → the siblings it waits for (writing order).

        References from anywhere inside a sibling (nested steps, conditions, for_each lists)
        are lifted to the sibling level; ``after`` adds the rest. Unresolvable references
        are ignored here (validation reports them).
        """
        cached = self._deps_cache.get(id(scope))
        if cached is not None:
            return cached
        edges: dict[str, set[str]] = {name: set() for name in scope.steps}
        for sibling in scope.steps.values():
            for node in [
                sibling,
                *(self.walk(sibling.body) if sibling.body else []),
                *(self.walk(sibling.else_body) if sibling.else_body else []),
                *self._finals_in(sibling),
            ]:
                for _path, ref in self.input_refs(node):
                    if ref.kind != "step":
                        continue
                    if node.finally_of is not None:
                        at, who, fin = self.context(node)
                        res = self.resolve(ref, at, dependent=who, in_finally=fin)
                    else:
                        res = self.resolve(ref, node.scope, dependent=node.name)
                    if res.dependency and res.dependency[0] is scope:
                        _s, user, producer = res.dependency
                        edges[user].add(producer)
                for target in node.step.after if node.finally_of is None else ():  # validation reports it
                    lifted = self.lift_after(node, target)
                    if lifted is not None and lifted[0] is scope:
                        edges[lifted[1]].add(lifted[2])
        order = {name: node.index for name, node in scope.steps.items()}
        result = {name: sorted(ds, key=order.__getitem__) for name, ds in edges.items()}
        self._deps_cache[id(scope)] = result
        return result

    def _finals_in(self, sibling: StepNode) -> list[StepNode]:
        """The group ``finally`` steps of a sibling and of the groups inside it."""
        if not self.finals or not sibling.is_group:
            return []
        return [
            n.finally_node
            for n in [
                sibling,
                *self.walk(sibling.body),
                *(self.walk(sibling.else_body) if sibling.else_body else []),
            ]
            if n.finally_node is not None
        ]

    def lift_after(self, node: StepNode, target_name: str) -> tuple[Scope, str, str] | None:
        """The sibling edge an ``after: [target]`` entry adds, or ``None`` if not visible."""
        target = self.nodes.get(target_name)
        if target is None:
            return None
        chain = list(node.scope.chain())
        if target.scope not in chain:
            return None
        user = node
        while user.scope is not target.scope:
            assert user.scope.owner is not None
            user = self.nodes[user.scope.owner]
        if user is target:
            return None
        return (target.scope, user.name, target.name)

    def toposort(self, scope: Scope) -> list[str]:
        """Siblings in dependency order; ties keep writing order. Raises on a cycle."""
        deps = self.deps(scope)
        order = {name: node.index for name, node in scope.steps.items()}
        waiting = {name: len(ds) for name, ds in deps.items()}
        users: dict[str, list[str]] = {name: [] for name in deps}
        for name, ds in deps.items():
            for d in ds:
                users[d].append(name)
        ready = [(order[n], n) for n, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        out: list[str] = []
        while ready:
            _, name = heapq.heappop(ready)
            out.append(name)
            for user in users[name]:
                waiting[user] -= 1
                if waiting[user] == 0:
                    heapq.heappush(ready, (order[user], user))
        if len(out) != len(deps):
            raise ValueError("cycle: " + " -> ".join(self.find_cycle(scope) or []))
        return out

    def find_cycle(self, scope: Scope) -> list[str] | None:
        """One dependency cycle among siblings, as names with the first repeated at the end,
        in the direction of execution (producer -> user)."""
        found = find_cycle(self.deps(scope))
        return list(reversed(found)) if found else None

    # ------------------------------------------------------------------ settings

    def effective(self, node: StepNode) -> EffectiveTask:
        """A task's settings with ``defaults`` applied field by field (docs/semantics.md);
        computed once per node (readers must not change what it holds)."""
        hit = self._effective.get(id(node))
        if hit is not None and hit[0] is node:
            return hit[1]
        eff = self._effective_uncached(node)
        self._effective[id(node)] = (node, eff)
        return eff

    def _effective_uncached(self, node: StepNode) -> EffectiveTask:
        task = node.task
        d = self.pipeline.defaults
        retry = _merge(Retry, d.retry, task.retry)
        resources = _merge(Resources, d.resources, task.resources)
        # A container step's own image wins; python steps use the step/default image.
        image = task.run.image if isinstance(task.run, ContainerRun) else (task.image or d.image)
        return EffectiveTask(
            image=image,
            retry=retry,
            timeout=task.timeout if task.timeout is not None else d.timeout,
            resources=resources,
            env={**d.env, **task.env},
            secrets=dict(task.secrets),
            **_cache(d.cache, task.cache),
        )

    def run_key(self, node: StepNode, indices: tuple[int, ...]) -> str:
        """A step's key in the run record: its name with ``[i]`` per enclosing for_each (SPEC §12)."""
        return node.name + "".join(f"[{i}]" for i in indices)


def _cache(default: Any, own: Any) -> dict[str, Any]:
    """Effective ``cache`` (docs/semantics.md): a step's ``false`` turns it off; its ``true``
    keeps the defaults' ``version``/``max_age``; its mapping overrides them field by field."""
    layers = [c for c in (default, own) if c is not None]
    if not layers or layers[-1] is False:
        return {"cache": False}
    version = max_age = None
    for layer in layers:
        if isinstance(layer, CacheSpec):
            if "version" in layer.model_fields_set:
                version = layer.version
            if "max_age" in layer.model_fields_set:
                max_age = layer.max_age
        elif layer is False:
            version = max_age = None
    return {"cache": True, "cache_version": version, "cache_max_age": max_age}


def _merge(model: Any, base: Any, override: Any) -> Any:
    data: dict[str, Any] = {}
    for layer in (base, override):
        if layer is not None:
            data.update({k: getattr(layer, k) for k in layer.model_fields_set})
    return model(**data)


def _template_refs(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], Ref]]:
    if isinstance(value, list):  # a structured literal (SPEC §19)
        for i, item in enumerate(value):
            yield from _template_refs(item, (*path, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _template_refs(item, (*path, key))
    elif isinstance(value, str) and "{{" in value:
        try:
            segments = parse_template(value)
        except RefSyntaxError:
            return
        for seg in segments:
            if isinstance(seg, Ref):
                yield path, seg


def _did_you_mean(name: str, options: Any, prefix: str) -> str | None:
    hint = nearest(name, list(options))
    return f"did you mean {prefix}{hint}?" if hint else None
