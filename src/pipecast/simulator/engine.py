"""The scheduler: the reference semantics of SPEC §3-§10 and §12.

One thread owns all state. Work arrives as events from a clock (:mod:`.clock`): attempt
results posted by executor threads, retry timers, or — in a dry run — virtual timers.
Every scope instance (the pipeline's top level, one ``for_each`` iteration, the branch of a
``when`` group that runs) is a :class:`Frame` with a count of unfinished dependencies per
step, so starting and finishing a step costs O(its edges): the whole run is O(steps).

Decisions the SPEC leaves open are documented in docs/simulator.md:

* run-record keys use 0-based iteration indices (``train[0]`` is the first item);
* a step that reads an output of a skipped step (a task whose own ``when`` was false) is
  skipped too, with the reason; ``after``-only dependents of a skipped step still run;
* after a failure, running steps finish (retries included); nothing new starts.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipecast.ir import condition as cond
from pipecast.ir.models import IMPORT_OUTPUT, Retry, TaskStep
from pipecast.ir.refs import Ref
from pipecast.passes import imports
from pipecast.passes.analysis import PipelineIndex, Scope, StepNode, is_artifact_type
from pipecast.passes.resolve import Value, evaluate_value
from pipecast.runtime.retry import retry_delay
from pipecast.simulator.values import Art, Missing, to_local, to_record

_DEFAULT_RETRY = Retry()
TERMINAL = frozenset({"succeeded", "failed", "skipped", "cached", "not_run"})
DONE_OK = frozenset({"succeeded", "skipped", "cached"})


def read_metric(art: Any, ref: Ref) -> float:
    """One metric of a Metrics artifact (SPEC §15); a missing name is a run-time error."""
    from pipecast.metrics import MetricsError, metric_value

    try:
        return metric_value(art.path if isinstance(art, Art) else str(art), ref.metric or "")
    except MetricsError as exc:
        raise StepError(f"{ref.path}: {exc}") from None


class StepError(Exception):
    """A run-time problem of one step that is not the user's function failing (e.g. a
    ``for_each`` value that is not a list): the step fails with this message."""


@dataclass(eq=False, slots=True)
class Frame:
    """One instance of a scope: the top level, one iteration, or a branch that runs."""

    scope: Scope
    parent: Frame | None
    owner: Inst | None
    indices: tuple[int, ...]
    loop_var: str | None = None
    item: Any = None
    insts: dict[str, Inst] = field(default_factory=dict)
    waiting: dict[str, int] = field(default_factory=dict)
    pending: int = 0
    #: Set once the frame's last step finished: steps that finish synchronously (skipped,
    #: cached, resumed) complete the frame inside ``_activate``, so completion must count once.
    done: bool = False


@dataclass(eq=False, slots=True)
class Inst:
    """One instance of a step (a task or a group) in a frame."""

    node: StepNode
    frame: Frame
    key: str
    status: str = "pending"
    outputs: dict[str, Any] | None = None
    attempts: int = 0
    started: float | None = None
    ended: float | None = None
    error: str | None = None
    reason: str | None = None
    inputs: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # groups
    frames: list[Frame] = field(default_factory=list)
    queued: list[Frame] = field(default_factory=list)
    active: int = 0
    remaining: int = 0
    child_failed: bool = False
    filling: bool = False
    # dry-run critical path
    cause: Inst | None = None
    last_child: Inst | None = None


@dataclass
class AttemptOutcome:
    """What an executor reports for one attempt (artifact outputs as local paths)."""

    ok: bool
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    timed_out: bool = False


class Hooks:
    """Observers of a run: progress display, target profiles. Methods are no-ops here."""

    def on_start(self, inst: Inst) -> None: ...
    def on_done(self, inst: Inst) -> None: ...
    def on_loop(self, inst: Inst, items: list[Any]) -> None: ...


class Engine:
    """Runs one pipeline. See the module docstring; build it with :func:`pipecast.simulator.run_pipeline`.

    Args:
        index: the validated pipeline's index.
        params: resolved parameter values.
        run_id: the run's id (``pipeline.run_id``).
        clock: a :class:`~.clock.RealClock` or :class:`~.clock.VirtualClock`.
        launch: starts one attempt: ``launch(engine, inst, attempt, call)``; it must post
            ``("done", inst, attempt, AttemptOutcome)`` to the clock when the attempt ends.
        max_parallel: concurrent attempts at most.
        fail: fault injection: step name or run key → number of first attempts to fail
            (``None``: all).
        seed: seeds retry jitter.
        reuse: called before a task starts: ``{status, outputs, attempts, extra}`` to reuse an
            earlier result (resume, cache), or ``None`` to run it.
        on_change: called after each state change (record writing, journal).
    """

    def __init__(
        self,
        index: PipelineIndex,
        params: dict[str, Any],
        run_id: str,
        clock: Any,
        launch: Callable[[Engine, Inst, int], None],
        *,
        max_parallel: int,
        fail: dict[str, int | None] | None = None,
        seed: int | None = None,
        reuse: Callable[[Inst], dict[str, Any] | None] | None = None,
        hooks: Sequence[Hooks] | None = None,
        on_change: Callable[[Inst], None] | None = None,
        base_dir: Path | None = None,
    ) -> None:
        self.index = index
        self.params = params
        #: The pipeline file's folder: local import paths are relative to it (SPEC §14).
        self.base_dir = base_dir or Path.cwd()
        self._param_values = self._artifact_params(params)
        self.run_id = run_id
        self.clock = clock
        self.launch_fn = launch
        self.max_parallel = max(1, max_parallel)
        self.fail = fail or {}
        self.rng = random.Random(seed)
        self.reuse = reuse
        self.hooks = hooks or []
        self.on_change = on_change
        self.failing = False
        self.phase = "steps"  # steps -> finally -> done
        self.running = 0
        self.retry_waits = 0
        self.slots: list[tuple[int, tuple[int, ...], int, Inst]] = []
        self._seq = 0
        self.insts: dict[str, Inst] = {}
        self.finally_inst: Inst | None = None
        #: SPEC §18: a group's running ``finally`` → (its group, ``group.status``, the group's
        #: record status unless the finally fails).
        self._finals: dict[int, tuple[Inst, str, str]] = {}
        #: Groups with a ``finally`` that started and have not run it yet.
        self._open: dict[int, Inst] = {}
        self.status = "running"
        self.started_wall = datetime.now(UTC)
        self.started_clock = clock.now()
        self._epoch = self.started_wall.timestamp()
        self._users: dict[int, dict[str, list[str]]] = {}
        self._deps: dict[int, dict[str, list[str]]] = {}
        self._effective: dict[int, Any] = {}
        self._walls: dict[float, str] = {}
        self._ready_q: deque[Inst] = deque()
        self._draining = False
        self.root = self._new_frame(index.root, None, None, ())
        self.last_done: Inst | None = None

    # ------------------------------------------------------------------ helpers

    def _artifact_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Parameter values as steps see them: a local path of an artifact parameter becomes
        an artifact read in place (SPEC §14); a remote URI stays its string."""
        out = dict(params)
        for name, param in self.index.pipeline.params.items():
            value = out.get(name)
            if is_artifact_type(param.type) and isinstance(value, str) and imports.is_local(value):
                out[name] = Art(str(imports.local_path(value, self.base_dir)))
        return out

    def _metrics(self, inst: Inst) -> None:
        """SPEC §15: the run record shows each Metrics output's numbers (``metrics``) and each
        artifact's ``<path>.metadata.json`` (``metadata``), keyed by output name."""
        from pipecast import metrics

        found: dict[str, Any] = {}
        meta: dict[str, Any] = {}
        for name, type_name in inst.node.task.outputs.items():
            art = inst.outputs.get(name) if inst.outputs else None
            if not isinstance(art, Art):
                continue
            if type_name == "Metrics":
                try:
                    found[name] = metrics.read(art.path)
                except metrics.MetricsError:
                    found[name] = {}
            data = metrics.metadata(art.path)
            if data:
                meta[name] = data
        if found:
            inst.extra["metrics"] = found
        if meta:
            inst.extra["metadata"] = meta

    def _import(self, inst: Inst, lookup: Callable[[Ref], Any]) -> None:
        """An import step (SPEC §14): no code runs; its output is the artifact at the URI."""
        spec = inst.node.task.import_
        assert spec is not None
        uri_value = self.index.resolved.step(inst.node).import_uri
        assert uri_value is not None
        value = self.resolve_value(uri_value, lookup)
        uri = value.path if isinstance(value, Art) else str(value)
        inst.inputs = {"uri": uri}
        if spec.metadata:
            inst.extra["metadata"] = {IMPORT_OUTPUT: spec.metadata}
        if not imports.is_local(uri):
            self._finish(
                inst,
                "failed",
                error=f"import {uri!r}: the simulator reads local paths only; pass a local copy "
                "(through a parameter: --param name=path/to/copy)",
            )
            return
        path = imports.local_path(uri, self.base_dir)
        if not path.exists():
            self._finish(
                inst,
                "failed",
                error=f"import {uri!r}: {path} does not exist (a relative path is relative to the "
                "pipeline file's folder)",
            )
            return
        inst.outputs = {IMPORT_OUTPUT: Art(str(path))}
        self._finish(inst, "succeeded")

    def wall(self, t: float | None) -> str | None:
        """A clock time as ISO 8601 (UTC, millisecond precision)."""
        if t is None:
            return None
        text = self._walls.get(t)
        if text is None:
            text = (
                (self.started_wall + timedelta(seconds=t - self.started_clock))
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z")
            )
            if self.clock.virtual:  # virtual times repeat (whole seconds): format each once
                self._walls[t] = text
        return text

    def _scope_graph(self, scope: Scope) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        deps = self._deps.get(id(scope))
        if deps is None:
            deps = self.index.deps(scope)
            users: dict[str, list[str]] = {n: [] for n in deps}
            for name, ds in deps.items():
                for d in ds:
                    users[d].append(name)
            self._deps[id(scope)] = deps
            self._users[id(scope)] = users
        return deps, self._users[id(scope)]

    def _new_frame(
        self,
        scope: Scope,
        parent: Frame | None,
        owner: Inst | None,
        indices: tuple[int, ...],
        item: Any = None,
    ) -> Frame:
        deps, _ = self._scope_graph(scope)
        frame = Frame(scope, parent, owner, indices, scope.loop_var, item)
        run_key = self.index.run_key
        for name, node in scope.steps.items():
            key = run_key(node, indices)
            inst = Inst(node, frame, key)
            frame.insts[name] = inst
            frame.waiting[name] = len(deps[name])
            self.insts[key] = inst
        frame.pending = len(scope.steps)
        return frame

    def lookup_for(self, frame: Frame, group_status: str | None = None) -> Callable[[Ref], Any]:
        """The value of a reference as seen from a frame (in a group's ``finally``: with the
        group's status, SPEC §18)."""

        def lookup(ref: Ref) -> Any:
            kind = ref.kind
            if kind == "param":
                return self._param_values[ref.name]
            if kind == "step":
                return self._step_value(frame, ref)
            if kind == "group":  # SPEC §18; a loop variable named 'group' shadows it
                f: Frame | None = frame
                while f is not None and f.loop_var != "group":
                    f = f.parent
                if f is None and group_status is not None and ref.name == "status":
                    return group_status
                ref = Ref("loop", "group", ref.name)
                kind = "loop"
            if kind == "loop":
                return self._loop_value(frame, ref)
            if kind == "pipeline":
                if ref.name == "status":
                    return "failed" if self.failing else "succeeded"
                if ref.name == "name":
                    return self.index.pipeline.name
                return self.run_id
            raise StepError(f"{{{{ {ref.path} }}}} cannot be resolved here")

        return lookup

    def _step_value(self, frame: Frame, ref: Ref) -> Any:
        """A step output (or one of a Metrics output's numbers) as seen from ``frame``."""
        scope = self.index.nodes[ref.name].scope
        f: Frame | None = frame
        while f is not None and f.scope is not scope:
            f = f.parent
        if f is None:
            raise StepError(f"step {ref.name!r} is not visible here")
        inst = f.insts[ref.name]
        out = inst.outputs
        if out is None or ref.key not in out:
            raise Missing(ref.name)
        if ref.metric is not None:
            return read_metric(out[ref.key], ref)
        return out[ref.key]

    @staticmethod
    def _loop_value(frame: Frame, ref: Ref) -> Any:
        """The item of the nearest loop named ``ref.name`` (or one of its keys)."""
        f: Frame | None = frame
        while f is not None and f.loop_var != ref.name:
            f = f.parent
        if f is None:
            raise StepError(f"loop variable {ref.name!r} is not defined here")
        if ref.key is None:
            return f.item
        if not isinstance(f.item, dict) or ref.key not in f.item:
            raise StepError(f"loop item {f.item!r} has no key {ref.key!r} ({{{{ {ref.path} }}}})")
        return f.item[ref.key]

    @staticmethod
    def resolve_value(value: Value, lookup: Callable[[Ref], Any]) -> Any:
        """SPEC §4: a single reference keeps its type; a mixed string renders paths and JSON; a
        list or mapping literal is built item by item, an artifact in it as its local path (§19)."""
        return evaluate_value(value, lambda n: lookup(n.ref), item=to_local)

    def effective(self, node: StepNode) -> Any:
        """``index.effective(node)``, computed once per node."""
        eff = self._effective.get(id(node))
        if eff is None:
            eff = self._effective[id(node)] = self.index.effective(node)
        return eff

    def retry_timeout(self, node: StepNode) -> tuple[Retry, float | None]:
        """The effective retry policy and timeout; cheap when neither is set anywhere
        (the common case, and the one that matters for 10,000-step dry runs)."""
        task = node.task
        d = self.index.pipeline.defaults
        if task.retry is None and d.retry is None:
            return _DEFAULT_RETRY, task.timeout if task.timeout is not None else d.timeout
        eff = self.effective(node)
        return eff.retry, eff.timeout

    def _condition(self, node: StepNode, text: str, lookup: Callable[[Ref], Any]) -> bool:
        expr = self.index.resolved.step(node).when
        assert expr is not None
        try:
            result = cond.evaluate(expr, lookup)
        except TypeError as exc:
            raise StepError(f"condition {text!r}: {exc}") from None
        if not isinstance(result, bool):
            raise StepError(f"condition {text!r} gave {result!r}, not a boolean")
        return result

    # ------------------------------------------------------------------ driving

    def run(self) -> None:
        """Run to the end (blocking)."""
        self._activate(self.root)
        if not self.root.scope.steps:
            self._frame_done(self.root)
        while True:
            self._pump()
            if self._finished():
                break
            if self.slots and self.running < self.max_parallel:
                continue  # finally was just queued
            event = self.clock.next()
            self._handle(event)
            # Drain what else is already waiting before scheduling again (fewer wake-ups).
            while (more := self.clock.poll()) is not None:
                self._handle(more)
        self._finalize()

    def _handle(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "done":
            self._attempt_done(event[1], event[2], event[3])
        elif kind == "retry":
            self.retry_waits -= 1
            self._queue_slot(event[1])

    def _finished(self) -> bool:
        """True when the run is over; moves on to ``finally`` when the steps are."""
        if self.running or self.retry_waits or self.slots:
            return False
        while self.phase == "steps" and self.failing and self._open:
            self._close_interrupted()
            if self.running or self.retry_waits or self.slots:
                return False
        if self.phase == "steps" and (self.failing or self.root.pending == 0):
            self._enter_finally()
            return self.phase == "done" or (not self.slots and not self.running)
        return self.phase == "done"

    def _enter_finally(self) -> None:
        node = self.index.finally_node
        if node is None:
            self.phase = "done"
            return
        self.phase = "finally"
        inst = Inst(node, self.root, "finally")
        inst.cause = self.last_done
        self.finally_inst = inst
        self.insts["finally"] = inst
        self._start_task(inst)

    def _pump(self) -> None:
        while self.slots and self.running < self.max_parallel:
            *_, inst = heapq.heappop(self.slots)
            if self.failing and inst.attempts == 0 and not self._is_final(inst):
                continue  # never started: not_run at the end
            self._launch(inst)
        if self.failing and self.slots:
            # Running steps may still retry; everything that has not started never will.
            kept = [s for s in self.slots if s[3].attempts > 0 or self._is_final(s[3])]
            if len(kept) != len(self.slots):
                self.slots = kept
                heapq.heapify(self.slots)

    def _is_final(self, inst: Inst) -> bool:
        """The pipeline's or a group's ``finally``: it starts after a failure too (SPEC §22)."""
        return inst is self.finally_inst or id(inst) in self._finals

    def _queue_slot(self, inst: Inst) -> None:
        self._seq += 1
        heapq.heappush(self.slots, (inst.node.index, inst.frame.indices, self._seq, inst))

    # ------------------------------------------------------------------ readiness

    def _activate(self, frame: Frame) -> None:
        for name, count in list(frame.waiting.items()):
            if count == 0:
                inst = frame.insts[name]
                if inst.cause is None and frame.owner is not None:
                    inst.cause = frame.owner.cause
                self._ready(inst)

    def _ready(self, inst: Inst) -> None:
        """Start a step whose dependencies are done. Steps can finish at once (skipped,
        cached, resumed) and make others ready in turn, so ready steps go through a queue
        drained by one loop: a long chain of such steps never deepens the call stack."""
        self._ready_q.append(inst)
        if self._draining:
            return
        self._draining = True
        try:
            while self._ready_q:
                nxt = self._ready_q.popleft()
                if self.failing or nxt.status != "pending":
                    continue
                if nxt.node.is_group:
                    self._start_group(nxt)
                else:
                    self._start_task(nxt)
        finally:
            self._draining = False

    def _start_task(self, inst: Inst) -> None:
        node = inst.node
        task: TaskStep = node.task
        final = self._finals.get(id(inst))
        lookup = self.lookup_for(inst.frame, final[1] if final is not None else None)
        try:
            if task.when is not None and not self._condition(node, task.when, lookup):
                self._finish(inst, "skipped", reason=f"condition is false: {task.when}")
                return
            if task.import_ is not None:
                self._import(inst, lookup)
                return
            inst.inputs = {
                name: self.resolve_value(v, lookup)
                for name, v in self.index.resolved.step(node).inputs.items()
            }
        except Missing as m:
            self._finish(inst, "skipped", reason=f"reads an output of skipped step {m.step!r}")
            return
        except StepError as exc:
            self._finish(inst, "failed", error=str(exc))
            return
        if self.reuse is not None:
            reused = self.reuse(inst)
            if reused is not None:
                inst.outputs = reused["outputs"]
                inst.attempts = reused.get("attempts", 0)
                inst.extra.update(reused.get("extra", {}))
                self._finish(inst, reused["status"])
                return
        inst.status = "queued"
        self._queue_slot(inst)

    def _launch(self, inst: Inst) -> None:
        attempt = inst.attempts + 1
        inst.attempts = attempt
        inst.status = "running"
        if inst.started is None:
            inst.started = self.clock.now()
        # Per-attempt times for the run report's timeline (retry waits are the gaps).
        inst.extra.setdefault("attempt_times", []).append({"started": self.wall(self.clock.now())})
        self.running += 1
        for hook in self.hooks:
            hook.on_start(inst)
        if self.on_change:
            self.on_change(inst)
        self.launch_fn(self, inst, attempt)

    def injected(self, inst: Inst, attempt: int) -> bool:
        """Whether fault injection (``--fail``) fails this attempt."""
        if not self.fail:
            return False
        for name in (inst.key, inst.node.name):
            if name in self.fail:
                n = self.fail[name]
                return n is None or attempt <= n
        return False

    def _attempt_done(self, inst: Inst, attempt: int, outcome: AttemptOutcome) -> None:
        self.running -= 1
        times = inst.extra.get("attempt_times")
        if times:
            times[-1].update(ended=self.wall(self.clock.now()), ok=outcome.ok)
        if outcome.ok:
            outputs: dict[str, Any] = {}
            arts = False
            for name, type_name in inst.node.task.outputs.items():
                value = outcome.outputs.get(name)
                if is_artifact_type(type_name):
                    arts = True
                    outputs[name] = Art(str(value))
                else:
                    outputs[name] = value
            inst.outputs = outputs
            if arts:
                self._metrics(inst)
            inst.error = None
            self._finish(inst, "succeeded")
            return
        inst.error = outcome.error
        inst.extra.setdefault("errors", []).append(outcome.error)
        retry = self.retry_timeout(inst.node)[0]
        if attempt < retry.attempts:
            delay = retry_delay(retry, attempt, self.rng)
            inst.status = "retrying"
            self.retry_waits += 1
            self.clock.at(self.clock.now() + delay, ("retry", inst))
            if self.on_change:
                self.on_change(inst)
            return
        self._finish(inst, "failed", error=outcome.error)

    # ------------------------------------------------------------------ groups

    def _start_group(self, inst: Inst) -> None:
        node = inst.node
        group = node.group
        inst.started = self.clock.now()
        inst.status = "running"
        if node.finally_node is not None:
            self._open[id(inst)] = inst
        lookup = self.lookup_for(inst.frame)
        try:
            if group.is_loop:
                for_each = self.index.resolved.step(node).for_each
                assert for_each is not None
                items = self.resolve_value(for_each, lookup)
                if not isinstance(items, list):
                    raise StepError(f"for_each must give a list, got {type(items).__name__} {items!r}")
                for hook in self.hooks:
                    hook.on_loop(inst, items)
                assert node.body is not None
                base = inst.frame.indices
                inst.frames = [
                    self._new_frame(node.body, inst.frame, inst, (*base, i), item)
                    for i, item in enumerate(items)
                ]
                inst.remaining = len(items)
                inst.queued = list(reversed(inst.frames))
                if self.on_change:
                    self.on_change(inst)
                if not items:
                    self._group_done(inst)
                    return
                self._fill(inst)
                return
            assert node.body is not None
            # A plain group (a sub-pipeline, SPEC §17) runs its steps as a condition that holds.
            holds = group.when is None or self._condition(node, group.when, lookup)
        except Missing as m:
            self._open.pop(id(inst), None)
            self._skip_subtree(node, inst.frame.indices, f"reads an output of skipped step {m.step!r}")
            self._finish(inst, "skipped", reason=f"reads an output of skipped step {m.step!r}")
            return
        except StepError as exc:
            inst.child_failed = True
            self._close_group(inst, "failed", error=str(exc))
            return
        reason = f"condition is false: {group.when}"
        if holds:
            if node.else_body is not None:
                self._skip_scope(node.else_body, inst.frame.indices, f"condition is true: {group.when}")
            branch = node.body
        elif node.else_body is not None:
            self._skip_scope(node.body, inst.frame.indices, reason)
            branch = node.else_body
        else:
            self._skip_scope(node.body, inst.frame.indices, reason)
            # SPEC §18: a skipped when group does not run its finally.
            self._open.pop(id(inst), None)
            self._finish(inst, "skipped", reason=reason)
            return
        inst.extra["branch"] = "then" if holds else "else"
        frame = self._new_frame(branch, inst.frame, inst, inst.frame.indices)
        inst.frames = [frame]
        inst.remaining = 1
        if self.on_change:
            self.on_change(inst)
        self._activate(frame)
        if not frame.insts:
            self._frame_done(frame)

    def _fill(self, inst: Inst) -> None:
        """Start iterations of a for_each group up to its ``parallelism``. Re-entrant calls
        (an iteration that finished at once) return: the outer loop starts the next one."""
        if inst.filling:
            return
        inst.filling = True
        try:
            limit = inst.node.group.parallelism or len(inst.frames)
            while inst.queued and inst.active < limit and not self.failing:
                self._start_iteration(inst)
        finally:
            inst.filling = False

    def _start_iteration(self, inst: Inst) -> None:
        frame = inst.queued.pop()
        inst.active += 1
        self._activate(frame)
        if not frame.insts:
            self._frame_done(frame)

    def _frame_done(self, frame: Frame) -> None:
        if frame.done:
            return
        frame.done = True
        owner = frame.owner
        if owner is None:
            return  # the top level: _finished() moves on to finally
        owner.remaining -= 1
        if owner.node.group.is_loop:
            owner.active -= 1
            if owner.queued and not self.failing:
                nxt = owner.queued[-1]
                for inst in nxt.insts.values():
                    if inst.cause is None:
                        inst.cause = self.last_done
                self._fill(owner)
        if owner.remaining == 0:
            self._group_done(owner)

    def _group_done(self, inst: Inst) -> None:
        node = inst.node
        group = node.group
        outputs: dict[str, Any] = {}
        resolved = self.index.resolved.step(node)
        if group.is_loop:
            for name, expr in resolved.outputs.items():
                # docs/semantics.md: the list holds the items where the step ran, in item order.
                collected: list[Any] = []
                for f in inst.frames:
                    try:
                        collected.append(self.resolve_value(expr, self.lookup_for(f)))
                    except Missing:
                        pass
                    except StepError as exc:
                        self._close_group(inst, "failed", error=str(exc))
                        return
                outputs[name] = collected
        else:
            frame = inst.frames[0]
            exprs = resolved.outputs if frame.scope is node.body else resolved.else_outputs
            lookup = self.lookup_for(frame)
            for name, expr in exprs.items():
                try:
                    outputs[name] = self.resolve_value(expr, lookup)
                except Missing:
                    pass
                except StepError as exc:
                    self._close_group(inst, "failed", error=str(exc))
                    return
        inst.outputs = outputs
        self._close_group(inst, "succeeded")

    def _close_group(
        self, inst: Inst, status: str, *, error: str | None = None, record: str | None = None
    ) -> None:
        """End a group: first its ``finally`` (SPEC §18), which sees ``status``; the group
        ends when that ends (so steps after the group wait for it, docs/semantics.md) with
        ``record`` (default ``status``) as its run-record status."""
        fin_node = inst.node.finally_node
        if fin_node is None or self._open.pop(id(inst), None) is None:
            self._finish(inst, record or status, error=error)
            return
        if error is not None:
            inst.error = error
        fin = Inst(fin_node, inst.frame, self.index.run_key(fin_node, inst.frame.indices))
        fin.cause = inst.last_child or inst.cause
        self._finals[id(fin)] = (inst, status, record or status)
        self.insts[fin.key] = fin
        self._start_task(fin)

    def _close_interrupted(self) -> None:
        """After a failure, once nothing runs: run the ``finally`` of each group that started
        and did not end, innermost first. It sees ``group.status`` ``failed``; the group's
        record says ``failed`` if a step inside failed, else ``not_run`` (docs/semantics.md)."""
        open_groups = list(self._open.values())

        def encloses(outer: Inst, inner: Inst) -> bool:
            f: Frame | None = inner.frame
            while f is not None:
                if f.owner is outer:
                    return True
                f = f.owner.frame if f.owner is not None else None
            return False

        for group in open_groups:
            if any(other is not group and encloses(group, other) for other in open_groups):
                continue
            self._close_group(group, "failed", record="failed" if group.child_failed else "not_run")

    # ------------------------------------------------------------------ skipping

    def _skip_scope(
        self, scope: Scope, indices: tuple[int, ...], reason: str, status: str = "skipped"
    ) -> None:
        """Record every step of a scope that will not run (the branch not taken)."""
        for node in scope.steps.values():
            self._skip_subtree(node, indices, reason, status)
            key = self.index.run_key(node, indices)
            if key not in self.insts:
                inst = Inst(node, Frame(scope, None, None, indices), key, status=status, reason=reason)
                self.insts[key] = inst
                if self.on_change:
                    self.on_change(inst)

    def _skip_subtree(
        self, node: StepNode, indices: tuple[int, ...], reason: str, status: str = "skipped"
    ) -> None:
        """Record the inner steps of a group that will not run (not through a for_each)."""
        if node.is_group and not node.group.is_loop:
            assert node.body is not None
            self._skip_scope(node.body, indices, reason, status)
            if node.else_body is not None:
                self._skip_scope(node.else_body, indices, reason, status)

    # ------------------------------------------------------------------ finishing

    def _finish(
        self, inst: Inst, status: str, *, error: str | None = None, reason: str | None = None
    ) -> None:
        self._stamp(inst, status, error, reason)
        if inst is self.finally_inst:
            self.phase = "done"
            return
        closing = self._finals.pop(id(inst), None)
        if closing is not None:
            group, _seen, group_status = closing
            if status == "failed":
                group_status = "failed"
                group.error = group.error or f"its finally step {inst.key!r} failed"
            self._finish(group, group_status)
            return
        frame = inst.frame
        if frame.owner is not None:
            frame.owner.last_child = inst
        if status == "not_run":  # an interrupted group whose finally ran (SPEC §18)
            frame.pending -= 1
            return
        if status == "failed":
            self.failing = True
            owner = frame.owner
            f: Frame | None = frame
            while f is not None and f.owner is not None:
                f.owner.child_failed = True
                f = f.owner.frame
            del owner
            frame.pending -= 1
            return
        frame.pending -= 1
        self._release_users(inst, frame)
        if frame.pending == 0:
            self._frame_done(frame)

    def _stamp(self, inst: Inst, status: str, error: str | None, reason: str | None) -> None:
        """Record an instance's end and tell the hooks and the run record."""
        inst.status = status
        inst.ended = self.clock.now()
        if inst.started is None:
            inst.started = inst.ended
        if error is not None:
            inst.error = error
        if reason is not None:
            inst.reason = reason
        if status == "skipped" and inst.outputs is None:
            inst.outputs = {}
        self.last_done = inst
        for hook in self.hooks:
            hook.on_done(inst)
        if self.on_change:
            self.on_change(inst)

    def _release_users(self, inst: Inst, frame: Frame) -> None:
        """The steps of ``frame`` waiting on ``inst`` that now have all they wait for start."""
        _, users = self._scope_graph(frame.scope)
        for user in users[inst.node.name]:
            frame.waiting[user] -= 1
            if frame.waiting[user] == 0:
                nxt = frame.insts[user]
                nxt.cause = inst
                self._ready(nxt)

    def _finalize(self) -> None:
        failed = self.failing or (self.finally_inst is not None and self.finally_inst.status == "failed")
        now = self.clock.now()
        for inst in list(self.insts.values()):
            if inst.status in TERMINAL:
                continue
            if inst.node.is_group and inst.status == "running":
                inst.status = "failed" if inst.child_failed else "not_run"
                inst.ended = now
            else:
                inst.status = "not_run"
            if inst.node.is_group and inst.status == "not_run" and not inst.frames:
                self._skip_subtree(inst.node, inst.frame.indices, "", "not_run")
            if self.on_change:
                self.on_change(inst)
        self.status = "failed" if failed else "succeeded"

    # ------------------------------------------------------------------ results

    def pipeline_outputs(self) -> dict[str, Any]:
        """The pipeline's ``outputs`` (SPEC §2), resolved at the top level."""
        out: dict[str, Any] = {}
        lookup = self.lookup_for(self.root)
        for name, expr in self.index.resolved.outputs.items():
            try:
                out[name] = self.resolve_value(expr, lookup)
            except (Missing, StepError):
                continue
        return out

    def entry(self, inst: Inst) -> dict[str, Any]:
        """The run-record entry of one step instance (SPEC §12)."""
        e: dict[str, Any] = {"status": inst.status}
        if inst.node.is_task:
            e["attempts"] = inst.attempts
        if inst.outputs and inst.status in DONE_OK:
            e["outputs"] = {k: to_record(v) for k, v in inst.outputs.items()}
        if inst.started is not None:
            e["started"] = self.wall(inst.started)
        if inst.ended is not None:
            e["ended"] = self.wall(inst.ended)
        if inst.error:
            e["error"] = inst.error
        if inst.reason:
            e["reason"] = inst.reason
        if inst.inputs is not None and inst.status not in ("skipped",):
            e["inputs"] = {k: to_record(v) for k, v in inst.inputs.items()}
        if inst.node.is_group and inst.node.group.is_loop and inst.frames:
            e["iterations"] = len(inst.frames)
        for k, v in inst.extra.items():
            e[k] = v
        return e
