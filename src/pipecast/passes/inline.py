"""Inline plain groups (lowered sub-pipelines, SPEC §17) for targets without nested graphs.

A sub-pipeline ``uses:`` step becomes a *plain* group: a group with neither ``for_each`` nor
``when`` whose inner steps have dotted names (``prep.clean``). A plain group without a
``finally`` means exactly "these steps, in this scope": its steps can move into the
enclosing steps map unchanged (their names are unique pipeline-wide already), as long as

* every reference to one of the group's outputs (``steps.prep.outputs.table``) reads what
  that output is bound to instead (``steps.prep.clean.outputs.table``), in inputs,
  conditions, ``for_each`` lists, group/pipeline outputs and ``finally`` steps;
* ``after: [prep]`` waits for each of the group's (moved) steps instead;
* the group's own ``after`` is added to each moved step.

The run record still has the group's entry (``prep``, ``prep[1]``): a target's record
reader adds it back from its inner steps with
:func:`pipecast.verify.records.restore_inlined_groups`.

A plain group with a ``finally`` is kept (the finally must run after the group's steps,
whatever happened), and so is every other group: targets compile those natively.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from pipecast.ir import condition as cond
from pipecast.ir.models import GroupStep, Pipeline
from pipecast.ir.refs import Ref
from pipecast.passes.parse import parse_condition, parse_template
from pipecast.passes.uses import template_text


@dataclass
class _Plan:
    #: group name → output name → what it is bound to (template text, already rewritten)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: group name → the names of its steps (what ``after: [group]`` waits for instead)
    members: dict[str, list[str]] = field(default_factory=dict)


def inline_plain_groups(pipeline: Pipeline) -> Pipeline:
    """The same pipeline with every plain group without ``finally`` inlined, and every dotted
    step name replaced by its :func:`flat_names` name (``pipeline`` itself when it has
    neither)."""
    names = flat_names(pipeline)
    if not names:
        return pipeline
    data = pipeline.to_data()
    plan = _Plan()
    data["steps"] = _flatten(data["steps"], plan)
    rewrite = _Rewrite(plan, names)
    data["steps"] = rewrite.steps(data["steps"])
    if data.get("finally"):
        data["finally"] = rewrite.task(data["finally"])
    if "outputs" in data:
        data["outputs"] = {k: rewrite.value(v) for k, v in data["outputs"].items()}
    return Pipeline.model_validate(data)


def flat_names(pipeline: Pipeline) -> dict[str, str]:
    """Dotted step name (``prep.clean``) → the plain name compile gives it (``prep__clean``).

    Target names (Airflow task ids, Azure ML job names, JSONPath keys) cannot hold a dot,
    and a target's record reader maps the names back (:func:`restore_names`). A name that
    is taken already, or too long for SPEC §3's pattern, gets a short hash suffix.
    """
    taken: set[str] = set()
    dotted: list[str] = []

    def walk(steps: dict[str, Any]) -> None:
        for name, step in steps.items():
            if "." in name:
                dotted.append(name)
            else:
                taken.add(name)
            if not isinstance(step, GroupStep):  # (a pydantic getattr miss costs an exception)
                continue
            if step.steps:
                walk(step.steps)
            if step.else_ is not None:
                walk(step.else_.steps)

    walk(pipeline.steps)
    out: dict[str, str] = {}
    for name in dotted:
        flat = name.replace(".", "__")
        if flat in taken or len(flat) > 63:
            digest = hashlib.sha1(name.encode()).hexdigest()[:8]
            flat = f"{flat[:54]}_{digest}"
        taken.add(flat)
        out[name] = flat
    return out


def _inlinable(step: dict[str, Any]) -> bool:
    plain = "steps" in step and "for_each" not in step and step.get("when") is None
    plain = plain and not step.get("finally")
    return plain and all(_one_ref(v) for v in (step.get("outputs") or {}).values())


def _one_ref(value: Any) -> bool:
    """The value is exactly one reference (what a group output normally is)."""
    if not isinstance(value, str) or "{{" not in value:
        return False
    segments = parse_template(value.strip())
    return len(segments) == 1 and isinstance(segments[0], Ref)


def _flatten(steps: dict[str, Any], plan: _Plan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, step in steps.items():
        if "steps" not in step:
            out[name] = step
            continue
        step = dict(step)
        step["steps"] = _flatten(step["steps"], plan)
        if step.get("else"):
            step["else"] = {**step["else"], "steps": _flatten(step["else"]["steps"], plan)}
        if not _inlinable(step):
            out[name] = step
            continue
        plan.outputs[name] = dict(step.get("outputs") or {})
        plan.members[name] = list(step["steps"])
        waits = list(step.get("after") or [])
        for inner_name, inner in step["steps"].items():
            if waits:
                inner = {**inner, "after": [*(inner.get("after") or []), *waits]}
            out[inner_name] = inner
    return out


class _Rewrite:
    """Replaces references to inlined groups' outputs and ``after`` entries naming them."""

    def __init__(self, plan: _Plan, names: dict[str, str]) -> None:
        self.plan = plan
        self.names = names

    def name(self, n: str) -> str:
        return self.names.get(n, n)

    def ref(self, ref: Ref) -> Ref | None:
        """The reference after inlining and renaming (``None``: unchanged)."""
        new = self.bound(ref) or ref
        if new.kind == "step" and new.name in self.names:
            new = Ref(new.kind, self.names[new.name], new.key, new.metric)
        return None if new is ref else new

    def members(self, name: str) -> list[str]:
        if name not in self.plan.members:
            return [name]
        return [m for inner in self.plan.members[name] for m in self.members(inner)]

    def bound(self, ref: Ref) -> Ref | None:
        """What a reference to an inlined group's output reads instead (followed through
        nested inlined groups); ``None`` for any other reference."""
        seen = 0
        while ref.kind == "step" and ref.name in self.plan.outputs and seen < 1000:
            text = self.plan.outputs[ref.name].get(ref.key or "")
            segments = parse_template(text.strip()) if isinstance(text, str) else []
            if len(segments) != 1 or not isinstance(segments[0], Ref):
                return None
            inner = segments[0]
            ref = Ref(inner.kind, inner.name, inner.key, ref.metric or inner.metric)
            seen += 1
        return ref if seen else None

    def steps(self, steps: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for name, step in steps.items():
            if "steps" not in step:
                out[self.name(name)] = self.task(step)
                continue
            g = dict(step)
            g["steps"] = self.steps(g["steps"])
            if g.get("else"):
                g["else"] = {**g["else"], "steps": self.steps(g["else"]["steps"])}
                if "outputs" in g["else"]:
                    g["else"]["outputs"] = {k: self.value(v) for k, v in g["else"]["outputs"].items()}
            if "for_each" in g:
                g["for_each"] = self.value(g["for_each"])
            if g.get("when") is not None:
                g["when"] = self.condition(g["when"])
            if "outputs" in g:
                g["outputs"] = {k: self.value(v) for k, v in g["outputs"].items()}
            if "after" in g:
                g["after"] = self.after(g["after"])
            if g.get("finally"):
                g["finally"] = self.task(g["finally"])
            if "subpipeline" in g and g["subpipeline"].get("bindings"):
                sp = dict(g["subpipeline"])
                sp["bindings"] = {k: self.value(v) for k, v in sp["bindings"].items()}
                g["subpipeline"] = sp
            out[self.name(name)] = g
        return out

    def after(self, names: list[str]) -> list[str]:
        out: list[str] = []
        for n in names:
            for m in map(self.name, self.members(n)):
                if m not in out:
                    out.append(m)
        return out

    def task(self, t: dict[str, Any]) -> dict[str, Any]:
        t = dict(t)
        if "inputs" in t:
            t["inputs"] = {k: self.value(v) for k, v in t["inputs"].items()}
        if "import" in t and "uri" in t["import"]:
            t["import"] = {**t["import"], "uri": self.value(t["import"]["uri"])}
        if t.get("when") is not None:
            t["when"] = self.condition(t["when"])
        if "after" in t:
            t["after"] = self.after(t["after"])
        return t

    def value(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if not isinstance(value, str) or "{{" not in value:
            return value
        segments = parse_template(value)
        changed = False
        out: list[str | Ref] = []
        for seg in segments:
            new = self.ref(seg) if isinstance(seg, Ref) else None
            changed = changed or new is not None
            out.append(new if new is not None else seg)
        return template_text(out) if changed else value

    def condition(self, text: str) -> str:
        expr = parse_condition(text)
        changed = False

        def walk(e: cond.Expr) -> cond.Expr:
            nonlocal changed
            if isinstance(e, cond.Path):
                new = self.ref(e.ref)
                if new is None:
                    return e
                changed = True
                return cond.Path(new)
            if isinstance(e, cond.Not):
                return cond.Not(walk(e.operand))
            if isinstance(e, cond.BoolOp):
                return cond.BoolOp(e.op, tuple(walk(o) for o in e.operands))
            if isinstance(e, cond.Compare):
                return cond.Compare(e.op, walk(e.left), walk(e.right))
            if isinstance(e, cond.In):
                return cond.In(walk(e.operand), e.options)
            return e

        new = walk(expr)
        return cond.to_text(new) if changed else text
