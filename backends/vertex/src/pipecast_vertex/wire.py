"""How pipecast values travel between KFP tasks ("on the wire").

KFP carries parameter values as ``google.protobuf.Value``, where every number is a double:
``[1, 3.0]`` cannot survive as a ``LIST``. So a list or dict that a step produces travels as
JSON text (``STRING``), and the runtime decodes it by its declared type, exactly (ints stay
ints, floats stay floats, nested too). The rules:

* step outputs of type ``list``/``dict``/``list[T]``/``int``: JSON text (``STRING``): a double
  holds an int exactly only up to 2**53 (SPEC §22 "Numbers are exact"); conditions cast the
  text with ``int(...)`` (CEL's string-to-int conversion);
* ``for_each`` group outputs: collected by KFP into a ``LIST`` of per-iteration values, each
  encoded as its step output is;
* ``when``/``else`` group outputs: as the step output they select;
* pipeline outputs of type ``list``/``dict``/``list[T]``: native (``LIST``/``STRUCT``, as kfp
  declares a ``dict`` pipeline output), read from a companion output ``<output>--native`` the
  producing step writes alongside its JSON text (forwarded through ``when``/``else`` groups);
  not when a producer evaluates its own ``when`` (:func:`self_gated`): it may publish the
  skipped marker, which a typed view cannot hold, so that output stays JSON text;
* pipeline parameters of type ``int``/``list``/``dict``/``list[T]``: JSON text (``STRING``;
  the console takes the JSON, deploy and ``pipecast verify`` encode the values); a loop over
  such a parameter iterates the ``--items`` companion that a task ``<loop>--items`` (the
  runtime's ``identity``) writes beside the loop;
* loop items: a ``parameterIterator`` needs a real list, so a loop over a step's list output
  iterates a companion output ``<output>--items`` (a native ``LIST`` the runtime writes
  alongside); compound items (dicts, lists) of a step output, a collected output or a literal
  list or a pipeline parameter are JSON text. Items of an untyped list
  (``any``) are JSON text when they are dicts, lists or strings that start like JSON, and
  native scalars otherwise (conditions compare them), so an integral float item of an untyped
  list (``[1.0, "a"]``) still arrives as ``1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pipecast.ir import condition as cond
from pipecast.ir.refs import Ref
from pipecast.passes.analysis import ANY, PipelineIndex, StepNode
from pipecast.passes.resolve import MetricValue, ParamRef, StepOutput, refs_of
from pipecast.runtime.conventions.kfp import (
    BOOL_SUFFIX,
    DOUBLE_SUFFIX,
    ITEMS_SUFFIX,
    METRIC_INFIX,
    NATIVE_SUFFIX,
    compound,
    textual,
    wire_params,
)

if TYPE_CHECKING:
    from pipecast.ir.models import Pipeline

__all__ = [
    "BOOL_SUFFIX",
    "DOUBLE_SUFFIX",
    "ITEMS_SUFFIX",
    "METRIC_INFIX",
    "NATIVE_SUFFIX",
    "compound",
    "doubled_outputs",
    "item_is_json",
    "iterated_outputs",
    "metric_key",
    "metric_outputs",
    "native_outputs",
    "self_gated",
    "wire_values",
]


def wire_values(pipeline: Pipeline, values: Mapping[str, Any]) -> dict[str, Any]:
    """Parameter values for a run or schedule request, as the spec declares them (ints,
    lists and dicts as JSON text)."""
    return wire_params({k: p.type for k, p in pipeline.params.items()}, values)


def metric_key(output: str, metric: str) -> str:
    """The float output that holds one metric of a ``Metrics`` output (SPEC §15). One ``-``
    each side: kfp.local's condition evaluator finds a value by splitting its channel name at
    ``--`` (``pipelinechannel--<task>--<output>``), and no output name holds a ``-``."""
    return f"{output}{METRIC_INFIX}{metric}"


def metric_outputs(index: PipelineIndex) -> dict[tuple[str, str], list[str]]:
    """(step, Metrics output) → the metrics the pipeline reads from it (conditions, inputs,
    group and pipeline outputs): the step's runtime publishes each as a float output."""
    found: dict[tuple[str, str], set[str]] = {}

    def add(ref: Ref) -> None:
        if ref.kind == "step" and ref.metric is not None:
            for name, key in _metric_producers(index, ref.name, ref.key or ""):
                found.setdefault((name, key), set()).add(ref.metric)

    nodes = list(index.walk())
    if index.finally_node is not None:
        nodes.append(index.finally_node)
    for node in nodes:
        for _, ref in index.input_refs(node):
            add(ref)
        if node.is_group:
            for _, _, _, ref in index.group_output_refs(node):
                add(ref)
    for value in index.resolved.outputs.values():
        for n in refs_of(value):
            add(n.ref)
    return {k: sorted(v) for k, v in sorted(found.items())}


