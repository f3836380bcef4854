"""Compile-time estimate of the largest state (the JSON a state passes on), against the
256 KiB payload quota (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html).

``States.ALL`` does not catch ``States.DataLimitExceeded`` (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html),
so a state over the quota fails the execution without running ``finally``: the estimate is a
compile-time check, like the history estimate. The state holds ``$.params``,
``$.pipeline`` and one ``$.steps.<step>`` entry per step of its scope (:mod:`.paths`); a
``Map`` collects each output as a list of its width. Values unknown at compile time are
assumed: a parameter output :data:`ASSUMED_VALUE` bytes, an artifact its S3 URI, a parameter
without a default :data:`ASSUMED_PARAM` bytes, an unknown fan-out width ``ASSUMED_WIDTH``.
"""

from __future__ import annotations

import json
from typing import Any

from pipecast.ir.values import is_artifact
from pipecast.passes.analysis import Scope, StepNode

STATE_LIMIT = 262_144
ASSUMED_VALUE = 64
ASSUMED_PARAM = 256
ENTRY_OVERHEAD = 30  # "<name>":{"outputs":{...}} punctuation, "skipped"


def _value_bytes(type_: str | None, uri: int) -> int:
    return uri if type_ is not None and is_artifact(type_) else ASSUMED_VALUE


def _uri_bytes(settings: Any, pipeline_name: str, node: StepNode, output: str) -> int:
    # <artifact_root>/<pipeline>/<execution name (<= 80)>/<step>[/<i>...]/<output>
    return len(settings.artifact_root) + len(pipeline_name) + 80 + len(node.name) + len(output) + 24


def _entry_bytes(em: Any, node: StepNode) -> int:
    """Bytes of one ``$.steps.<node>`` entry in its own scope's state."""
    size = len(node.name) + ENTRY_OVERHEAD
    if node.is_task:
        for out, type_ in node.task.outputs.items():
            size += len(out) + 6 + _value_bytes(type_, _uri_bytes(em.settings, em.pipeline.name, node, out))
        return size
    group = node.group
    width = em.loop_width(node)[0] if group.is_loop else 1
    outputs = dict(group.outputs)
    if group.else_ is not None:
        outputs.update(group.else_.outputs)
    for out in outputs:
        # A group output is a value of a step inside: an artifact's URI or a parameter value.
        size += len(out) + 6 + width * (ASSUMED_VALUE + 2)
    return size


def node_bytes(em: Any, node: StepNode) -> int:
    """The entries a step adds to its scope's state: its own, and a ``when`` group's inner
    steps (they land in the same ``$.steps``; the longer branch counts)."""
    size = _entry_bytes(em, node)
    if node.is_group and not node.group.is_loop:
        branches = [b for b in (node.body, node.else_body) if b is not None]
        size += max((_scope_bytes(em, b) for b in branches), default=0)
    return size


def _scope_bytes(em: Any, scope: Scope) -> int:
    """The entries a scope adds to its state (a ``for_each`` body has a state per item)."""
    return sum(node_bytes(em, node) for node in scope.steps.values())


def largest_state_bytes(em: Any) -> tuple[int, str]:
    """Estimated bytes of the largest state, and where it is (``steps`` or a for_each group)."""
    p = em.pipeline
    base = 120 + len(p.name) + 80  # {"params":..,"pipeline":{"name","run_id"},"steps":{}}
    for name, param in p.params.items():
        base += len(name) + 4 + (len(json.dumps(param.default)) if param.has_default else ASSUMED_PARAM)
    root = em.root_state_peak if em.root_state_peak is not None else _scope_bytes(em, em.index.root)
    best, where = base + root, "steps"
    for node in em.index.walk():
        if node.is_group and node.group.is_loop and node.body is not None:
            size = base + _scope_bytes(em, node.body)
            if size > best:
                best, where = size, node.name
    return best, where
