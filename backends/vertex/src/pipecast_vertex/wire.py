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
* pipeline parameters: native (``LIST``/``STRUCT``: what users type in the console); their
  numbers come back as ints when integral (the only place the heuristic remains);
* loop items: a ``parameterIterator`` needs a real list, so a loop over a step's list output
  iterates a companion output ``<output>--items`` (a native ``LIST`` the runtime writes
  alongside); compound items (dicts, lists) of a step output, a collected output or a literal
  list are JSON text, items of a pipeline parameter are native. Items of an untyped list
  (``any``) are JSON text when they are dicts, lists or strings that start like JSON, and
  native scalars otherwise (conditions compare them), so an integral float item of an untyped
  list (``[1.0, "a"]``) still arrives as ``1``.
"""

from __future__ import annotations

from pipecast.passes.analysis import ANY, PipelineIndex, StepNode
from pipecast.passes.resolve import StepOutput
from pipecast.runtime.conventions.kfp import ITEMS_SUFFIX, NATIVE_SUFFIX, compound, textual

__all__ = ["ITEMS_SUFFIX", "NATIVE_SUFFIX", "compound", "item_is_json", "iterated_outputs", "native_outputs"]


def item_is_json(index: PipelineIndex, group: StepNode) -> bool:
    """Whether the items of a ``for_each`` group arrive as JSON text."""
    item = index.loop_item_type(group)
    if not compound(item) and item != ANY:
        return False
    value = group.group.for_each
    if isinstance(value, list):
        return True  # the compiler encodes the literal's compound items
    return isinstance(group.resolved.for_each, StepOutput)


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
    for value in index.resolved.outputs.values():
        if not isinstance(value, StepOutput):
            continue
        node = index.nodes[value.ref.name]
        if textual(index.output_type(node, value.output) or ANY):
            _producers(index, value.ref.name, value.output, found)
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