def doubled_outputs(index: PipelineIndex) -> set[tuple[str, str]]:
    """(step, int output) pairs a condition compares with a float (or untyped) path: the step
    also writes ``<output>-double`` (a ``NUMBER_DOUBLE``), which the condition reads, since
    CEL compares no int with a double without ``double(...)``, which kfp.local's evaluator
    lacks (forwarded through ``when``/``else`` groups).

    Also (step, float/bool output) pairs of a step evaluating its own condition
    (:func:`self_gated`) that a condition reads: the output is JSON text, so the condition
    reads its native view (``-double``/``-bool``)."""
    found: set[tuple[str, str]] = set()

    def visit(expr: cond.Expr) -> None:
        if isinstance(expr, cond.Not):
            visit(expr.operand)
        elif isinstance(expr, cond.BoolOp):
            for o in expr.operands:
                visit(o)
        elif isinstance(expr, cond.Compare):
            sides = (expr.left, expr.right)
            types = {s.type if isinstance(s, cond.Path) else None for s in sides}
            if "int" in types and types & {"float", ANY} and types <= {"int", "float", ANY}:
                for side in sides:
                    if not (isinstance(side, cond.Path) and side.type == "int"):
                        continue
                    ref = side.ref
                    if ref.kind == "step" and ref.metric is None:
                        found.update(_metric_producers(index, ref.name, ref.key or ""))

    nodes = list(index.walk())
    if index.finally_node is not None:
        nodes.append(index.finally_node)
    gated = self_gated(index)
    for node in nodes:
        if node.resolved.when is not None:
            visit(node.resolved.when)
            for path in _typed_paths(node.resolved.when, ("float", "bool")):
                producers = _metric_producers(index, path.ref.name, path.ref.key or "")
                if any(name in gated for name, _ in producers):
                    found.update(producers)
    return found


def _typed_paths(expr: cond.Expr, types: tuple[str, ...]) -> list[cond.Path]:
    """The step-output paths of an expression (no metrics) whose type is one of ``types``."""
    if isinstance(expr, cond.Path):
        ok = expr.type in types and expr.ref.kind == "step" and expr.ref.metric is None
        return [expr] if ok else []
    if isinstance(expr, cond.Not):
        return _typed_paths(expr.operand, types)
    if isinstance(expr, cond.BoolOp):
        return [p for o in expr.operands for p in _typed_paths(o, types)]
    if isinstance(expr, cond.Compare):
        return _typed_paths(expr.left, types) + _typed_paths(expr.right, types)
    if isinstance(expr, cond.In):
        return _typed_paths(expr.operand, types)
    return []


def _metric_producers(index: PipelineIndex, name: str, key: str) -> list[tuple[str, str]]:
    """(name, key) and, through ``when``/``else`` groups, the steps whose output it is (for
    metrics and double views)."""
    node = index.nodes[name]
    out = [(name, key)]
    if node.is_group and not node.group.is_loop:
        resolved = node.resolved
        for value in (resolved.outputs.get(key), resolved.else_outputs.get(key)):
            if isinstance(value, StepOutput) and not isinstance(value, MetricValue):
                out += _metric_producers(index, value.ref.name, value.output)
    return out


