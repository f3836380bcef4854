"""Pipeline → Amazon States Language definition (data first: dicts, serialised by the backend).

https://states-language.net/spec.html
https://docs.aws.amazon.com/step-functions/latest/dg/concepts-amazon-states-language.html

Each scope's sibling graph (``index.deps``) is lowered to a series-parallel expression
(:func:`pipecast_stepfunctions.lowering.lower`) and emitted back to front, so every state
knows its ``Next`` when it is built. The mapping of every IR feature is in
docs/targets/stepfunctions.md; the state layout is in :mod:`.paths`.

| IR                         | ASL                                                            |
|----------------------------|----------------------------------------------------------------|
| task step                  | Task state(s) of the compute (:mod:`.compute`)                 |
| independent siblings       | ``Parallel`` + a join ``Pass`` (``States.JsonMerge``)          |
| ``for_each``               | ``Map`` (``ItemsPath``, ``ItemSelector``, ``MaxConcurrency``)  |
| ``when`` / ``else``        | ``Choice`` → branch → outputs ``Pass``                         |
| ``retry``                  | ``Retry`` on the step's task state                             |
| ``timeout``                | ``TimeoutSeconds``                                             |
| ``finally``                | ``Parallel`` around the body, ``Catch`` → finally → ``Fail``   |
| a group's ``finally``      | the same around the group's states (:meth:`emit_group_finally`)|
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipecast.diagnostics import Diagnostic
from pipecast.ir.models import Pipeline
from pipecast.ir.refs import Ref
from pipecast.passes.analysis import ANY, FinallyKind, PipelineIndex, Scope, StepNode
from pipecast.passes.resolve import Lit, ParamRef, RefNode, StepOutput, Text, Value, refs_of
from pipecast.passes.skipped import may_be_missing, optional_refs

from . import compute, waits
from .conditions import to_rule
from .lowering import SP, Par, Seq, lower
from .names import StateNames, state_machine_arn, state_machine_name
from .paths import (
    MAX_INTRINSICS,
    format_call,
    format_parts,
    format_string,
    intrinsic_calls,
    is_built,
    ordered,
    part,
    ref_path,
    reorders,
    template,
    text_segments,
    value_entry,
)
from .settings import StepFunctionsSettings
from .split import Child, Events, Frame, KeepOrder, Outliner, Unit
from .waits import lower_with_waits

ROOT_KEYS = ("params", "pipeline", "steps")
LOOP_KEYS = (*ROOT_KEYS, "loop", "index")
FAILED_ERROR = "pipecast.PipelineFailed"
GROUP_FAILED_ERROR = "pipecast.GroupFailed"


@dataclass
class MapInfo:
    group: str
    width: int
    width_known: bool
    events: int  # history events this Map adds when inline


@dataclass
class Emitter(Outliner):
    pipeline: Pipeline
    index: PipelineIndex
    settings: StepFunctionsSettings
    distributed: frozenset[str] = frozenset()
    names: StateNames = field(default_factory=StateNames)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    job_definitions: dict[str, str] = field(default_factory=dict)
    #: step name → (S3 key, compact StepSpec JSON); deploy uploads them.
    specs: dict[str, tuple[str, str]] = field(default_factory=dict)
    maps: list[MapInfo] = field(default_factory=list)
    assumed_widths: dict[str, int] = field(default_factory=dict)
    children: list[Child] = field(default_factory=list)
    _inner: dict[int, tuple[dict[str, Any], int]] = field(default_factory=dict)
    _eff: dict[str, Any] = field(default_factory=dict)
    #: dag_mode waits: id(StepNode) → the producers that node waits for, and the ids of
    #: the nodes others wait for (they publish their state entry to S3).
    wait_for: dict[int, tuple[str, ...]] = field(default_factory=dict)
    published: set[int] = field(default_factory=set)
    warned_images: set[str] = field(default_factory=set)
    #: container step → whether it runs its image unchanged (SPEC §21; compute.stock_plan)
    stock_plans: dict[str, Any] = field(default_factory=dict)
    #: Steps whose Metrics numbers are read by name (compute.metrics_read), computed once.
    metric_sources: frozenset[str] | None = None
    state_bytes: int = 0
    #: Bytes of the root scope's entries at their largest when long sequences are pruned.
    root_state_peak: int | None = None

    def __post_init__(self) -> None:
        s = self.settings
        # Measured sizes are compact JSON; keep a margin for the few root states.
        self.budget_bytes = int(s.definition_split_bytes * 0.95)
        self.budget_events = int(s.max_history_events * 0.9)
        self.base_name = state_machine_name(self.pipeline, s)

    def arn_of(self, name: str) -> str:
        return state_machine_arn(name, self.settings)

    # ------------------------------------------------------------------ helpers

    def eff(self, node: StepNode) -> Any:
        """``index.effective(node)``, computed once per step (it merges defaults each call)."""
        found = self._eff.get(node.name)
        if found is None:
            found = self._eff[node.name] = self.index.effective(node)
        return found

    def store_spec(self, node: StepNode, text: str) -> str:
        """Keep a step's StepSpec for upload; its content-addressed ``s3://`` URI."""
        s = self.settings
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        key = (s.prefix + "/" if s.prefix else "") + (
            f"{self.pipeline.name}/_pipecast/specs/{node.name}-{digest}.json"
        )
        self.specs[node.name] = (key, text)
        return f"s3://{s.bucket}/{key}"

    def type_of(
        self, scope: Scope, dependent: str | None, in_finally: FinallyKind = False
    ) -> Callable[[Ref], str]:
        def type_of(ref: Ref) -> str:
            if ref.kind in ("pipeline", "group"):
                return "str"
            res = self.index.resolve(ref, scope, dependent=dependent, in_finally=in_finally)
            return res.type or ANY

        return type_of

    def inputs_template(self, node: StepNode) -> dict[str, Any]:
        return self._inputs(node)[0]

    def _inputs(self, node: StepNode) -> tuple[dict[str, Any], dict[str, Any]]:
        """The step's inputs as a payload template, and the parts of fields too big for one
        field (over 10 intrinsic calls), which a ``Pass`` computes into ``$.fmt`` first."""
        scope, dependent, in_finally = self.index.context(node)
        type_of = self.type_of(scope, dependent, in_finally)
        out: dict[str, Any] = {}
        parts: dict[str, Any] = {}
        resolved = node.resolved.inputs
        for k, v in node.task.inputs.items():
            key, value = value_entry(k, v, resolved[k], type_of, self.pipeline.name)
            if key.endswith(".$") and intrinsic_calls(value) > MAX_INTRINSICS:
                rv = resolved[k]
                assert isinstance(rv, Text), rv
                value, parts[k] = format_parts(text_segments(rv), type_of, self.pipeline.name, f"$.fmt.{k}")
            out[key] = value
        return out, parts

    def prefix_call(self, node: StepNode, frame: Frame, *, with_bucket: bool = True, suffix: str = "") -> str:
        """``States.Format`` of the step's artifact prefix:
        ``<artifact root>/<pipeline>/<execution name>/<step>[/<i>...]`` (one index per loop)."""
        s = self.settings
        head = s.artifact_root if with_bucket else s.prefix
        base = (head + "/" if head else "") + self.pipeline.name
        pieces: list[str | None] = [base + "/", None, "/" + node.name]
        for _ in frame.loops:
            pieces += ["/", None]
        pieces.append(suffix)
        args = ["$.pipeline.run_id", *(f"$.index.{g.name}" for g in frame.loops)]
        return f"States.Format({format_string(pieces)}, {', '.join(args)})"

    def timeout_seconds(self, node: StepNode) -> int | None:
        timeout = self.eff(node).timeout
        if timeout is None:
            return None
        return max(1, math.ceil(timeout))

    def total_timeout(self, node: StepNode) -> int | None:
        """Whole-step time limit when the runtime retries: every attempt plus every wait."""
        from pipecast.runtime.retry import backoff_delay

        eff = self.eff(node)
        if eff.timeout is None:
            return None
        r = eff.retry
        pauses = sum(backoff_delay(r, n) for n in range(1, r.attempts))
        return max(1, math.ceil(eff.timeout * r.attempts + pauses + 60))

    def retry_and_timeout(self, node: StepNode) -> dict[str, Any]:
        """``Retry`` and ``TimeoutSeconds`` for a step's task state (SPEC §6, §7)."""
        out: dict[str, Any] = {}
        eff = self.eff(node)
        timeout = self.timeout_seconds(node)
        if timeout is not None:
            # The step timeout is enforced as run time by the compute (MaxRuntimeInSeconds,
            # AttemptDurationSeconds); a .sync state's TimeoutSeconds also counts SageMaker
            # provisioning and Batch queue time, so it is only a backstop that long after.
            # https://docs.aws.amazon.com/step-functions/latest/dg/connect-sagemaker.html
            out["TimeoutSeconds"] = timeout + self.settings.startup_allowance_seconds
            if eff.timeout is not None and eff.timeout < 1:
                self._warn(
                    node, "timeout", f"timeout {eff.timeout:g}s is raised to 1 s (Step Functions' minimum)"
                )
        r = eff.retry
        if r.attempts > 1:
            # IntervalSeconds and MaxDelaySeconds are whole seconds >= 1:
            # https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html
            interval = max(1, math.ceil(r.delay))
            if r.delay < interval:
                self._warn(
                    node,
                    "retry",
                    f"retry delay {r.delay:g}s is raised to {interval} s (whole seconds, at least 1)",
                )
            retrier: dict[str, Any] = {
                "ErrorEquals": ["States.ALL"],
                "MaxAttempts": r.attempts - 1,
                "IntervalSeconds": interval,
                "BackoffRate": float(r.backoff),
                "MaxDelaySeconds": max(interval, math.ceil(r.max_delay)),
            }
            if r.jitter:
                retrier["JitterStrategy"] = "FULL"
            out["Retry"] = [retrier]
        return out

    def _warn(self, node: StepNode, what: str, message: str) -> None:
        own = what in node.task.model_fields_set
        path = (*node.yaml_path, what) if own else ("defaults", what)
        self.diagnostics.append(
            Diagnostic(
                f"stepfunctions: {message} (step {node.name!r})", path, severity="warning", code="rounded"
            )
        )

    def task_events(self, node: StepNode, base: int) -> Events:
        extra = self.eff(node).retry.attempts - 1
        return base, base + extra * compute.RETRY_EVENTS

    # ------------------------------------------------------------------ structure

    def scope_sp(self, scope: Scope) -> SP:
        """The scope's sibling graph as an SP expression; with ``dag_mode: waits`` the edges
        it does not order are kept as waits (see :mod:`.waits`)."""
        deps = self.index.deps(scope)
        names = list(scope.steps)
        edges = [(d, n) for n, ds in deps.items() for d in ds]
        if self.settings.dag_mode == "barriers":
            return lower(names, edges)
        plan = lower_with_waits(names, edges)
        for step, producers in plan.waits.items():
            self.wait_for[id(scope.steps[step])] = producers
            self.published.update(id(scope.steps[u]) for u in producers)
        return plan.sp

    def emit_scope(self, scope: Scope, frame: Frame, nxt: str | None) -> tuple[str, Events]:
        return self.emit_sp(self.scope_sp(scope), scope, frame, nxt)

    def emit_sp(self, sp: SP, scope: Scope, frame: Frame, nxt: str | None) -> tuple[str, Events]:
        if isinstance(sp, str):
            return self.emit_waiting(scope, scope.steps[sp], frame, nxt)
        if isinstance(sp, Seq):
            units = [self.unit(frame, self._emitting(item, scope)) for item in sp.items]
            return self.link_sequence(self.fit_sequence(units, frame), frame, nxt)
        return self.emit_par(sp, scope, frame, nxt)

    def _emitting(self, sp: SP, scope: Scope) -> Callable[[Frame], tuple[str, Events]]:
        def emit(sub: Frame) -> tuple[str, Events]:
            return self.emit_sp(sp, scope, sub, None)

        return emit

    def emit_par(self, sp: Par, scope: Scope, frame: Frame, nxt: str | None) -> tuple[str, Events]:
        """Independent branches: a ``Parallel`` whose branches each end in a ``Pass`` that
        outputs only their new step entries, then ``Pass`` states that merge them into
        ``$.steps``."""
        first = _leaves(sp)[0]
        units = []
        for i, branch in enumerate(sp.branches):
            leaves = tuple(_leaves(branch))

            def emit(
                sub: Frame, branch: SP = branch, leaves: tuple[str, ...] = leaves, i: int = i
            ) -> tuple[str, Events]:
                end = self.names.new(f"Branch {i + 1} of {first} done", "branch-end")
                self.add(sub, end, _pick(leaves), None)
                start, ev = self.emit_sp(branch, scope, sub, end)
                return start, _add(ev, (2, 2))

            unit = self.unit(frame, emit)
            unit.leaves = leaves
            units.append(unit)
        return self.parallel(units, first, frame, nxt)

    def parallel(self, units: list[Unit], first: str, frame: Frame, nxt: str | None) -> tuple[str, Events]:
        """The ``Parallel`` state of branch units and its joins; branches over budget are
        grouped into child machines first (see :mod:`.split`)."""
        while len(units) > 1 and not self.fits(units, branch=True):
            groups = self.runs(units, branch=True)
            if len(groups) == len(units) and all(u.stub for u in units):
                break
            new: list[Unit] = []
            for group in groups:
                if len(group) == 1:
                    new.append(group[0] if group[0].stub else self.outline(group[0], frame))
                    continue
                leaves = tuple(n for u in group for n in u.leaves)
                sub = frame.child()
                end = self.names.new(f"Branches from {leaves[0]} done", "branch-end")
                self.add(sub, end, _pick(leaves), None)
                start, ev = self.parallel(group, leaves[0], sub, end)
                new.append(self.outline(Unit(start, sub, _add(ev, (2, 2)), leaves=leaves), frame))
            units = new
        if len(units) == 1 and units[0].frame.size > self.budget_bytes:
            units = [self.outline(units[0], frame)]
        join = self.names.new(f"Join after {first}", "join")
        par = self.names.new(f"Parallel from {first}", "parallel")
        # Entered, Started, Succeeded, Exited of the Parallel; each join Pass merges up to
        # JOIN_CHUNK branch results into $.steps (moto mis-reads "$[0]" paths, so branch
        # results are read with States.ArrayGetItem: two intrinsic calls per branch).
        events: Events = (4, 4)
        for u in units:
            events = _add(events, u.events)
        n = JOIN_CHUNK
        chunks = [list(range(k, min(k + n, len(units)))) for k in range(0, len(units), n)]
        join_next = nxt
        for c, chunk in reversed(list(enumerate(chunks))):
            merged = "$.steps"
            for i in chunk:
                merged = f"States.JsonMerge({merged}, States.ArrayGetItem($.joined, {i}), false)"
            keep = {"joined.$": "$.joined"} if c < len(chunks) - 1 else {}
            name = join if c == 0 else self.names.new(f"Join after {first} #{c + 1}", "join")
            self.add(
                frame,
                name,
                {"Type": "Pass", "Parameters": {**self.carry(frame, steps=merged), **keep}},
                join_next,
            )
            join_next = name
            events = _add(events, (2, 2))
        branches = [self.seal(u) for u in units]
        self.add(frame, par, {"Type": "Parallel", "Branches": branches, "ResultPath": "$.joined"}, join)
        return par, events

    def carry(self, frame: Frame, *, steps: str | None = None, **extra: Any) -> dict[str, Any]:
        """A payload template that keeps the frame's state keys (dropping scratch values)."""
        out: dict[str, Any] = {f"{k}.$": f"$.{k}" for k in frame.keys}
        if steps is not None:
            del out["steps.$"]
            out["steps.$"] = steps
        out.update(extra)
        return out

    # ------------------------------------------------------------------ waits

    def emit_waiting(self, scope: Scope, node: StepNode, frame: Frame, nxt: str | None) -> tuple[str, Events]:
        """A node with its waits before it (it starts only when every predecessor the SP
        skeleton does not order has ended) and, when others wait for it, its entry
        published to S3 after it."""
        events: Events = (0, 0)
        if id(node) in self.published:
            publish = self.names.new(f"{node.name} (publish)", "publish")
            self.add(frame, publish, self.publish_state(node, frame), nxt)
            nxt, events = publish, _add(events, PUBLISH_EVENTS)
        start, ev = self.emit_node(node, frame, nxt)
        events = _add(events, ev)
        for producer in reversed(self.wait_for.get(id(node), ())):
            merge = self.names.new(f"{node.name} (after {producer})", "wait-merge")
            wait = self.names.new(f"{node.name} (wait for {producer})", "wait")
            longer = self.names.new(f"{node.name} (wait longer for {producer})", "wait")
            self.add(frame, merge, {"Type": "Pass", "Parameters": self.carry(frame, steps=WAITED)}, start)
            slow = self.wait_state(scope.steps[producer], frame, slow=True)
            self.add(frame, longer, slow, merge)
            fast = self.wait_state(scope.steps[producer], frame)
            fast["Catch"] = [
                {"ErrorEquals": ["S3.NoSuchKeyException"], "ResultPath": "$.waited", "Next": longer}
            ]
            self.add(frame, wait, fast, merge)
            start, events = wait, _add(events, self.wait_events(scope.steps[producer]))
        return start, events

    def producer_seconds(self, producer: StepNode) -> tuple[float, float]:
        """How long a wait may wait for a producer: (one attempt, every attempt and pause),
        from the producer's timeout; a group or a step without a timeout: the documented
        defaults (a few seconds expected, 24 hours at worst)."""
        if not producer.is_task or self.eff(producer).timeout is None:
            return 2.0, 86_400.0
        from pipecast.runtime.retry import backoff_delay

        eff = self.eff(producer)
        startup = self.settings.startup_allowance_seconds if self.settings.compute != "callback" else 0
        r = eff.retry
        every = eff.timeout * r.attempts + sum(backoff_delay(r, n) for n in range(1, r.attempts)) + startup
        return float(eff.timeout), float(every)

    def wait_events(self, producer: StepNode) -> Events:
        """History events of one wait: its Task states (entered, scheduled, started,
        succeeded, exited; the slow state adds 5 when reached) and merge Pass, plus 3 per poll
        for as long as the producer may run (:meth:`producer_seconds`)."""
        expected, worst = self.producer_seconds(producer)

        def cost(seconds: float) -> int:
            polls = waits.polls_within(seconds)
            return 7 + 3 * max(polls, 2) + (5 if seconds > waits.POLL_FAST_WINDOW_S else 0)

        return cost(expected), cost(worst)

    def done_key(self, node: StepNode, frame: Frame) -> str:
        """``States.Format`` of the S3 key a node's state entry is published at (per loop
        item); ``.pipecast-done.json`` cannot clash with an output name."""
        return self.prefix_call(node, frame, with_bucket=False, suffix="/.pipecast-done.json")

    def publish_state(self, node: StepNode, frame: Frame) -> dict[str, Any]:
        return {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:s3:putObject",
            "Parameters": {
                "Bucket": self.settings.bucket,
                "Key.$": self.done_key(node, frame),
                "Body.$": f"States.JsonToString($.steps.{node.name})",
                "ContentType": "application/json",
            },
            "ResultPath": None,
            "Retry": [S3_HICCUP_RETRY],
        }

    def wait_state(self, producer: StepNode, frame: Frame, slow: bool = False) -> dict[str, Any]:
        """Poll for the producer's published entry: ``NoSuchKey`` until it has ended, retried
        with backoff (1 s, doubling, at most 30 s apart) for an hour, then (``slow``, the state
        the first one's ``Catch`` leads to) every 10 minutes; its entry lands in ``$.waited``."""
        poll: dict[str, Any] = {
            "ErrorEquals": ["S3.NoSuchKeyException"],
            "IntervalSeconds": waits.POLL_FIRST_S,
            "BackoffRate": waits.POLL_BACKOFF,
            "MaxDelaySeconds": waits.POLL_MAX_S,
            "MaxAttempts": waits.fast_polls() - 1,
        }
        if slow:
            poll = {
                "ErrorEquals": ["S3.NoSuchKeyException"],
                "IntervalSeconds": waits.POLL_SLOW_S,
                "BackoffRate": 1.0,
                "MaxAttempts": waits.POLL_MAX_ATTEMPTS,
            }
        return {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
            "Parameters": {"Bucket": self.settings.bucket, "Key.$": self.done_key(producer, frame)},
            "ResultSelector": {f"{producer.name}.$": "States.StringToJson($.Body)"},
            "ResultPath": "$.waited",
            "Retry": [poll, S3_HICCUP_RETRY],
        }

    # ------------------------------------------------------------------ steps

    def emit_node(self, node: StepNode, frame: Frame, nxt: str | None) -> tuple[str, Events]:
        step = node.step
        if node.is_task:
            if step.when is not None:
                return self.emit_when(node, frame, nxt, lambda sub: self.emit_task(node, sub, None), None)
            return self.emit_task(node, frame, nxt)
        if node.finally_node is not None:
            return self.emit_group_finally(node, node.finally_node, frame, nxt)
        return self.emit_group(node, frame, nxt)

    def emit_group(self, node: StepNode, frame: Frame, nxt: str | None) -> tuple[str, Events]:
        group = node.group
        if group.is_loop:
            return self.emit_loop(node, frame, nxt)
        if group.is_plain:
            # A sub-pipeline with a finally (SPEC §17; the others are inlined): its steps,
            # then a Pass with its entry (outputs), inside emit_group_finally's Parallel.
            return self.emit_branch(node, node.body, group.outputs, frame, "plain", nxt)
        other: Callable[[Frame], tuple[str, Events]] | None = None
        else_ = group.else_
        if else_ is not None and node.else_body is not None:
            other = lambda sub: self.emit_branch(node, node.else_body, else_.outputs, sub, "else")  # noqa: E731
        return self.emit_when(
            node,
            frame,
            nxt,
            lambda sub: self.emit_branch(node, node.body, group.outputs, sub, "then"),
            other,
        )

    def emit_group_finally(
        self, node: StepNode, fin: StepNode, frame: Frame, nxt: str | None
    ) -> tuple[str, Events]:
        """SPEC §18, error handling as for the pipeline's ``finally``
        (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html):
        the group's states run as the one branch of a ``Parallel``; on success the branch's
        ``$.steps`` is kept, ``$.group.status`` is ``succeeded`` and the finally task runs
        (not when the ``when`` group was skipped: a ``Choice`` on its ``skipped`` mark), then
        ``nxt``; the ``Catch`` (``States.ALL``) sets ``failed``, runs a copy of the finally
        task and ends in a ``Fail`` state, so the failure still fails the run (SPEC §10)."""
        g = node.name
        failed = self.names.new(f"{g} failed", "fail")
        frame.states[failed] = {
            "Type": "Fail",
            "Error": GROUP_FAILED_ERROR,
            "Cause": f"a step of group {g!r} failed; its finally step ran; see the execution history",
        }
        fin_ok, ev_ok = self.emit_task(fin, frame, nxt)
        fin_fail, ev_fail = self._finally_copy(fin, frame, failed)
        on_ok = self.names.new(f"{g} (status succeeded)", "status")
        # Entering it marks the group failed in the run record (record.py).
        on_fail = self.names.new(f"{g} (status failed)", "group-failed", g)
        events: Events = (4 + 2, 4 + 2)  # the Parallel; the status Pass
        ok_next = fin_ok
        if node.group.when is not None and node.group.else_ is None:
            ran = self.names.new(f"{g} (skipped?)", "choice")
            skip_to = nxt
            if skip_to is None:
                # The last state of its sequence: an exit the caller links (a Choice cannot be).
                skip_to = self.names.new(f"{g} (skipped, no finally)", "skip")
                self.add(frame, skip_to, {"Type": "Pass"}, None)
            skipped = {"Variable": f"$.steps.{g}.skipped", "IsPresent": True, "Next": skip_to}
            self.add(frame, ran, {"Type": "Choice", "Choices": [skipped], "Default": fin_ok}, None)
            ok_next = ran
            events = _add(events, (2, 2))
        group_status = "$.grp.state.steps"
        self.add(
            frame,
            on_ok,
            {
                "Type": "Pass",
                "Parameters": self.carry(frame, steps=group_status, group={"status": "succeeded"}),
            },
            ok_next,
        )
        self.add(
            frame,
            on_fail,
            {"Type": "Pass", "Parameters": self.carry(frame, group={"status": "failed"})},
            fin_fail,
        )
        par = self.names.new(f"{g} (with finally)", "parallel")
        body = self.unit(frame, lambda sub: self.emit_group(node, sub, None))
        if not self.fits([body]):
            body = self.outline(body, frame)
        self.add(
            frame,
            par,
            {
                "Type": "Parallel",
                "Branches": [self.seal(body)],
                "ResultSelector": {"state.$": "States.ArrayGetItem($, 0)"},
                "ResultPath": "$.grp",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.grp", "Next": on_fail}],
            },
            on_ok,
        )
        worst = max(ev_ok[1], ev_fail[1] + 2)
        return par, _add(events, (body.events[0] + ev_ok[0], body.events[1] + worst))

    def emit_task(self, node: StepNode, frame: Frame, nxt: str | None) -> tuple[str, Events]:
        if node.task.import_ is not None:
            return self.emit_import(node, frame, nxt)
        parts = self._inputs(node)[1]
        built = compute.COMPUTES[self.settings.compute](self, node, frame, nxt)
        if not parts:
            return built.start, built.events
        pre = self.names.new(f"{node.name} (format inputs)", "format", node.name)
        self.add(frame, pre, {"Type": "Pass", "Parameters": parts, "ResultPath": "$.fmt"}, built.start)
        return pre, _add(built.events, (2, 2))

    def emit_import(self, node: StepNode, frame: Frame, nxt: str | None) -> tuple[str, Events]:
        """An import step (SPEC §14): no code runs, a ``Pass`` puts the URI (a path, or
        ``States.Format`` of the params/loop values it holds) in the state as the ``artifact``
        output; steps download it like any artifact. Its metadata (SPEC §15) travels in the
        state beside the outputs (``$.steps.<step>.metadata.artifact``, in the run record)."""
        spec = node.task.import_
        assert spec is not None
        name = self.names.new(node.name, "task", node.name)
        value = node.resolved.import_uri
        assert value is not None
        if isinstance(value, RefNode):
            uri: tuple[str, Any] = ("artifact.$", ref_path(value.ref))
        elif isinstance(value, Text):
            segments = [p.ref if isinstance(p, RefNode) else p for p in value.parts]
            # Every value as itself: States.Format writes a string bare and a number as its
            # digits, which is what a URI holds (a loop item's type is unknown statically).
            uri = ("artifact.$", format_call(segments, lambda _ref: "str", self.pipeline.name))
        else:
            assert isinstance(value, Lit)
            uri = ("artifact", str(value.value))
        result: dict[str, Any] = {"outputs": dict([uri])}
        if spec.metadata:
            result["metadata"] = {"artifact": ordered(spec.metadata)}
        self.add(
            frame, name, {"Type": "Pass", "Parameters": result, "ResultPath": f"$.steps.{node.name}"}, nxt
        )
        return name, (2, 2)

    def emit_when(
        self,
        node: StepNode,
        frame: Frame,
        nxt: str | None,
        then: Callable[[Frame], tuple[str, Events]],
        other: Callable[[Frame], tuple[str, Events]] | None,
    ) -> tuple[str, Events]:
        """``Choice`` → then-branch or else-branch (or a skip ``Pass``) → ``nxt``."""
        choice = self.names.new(f"{node.name} (when)", "choice", node.name)
        units = [self.unit(frame, then)]
        if other is not None:
            units.append(self.unit(frame, other))
        # Only one branch runs: the size counts both, the history only the longer.
        while not self.fits(units, events=False) and not all(u.stub for u in units):
            big = max((u for u in units if not u.stub), key=lambda u: u.frame.size)
            units[units.index(big)] = self.outline(big, frame)
        then_start = self.place(units[0], frame, nxt)
        then_ev = units[0].events
        if other is not None:
            else_start = self.place(units[1], frame, nxt)
            else_ev = units[1].events
        else:
            else_start = self.names.new(f"{node.name} (skipped)", "skip", node.name)
            self.add(
                frame,
                else_start,
                {
                    "Type": "Pass",
                    "Result": {"outputs": {}, "skipped": True},
                    "ResultPath": f"$.steps.{node.name}",
                },
                nxt,
            )
            else_ev = (2, 2)
        expr = node.resolved.when
        assert expr is not None
        rule = to_rule(expr, self.pipeline.name)
        choices = [*self.metric_guards(node, frame, expr), {**rule, "Next": then_start}]
        self.add(frame, choice, {"Type": "Choice", "Choices": choices, "Default": else_start}, nxt)
        return choice, (2 + max(then_ev[0], else_ev[0]), 2 + max(then_ev[1], else_ev[1]))

    def metric_guards(self, node: StepNode, frame: Frame, expr: Any) -> list[dict[str, Any]]:
        """SPEC §15: a metric the ``Metrics`` output lacks fails the step's condition with a
        clear error. Choice rules run in order, so these come first: each missing metric leads
        to a ``Fail`` state of the step (``pipecast.MissingMetric``) instead of the service's
        ``States.Runtime`` on a missing path."""
        from pipecast.ir.condition import paths as condition_paths

        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for ref in condition_paths(expr):
            if ref.kind != "step" or ref.metric is None or ref.path in seen:
                continue
            seen.add(ref.path)
            fail = self.names.new(f"{node.name} (no metric {ref.metric})", "fail", node.name)
            frame.states[fail] = {
                "Type": "Fail",
                "Error": "pipecast.MissingMetric",
                "Cause": f"step {node.name!r}: its condition reads {ref.path}, but the Metrics output "
                f"{ref.key!r} of step {ref.name!r} has no number named {ref.metric!r}",
            }
            out.append({"Not": {"Variable": ref_path(ref), "IsPresent": True}, "Next": fail})
        return out

    def emit_branch(
        self,
        node: StepNode,
        body: Scope | None,
        outputs: dict[str, str],
        frame: Frame,
        label: str,
        nxt: str | None = None,
    ) -> tuple[str, Events]:
        """One branch of a ``when`` group (or a plain group's steps), ending in a ``Pass`` that
        sets the group's outputs."""
        assert body is not None
        done = self.names.new(f"{node.name} ({label} outputs)", "group-outputs", node.name)
        out_ev = self.set_outputs(frame, done, outputs, body, f"$.steps.{node.name}", nxt, node.name)
        start, ev = self.emit_scope(body, frame, done)
        return start, _add(ev, out_ev)

    def outputs_template(self, outputs: dict[str, str], body: Scope) -> dict[str, Any]:
        # No runtime renders outputs: ASL does (SPEC §22 mixed strings, see value_entry).
        resolved = {k: self.index.resolved.value(v, body, None) for k, v in outputs.items()}
        return template(outputs, resolved, self.type_of(body, None), self.pipeline.name, runtime=False)

    def set_outputs(
        self,
        frame: Frame,
        entry: str,
        outputs: dict[str, str],
        body: Scope,
        result_path: str,
        nxt: str | None,
        owner: str | None,
    ) -> Events:
        """States from ``entry`` writing ``{"outputs": {...}}`` at ``result_path``, then ``nxt``.

        An output reading a producer that may have been skipped is absent when that producer
        did not run (docs/semantics.md, "Skipped producers"): a ``Choice`` tests its paths with
        ``IsPresent`` and, when all are there, a ``Pass`` renders it and another merges it in
        (``States.JsonMerge``). A reference to a missing path would otherwise fail the
        execution with ``States.Runtime``
        (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html,
        https://docs.aws.amazon.com/step-functions/latest/dg/state-choice.html,
        https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html)."""
        resolved = {k: self.index.resolved.value(v, body, None) for k, v in outputs.items()}
        optional = {k: refs for k, v in resolved.items() if (refs := optional_refs(self.index, v))}
        required = {k: v for k, v in outputs.items() if k not in optional}
        tail = nxt
        events: Events = (2, 2)
        if optional and tail is None:
            # A Choice cannot end a branch: both ways meet in a Pass that does.
            tail = self.names.new(f"{entry}: done", "outputs", owner)
            self.add(frame, tail, {"Type": "Pass"}, None)
            events = _add(events, (2, 2))
        for key in reversed(list(optional)):
            paths = list(dict.fromkeys(ref_path(ref) for ref in optional[key]))
            rules = [{"Variable": path, "IsPresent": True} for path in paths]
            check = self.names.new(f"{entry}: {key} present?", "choice", owner)
            put = self.names.new(f"{entry}: {key}", "outputs", owner)
            merge = self.names.new(f"{entry}: merge {key}", "outputs", owner)
            one = self.outputs_template({key: outputs[key]}, body)
            self.add(
                frame, put, {"Type": "Pass", "Parameters": one, "ResultPath": f"{result_path}.add"}, merge
            )
            self.add(
                frame,
                merge,
                {
                    "Type": "Pass",
                    "Parameters": {
                        "outputs.$": f"States.JsonMerge({result_path}.outputs, {result_path}.add, false)"
                    },
                    "ResultPath": result_path,
                },
                tail,
            )
            rule = rules[0] if len(rules) == 1 else {"And": rules}
            self.add(
                frame, check, {"Type": "Choice", "Choices": [{**rule, "Next": put}], "Default": tail}, tail
            )
            tail = check
            events = _add(events, (6, 6))
        result = self.outputs_template(required, body)
        self.add(
            frame, entry, {"Type": "Pass", "Parameters": {"outputs": result}, "ResultPath": result_path}, tail
        )
        return events

    def emit_loop(self, node: StepNode, frame: Frame, nxt: str | None) -> tuple[str, Events]:
        """``for_each`` → ``Map``; each iteration ends in a ``Pass`` with its outputs, and the
        Map's ``ResultSelector`` turns the list of dicts into a dict of lists (item order)."""
        group = node.group
        assert node.body is not None
        after = nxt
        name = self.names.new(node.name, "map", node.name)
        body_frame = Frame(states={}, loops=(*frame.loops, node), keys=LOOP_KEYS)
        done = self.names.new(f"{node.name} (iteration outputs)", "iteration-outputs", node.name)
        per_item = self.outputs_template(group.outputs, node.body)
        collect = {o: f"$[*].{o}" for o in group.outputs}
        for o, (step, key) in self.conditional_outputs(node).items():
            # The step may be skipped in some items (its Pass leaves ``outputs: {}``): the
            # item hands on the whole outputs object and the indefinite path below keeps
            # the items where the step ran (docs/semantics.md), [] when none did.
            per_item.pop(f"{o}.$", None)
            per_item[f"{o}.$"] = f"$.steps.{step}.outputs"
            collect[o] = f"$.steps.{node.name}.outputs.{o}[*].{key}"
        self.add(
            body_frame,
            done,
            {"Type": "Pass", "Parameters": per_item} if per_item else {"Type": "Pass", "Result": {}},
            None,
        )
        start, body_ev = self.emit_scope(node.body, body_frame, done)
        body = Unit(start, body_frame, _add(body_ev, (2, 2)))
        if not self.fits([body]):
            # Each iteration runs the body as a child execution.
            body = self.outline(body, body_frame)
        body_ev = body.events

        for_each = node.resolved.for_each
        items_ref = for_each.ref if isinstance(for_each, RefNode) else None
        pre: str | None = None
        built = is_built(group.for_each)
        if items_ref is None:
            items_path = "$.items.list" if built else "$.items"
            pre = self.names.new(f"{node.name} (items)", "items", node.name)
        else:
            items_path = ref_path(items_ref)
        width, known = self.loop_width(node)
        mode = self.map_mode(node, width, known)
        selector = {
            "params.$": "$.params",
            "pipeline.$": "$.pipeline",
            "steps": {f"{s}.$": f"$.steps.{s}" for s in self.outer_steps(node)},
            "loop": {
                **{f"{g.group.as_}.$": f"$.loop.{g.group.as_}" for g in frame.loops},
                f"{group.as_}.$": "$$.Map.Item.Value",
            },
            "index": {
                **{f"{g.name}.$": f"$.index.{g.name}" for g in frame.loops},
                f"{node.name}.$": "$$.Map.Item.Index",
            },
        }
        processor: dict[str, Any] = {"ProcessorConfig": {"Mode": "INLINE"}, **self.seal(body)}
        if mode == "DISTRIBUTED":
            processor["ProcessorConfig"] = {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
        state: dict[str, Any] = {
            "Type": "Map",
            "ItemsPath": items_path,
            "ItemSelector": selector,
            "ItemProcessor": processor,
            "ResultSelector": {"outputs": {f"{o}.$": f"$[*].{o}" for o in group.outputs}},
            "ResultPath": f"$.steps.{node.name}",
        }
        if group.parallelism is not None:
            state["MaxConcurrency"] = group.parallelism
        collected = collect != {o: f"$[*].{o}" for o in group.outputs}
        if collected:
            # A second pass picks the value out of each item's outputs object: a wildcard
            # right before the last field always yields a list (moto, like AWS, unwraps a
            # single match of a deeper path such as ``$[*].o.k``).
            pick = self.names.new(f"{node.name} (collect)", "collect", node.name)
            fixed = {
                f"{o}.$": path if path.startswith("$.steps.") else f"$.steps.{node.name}.outputs.{o}"
                for o, path in collect.items()
            }
            self.add(
                frame,
                pick,
                {"Type": "Pass", "Parameters": {"outputs": fixed}, "ResultPath": f"$.steps.{node.name}"},
                nxt,
            )
            nxt = pick
        self.add(frame, name, state, nxt)
        inline = (4 + width * (2 + body_ev[0]), 4 + width * (2 + body_ev[1]))
        self.maps.append(MapInfo(node.name, width, known, inline[0]))
        events = (8, 8) if mode == "DISTRIBUTED" else inline
        if collected:
            events = _add(events, (2, 2))  # the collect Pass
        if pre is not None and built:
            # SPEC §19: a Pass evaluates each item (paths, States.Format), a second one makes
            # them a list with States.Array (an ASL array of payload templates is not evaluated).
            items = self.names.new(f"{node.name} (item list)", "items", node.name)
            fields = self.loop_item_fields(node)
            array = "States.Array(" + ", ".join(f"$.items.i{k}" for k in range(len(fields))) + ")"
            self.add(frame, pre, {"Type": "Pass", "Parameters": fields, "ResultPath": "$.items"}, items)
            self.add(
                frame, items, {"Type": "Pass", "Parameters": {"list.$": array}, "ResultPath": "$.items"}, name
            )
            return pre, _add(events, (4, 4))
        if pre is not None:
            self.add(
                frame, pre, {"Type": "Pass", "Result": ordered(group.for_each), "ResultPath": "$.items"}, name
            )
            return pre, _add(events, (2, 2))
        if (
            items_ref is not None
            and items_ref.kind == "step"
            and may_be_missing(self.index, items_ref.name, items_ref.key)
        ):
            # SPEC §22: a for_each over the output of a skipped step is skipped with it (a
            # Map over a missing ItemsPath fails with States.Runtime).
            check = self.names.new(f"{node.name} (items present?)", "choice", node.name)
            skip = self.names.new(f"{node.name} (skipped)", "skip", node.name)
            skipped = {
                "Type": "Pass",
                "Result": {"outputs": {}, "skipped": True},
                "ResultPath": f"$.steps.{node.name}",
            }
            self.add(frame, skip, skipped, after)
            rule = {"Variable": items_path, "IsPresent": True, "Next": name}
            self.add(frame, check, {"Type": "Choice", "Choices": [rule], "Default": skip}, None)
            return check, _add(events, (4, 4))
        return name, events

    def loop_item_fields(self, node: StepNode) -> dict[str, Any]:
        """The items of a ``for_each`` list literal holding references as payload-template
        fields ``i0``, ``i1``, ...: a reference as its path, a mixed string of strings as
        ``States.Format``, a mapping as an object of such fields in stored key order.
        (``check_target`` refuses what ASL cannot build: a list holding references inside an
        item, a non-string value inside a mixed string.)"""
        type_of = self.type_of(node.scope, node.name)

        def entry(key: str, value: Any, resolved: Value) -> tuple[str, Any]:
            if isinstance(value, dict) and is_built(value):
                return key, KeepOrder(entry(k, v, part(resolved, k)) for k, v in value.items())
            return value_entry(key, value, resolved, type_of, self.pipeline.name)

        items = node.resolved.for_each
        assert isinstance(node.group.for_each, list) and items is not None
        return dict(entry(f"i{k}", item, part(items, k)) for k, item in enumerate(node.group.for_each))

    def conditional_outputs(self, node: StepNode) -> dict[str, tuple[str, str]]:
        """Group outputs of a loop that read a body task with a ``when``: output → (step, key)."""
        assert node.body is not None
        found: dict[str, tuple[str, str]] = {}
        for o, value in node.resolved.outputs.items():
            ref = value.ref if isinstance(value, StepOutput) else None
            inner = node.body.steps.get(ref.name) if ref is not None else None
            if ref is not None and inner is not None and inner.is_task and inner.task.when is not None:
                found[o] = (ref.name, ref.key or "")
        return found

    def loop_width(self, node: StepNode) -> tuple[int, bool]:
        """The fan-out width when it is known at compile time (a literal list, or a parameter's
        default), else the ``assumed`` width used for estimates."""
        value = node.group.for_each
        if isinstance(value, list):
            return len(value), True
        for_each = node.resolved.for_each
        ref = for_each.ref if isinstance(for_each, ParamRef) else None
        if ref is not None:
            param = self.pipeline.params.get(ref.name)
            if param is not None and param.has_default and isinstance(param.default, list):
                return len(param.default), True
        self.assumed_widths[node.name] = ASSUMED_WIDTH
        return ASSUMED_WIDTH, False

    def map_mode(self, node: StepNode, width: int, known: bool) -> str:
        s = self.settings
        if s.map_mode == "distributed" or node.name in self.distributed:
            return "DISTRIBUTED"
        if s.map_mode == "auto" and known and width > s.distributed_map_threshold:
            return "DISTRIBUTED"
        return "INLINE"

    def outer_steps(self, node: StepNode) -> list[str]:
        """Step entries from outside a loop body that its steps read (copied into each item)."""
        assert node.body is not None
        inside = {n.name for n in self.index.walk(node.body)}
        found: set[str] = set()
        for inner in self.index.walk(node.body):
            for _path, ref in self.index.input_refs(inner):
                if ref.kind == "step" and ref.name not in inside:
                    found.add(ref.name)
        for _scope, _name, _path, ref in self.index.group_output_refs(node):
            if ref.kind == "step" and ref.name not in inside:
                found.add(ref.name)
        return sorted(found)

    # ------------------------------------------------------------------ whole machine

    def build(self) -> tuple[dict[str, Any], Events]:
        """The complete state machine definition and its history-event estimate."""
        p = self.pipeline
        states: dict[str, dict[str, Any]] = {}
        root = Frame(states, keys=ROOT_KEYS)
        events: Events = (2, 2)  # ExecutionStarted, ExecutionSucceeded/Failed

        outputs = self.names.new("Pipeline outputs", "outputs")
        resolved = (self.index.resolved.value(v, self.index.root, None) for v in p.outputs.values())
        if any(optional_refs(self.index, v) for v in resolved):
            # Some output may read a skipped producer: collected at $.pipeline_outputs first.
            collect = self.names.new("Collect pipeline outputs", "outputs")
            events = _add(
                events,
                self.set_outputs(
                    root, collect, p.outputs, self.index.root, "$.pipeline_outputs", outputs, None
                ),
            )
            final: dict[str, Any] = {"outputs.$": "$.pipeline_outputs.outputs"}
        else:
            collect = outputs
            final = {"outputs": self.outputs_template(p.outputs, self.index.root)}
        self.add(
            root,
            outputs,
            {
                "Type": "Pass",
                "Parameters": {**final, "params.$": "$.params", "run_id.$": "$.pipeline.run_id"},
            },
            None,
        )
        events = _add(events, (2, 2))
        fin = self.index.finally_node
        if fin is None:
            body = self.body_unit(root)
            body_start = self.place(body, root, collect)
            events = _add(events, body.events)
        else:
            body_start, ev = self.emit_with_finally(root, fin, collect)
            events = _add(events, ev)
        first = self.emit_params(root, body_start)
        events = _add(events, (6, 6))
        definition = {
            "Comment": f"pipecast pipeline {p.name}" + (f": {p.description}" if p.description else ""),
            "StartAt": first,
            "States": states,
        }
        return definition, events

    def body_unit(self, root: Frame) -> Unit:
        """The pipeline's steps as one unit, in a child machine when over budget."""
        body = self.unit(root, self.emit_root)
        return body if self.fits([body]) else self.outline(body, root)

    def emit_root(self, frame: Frame) -> tuple[str, Events]:
        """The root scope; a long top-level sequence drops, every :data:`PRUNE_EVERY` items,
        the ``$.steps`` entries no later state reads, so the state does not grow with the
        pipeline (256 KiB, and ``States.DataLimitExceeded`` skips every Catch:
        https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html)."""
        sp = self.scope_sp(self.index.root)
        if not isinstance(sp, Seq) or len(sp.items) <= PRUNE_EVERY:
            return self.emit_sp(sp, self.index.root, frame, None)
        from .state_size import node_bytes

        items = list(sp.items)
        leaves = [_leaves(item) for item in items]
        # Entries read after item i: by later items (anything inside them), the pipeline
        # outputs and the finally step.
        tail = {
            r.ref.name
            for v in self.index.resolved.outputs.values()
            for r in refs_of(v)
            if r.ref.kind == "step"
        }
        if self.index.finally_node is not None:
            tail |= {r.name for _p, r in self.index.input_refs(self.index.finally_node) if r.kind == "step"}
        reads_after: list[set[str]] = [set() for _ in items]
        later = set(tail)
        for i in range(len(items) - 1, -1, -1):
            reads_after[i] = set(later)
            for name in leaves[i]:
                later |= self._reads(self.index.root.steps[name])
        units: list[Unit] = []
        made: list[str] = []
        peak = window = 0
        for i, item in enumerate(items):
            units.append(self.unit(frame, self._emitting(item, self.index.root)))
            made += leaves[i]
            window += sum(node_bytes(self, self.index.root.steps[n]) for n in leaves[i])
            if (i + 1) % PRUNE_EVERY or i == len(items) - 1:
                continue
            live = sorted(set(made) & reads_after[i])
            peak = max(peak, window)

            def prune(sub: Frame, live: list[str] = live, after: str = leaves[i][-1]) -> tuple[str, Events]:
                name = self.names.new(f"Drop entries after {after}", "prune")
                keep = {f"{k}.$": f"$.{k}" for k in sub.keys if k != "steps"}
                self.add(
                    sub,
                    name,
                    {
                        "Type": "Pass",
                        "Parameters": {**keep, "steps": {f"{n}.$": f"$.steps.{n}" for n in live}},
                    },
                    None,
                )
                return name, (2, 2)

            units.append(self.unit(frame, prune))
            window = sum(node_bytes(self, self.index.root.steps[n]) for n in live)
        self.root_state_peak = max(peak, window)
        return self.link_sequence(self.fit_sequence(units, frame), frame, None)

    def _reads(self, node: StepNode) -> set[str]:
        """Step entries read by a node or anything inside it."""
        out: set[str] = set()
        for inner in [
            node,
            *(self.index.walk(node.body) if node.body else []),
            *(self.index.walk(node.else_body) if node.else_body else []),
        ]:
            out |= {r.name for _p, r in self.index.input_refs(inner) if r.kind == "step"}
            if inner.is_group and inner.body is not None:
                out |= {r.name for _s, _n, _p, r in self.index.group_output_refs(inner) if r.kind == "step"}
        return out

    def emit_with_finally(self, root: Frame, fin: StepNode, outputs: str) -> tuple[str, Events]:
        """SPEC §10: the body runs in a one-branch ``Parallel`` whose ``Catch`` leads to the
        finally step and then ``Fail``; on success the finally step runs, then the outputs."""
        failed = self.names.new("Pipeline failed", "fail")
        root.states[failed] = {
            "Type": "Fail",
            "Error": FAILED_ERROR,
            "Cause": "a step failed; the finally step ran; see the execution history for the failed step",
        }
        fin_ok, ev_ok = self.emit_task(fin, root, outputs)
        fin_fail, ev_fail = self._finally_copy(fin, root, failed)
        on_ok = self.names.new("Status succeeded", "status")
        on_fail = self.names.new("Status failed", "status")
        status = {"name": self.pipeline.name, "run_id.$": "$.pipeline.run_id"}
        self.add(
            root,
            on_ok,
            {
                "Type": "Pass",
                "Parameters": {
                    "params.$": "$.params",
                    "steps.$": "$.main.state.steps",
                    "pipeline": {**status, "status": "succeeded"},
                },
            },
            fin_ok,
        )
        self.add(
            root,
            on_fail,
            {
                "Type": "Pass",
                "Parameters": {
                    "params.$": "$.params",
                    "steps": {},
                    "error.$": "$.error",
                    "pipeline": {**status, "status": "failed"},
                },
            },
            fin_fail,
        )
        main = self.names.new("Main", "main")
        body = self.body_unit(root)
        ev = body.events
        self.add(
            root,
            main,
            {
                "Type": "Parallel",
                "Branches": [self.seal(body)],
                "ResultSelector": {"state.$": "States.ArrayGetItem($, 0)"},
                "ResultPath": "$.main",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": on_fail}],
            },
            on_ok,
        )
        worst_tail = max(ev_ok[1], ev_fail[1])
        return main, (4 + ev[0] + 2 + ev_ok[0], 4 + ev[1] + 2 + worst_tail)

    def _finally_copy(self, fin: StepNode, root: Frame, nxt: str) -> tuple[str, Events]:
        """A second copy of a finally task (its states named ``... (after failure)``)."""
        # The finally step appears twice (after success, after failure) so each path ends
        # in the right terminal state without a second Choice.
        saved = self.names.new
        suffix = " (after failure)"

        def renamed(wanted: str, kind: str, step: str | None = None) -> str:
            return saved(wanted + suffix, kind, step)

        self.names.new = renamed  # type: ignore[method-assign]
        try:
            return self.emit_task(fin, root, nxt)
        finally:
            self.names.new = saved  # type: ignore[method-assign]

    def emit_params(self, root: Frame, nxt: str) -> str:
        """Defaults merged with the execution input, then checks of required/typed params."""
        p = self.pipeline
        defaults = {k: v.default for k, v in p.params.items() if v.has_default}
        init = self.names.new("Parameter defaults", "init")
        start = self.names.new("Start", "init")
        check_next = nxt
        checks: list[dict[str, Any]] = []
        for pname, param in p.params.items():
            var = f"$.params.{pname}"
            type_test = {
                "str": "IsString",
                "int": "IsNumeric",
                "float": "IsNumeric",
                "bool": "IsBoolean",
                # SPEC §14: an artifact parameter's value is a URI (an s3:// one on this target).
                **dict.fromkeys(("Dataset", "Model", "Metrics", "Artifact"), "IsString"),
            }.get(param.type)
            if not param.has_default:
                fail = self.names.new(f"Missing parameter {pname}", "fail")
                root.states[fail] = {
                    "Type": "Fail",
                    "Error": "pipecast.MissingParameter",
                    "Cause": f"parameter {pname!r} ({param.type}) has no default: pass it in the execution input",
                }
                checks.append({"Not": {"Variable": var, "IsPresent": True}, "Next": fail})
            if type_test is not None:
                fail = self.names.new(f"Invalid parameter {pname}", "fail")
                root.states[fail] = {
                    "Type": "Fail",
                    "Error": "pipecast.InvalidParameter",
                    "Cause": f"parameter {pname!r} must be a {param.type}",
                }
                checks.append(
                    {
                        "And": [
                            {"Variable": var, "IsPresent": True},
                            {"Not": {"Variable": var, type_test: True}},
                        ],
                        "Next": fail,
                    }
                )
        if checks:
            check = self.names.new("Check parameters", "check")
            root.states[check] = {"Type": "Choice", "Choices": checks, "Default": nxt}
            check_next = check
        merged = "States.JsonMerge($, $$.Execution.Input, false)"
        self.add(
            root,
            start,
            {
                "Type": "Pass",
                "Parameters": {
                    "params.$": merged,
                    "pipeline": {"name": p.name, "run_id.$": RUN_ID},
                    "steps": {},
                },
            },
            check_next,
        )
        if not any(reorders(v) for v in defaults.values()):
            # A Pass Result is never read as a payload template, so any default is safe here.
            self.add(root, init, {"Type": "Pass", "Result": defaults}, start)
            return init
        # Definitions are written with sorted keys; a default holding a mapping whose keys are
        # in another order travels as JSON text and is parsed by a second Pass, so it keeps its
        # stored order (mixed strings render keys in that order, SPEC §22). (A literal inside
        # States.StringToJson would need escaped braces, which moto does not unescape.)
        plain = {k: v for k, v in defaults.items() if not reorders(v)}
        texts = {
            k: json.dumps(v, separators=(",", ":"), ensure_ascii=False)
            for k, v in defaults.items()
            if reorders(v)
        }
        ordered = self.names.new("Parameter defaults (key order)", "init")
        entries: dict[str, Any] = {f"{k}.$": f"$.plain.{k}" for k in plain}
        entries.update({f"{k}.$": f"States.StringToJson($.text.{k})" for k in texts})
        self.add(root, init, {"Type": "Pass", "Result": {"plain": plain, "text": texts}}, ordered)
        self.add(root, ordered, {"Type": "Pass", "Parameters": entries}, start)
        return init


ASSUMED_WIDTH = 10
# A long top-level sequence drops unread $.steps entries after every PRUNE_EVERY items.
PRUNE_EVERY = 25
# A field may hold at most 10 intrinsic function calls, so a join Pass merges 5 branches
# (JsonMerge + ArrayGetItem each): https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html
JOIN_CHUNK = 5
PUBLISH_EVENTS: Events = (5, 5)
# Throttling or a 5xx from S3 must not fail the pipeline (every S3 helper state has it).
S3_HICCUP_RETRY = compute.S3_HICCUP_RETRY
WAITED = "States.JsonMerge($.steps, $.waited, false)"
# The run id is the execution name, read from the execution ARN
# (arn:<partition>:states:<region>:<account>:execution:<state machine>:<name>) because moto
# leaves $$.Execution.Name empty; on AWS both are the same.
RUN_ID = "States.ArrayGetItem(States.StringSplit($$.Execution.Id, ':'), 7)"


def _add(a: Events, b: Events) -> Events:
    return a[0] + b[0], a[1] + b[1]


def _pick(leaves: tuple[str, ...]) -> dict[str, Any]:
    """A branch's last state: only the step entries the branch added."""
    return {"Type": "Pass", "Parameters": {f"{n}.$": f"$.steps.{n}" for n in leaves}}


def _leaves(sp: SP) -> list[str]:
    out: list[str] = []
    stack: list[SP] = [sp]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, Seq):
            stack.extend(reversed(item.items))
        else:
            stack.extend(reversed(item.branches))
    return out


__all__ = ["Emitter", "Frame"]