def self_gated(index: PipelineIndex) -> set[str]:
    """Task steps with a ``when`` that run as plain tasks evaluating their condition
    themselves: those whose outputs are read by anything but a task beside them (a group's or
    the pipeline's outputs, a step in another DAG). A KFP DAG output or a DAG task input taken
    from a task whose condition was false has no value (the driver cannot resolve it, and
    kfp.local raises "task ... not found"), so such a step always runs, and when its condition
    is false its runtime publishes the skipped marker instead of running the user's code
    (:data:`pipecast.runtime.conventions.kfp.SKIPPED`): a collection leaves marked items out
    and readers are skipped by the condition they inherit (docs/semantics.md)."""
    found: set[str] = set()

    def gated(name: str) -> bool:
        node = index.nodes.get(name)
        return node is not None and node.is_task and node.task.when is not None

    def read(ref: Ref, reader: StepNode | None) -> None:
        if ref.kind != "step" or not gated(ref.name):
            return
        producer = index.nodes[ref.name]
        if reader is None or reader.is_group or reader.scope is not producer.scope:
            found.add(ref.name)

    nodes = list(index.walk())
    if index.finally_node is not None:
        nodes.append(index.finally_node)
    for node in nodes:
        for _, ref in index.input_refs(node):
            read(ref, node)
        if node.is_group:
            for _, _, _, ref in index.group_output_refs(node):
                read(ref, None)
    for value in index.resolved.outputs.values():
        for part in refs_of(value):
            read(part.ref, None)
    return found


def item_is_json(index: PipelineIndex, group: StepNode) -> bool:
    """Whether the items of a ``for_each`` group arrive as JSON text."""
    item = index.loop_item_type(group)
    if not compound(item) and item != ANY:
        return False
    value = group.group.for_each
    if isinstance(value, list):
        return True  # the compiler encodes the literal's compound items
    # A pipeline parameter travels as JSON text too: a task the compiler adds encodes its items.
    return isinstance(group.resolved.for_each, StepOutput | ParamRef)


def iterated_outputs(index: PipelineIndex) -> set[tuple[str, str]]:
    """(step, output) pairs that need a companion ``<output>--items`` list.

    A loop over a task's list output iterates the companion; a loop over a ``when`` group's
    output needs the companion on the group and, through it, on each branch's step. A loop
    over a ``for_each`` group's output iterates the collected ``LIST`` itself.
    """
    found: set[tuple[str, str]] = set()
    for node in index.walk():
        if node.is_group and node.group.is_loop:
            items = node.resolved.for_each
            if isinstance(items, StepOutput):
                _producers(index, items.ref.name, items.output, found)
    return found


def native_outputs(index: PipelineIndex) -> set[tuple[str, str]]:
    """(step, output) pairs that need a companion ``<output>--native``: a pipeline output of a
    list/dict type, from a step or through ``when`` groups (a ``for_each`` group's collected
    ``LIST`` is not; its items keep their own wire)."""
    found: set[tuple[str, str]] = set()
    gated = self_gated(index)
    for value in index.resolved.outputs.values():
        if not isinstance(value, StepOutput):
            continue
        node = index.nodes[value.ref.name]
        if textual(index.output_type(node, value.output) or ANY):
            chain: set[tuple[str, str]] = set()
            _producers(index, value.ref.name, value.output, chain)
            # A producer that may publish the skipped marker (text) cannot fill a typed view:
            # that pipeline output stays JSON text, which read-back drops when it is the marker.
            if not any(name in gated for name, _ in chain):
                found |= chain
    return found


def _producers(index: PipelineIndex, name: str, key: str, found: set[tuple[str, str]]) -> None:
    """Add (name, key) and, through ``when``/``else`` groups, the steps producing it."""
    node = index.nodes[name]
    if node.is_task:
        found.add((name, key))
        return
    if node.group.is_loop:
        return
    found.add((name, key))
    resolved = node.resolved
    for value in (resolved.outputs.get(key), resolved.else_outputs.get(key)):
        if isinstance(value, StepOutput):
            _producers(index, value.ref.name, value.output, found)
