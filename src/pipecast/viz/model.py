"""The picture of a pipeline: nodes (task steps), clusters (groups) and labelled edges.

Built from :class:`pipecast.passes.analysis.PipelineIndex` (scopes, references, ``after``),
never by re-reading the YAML, so the picture shows exactly the dependencies the compilers
and the simulator use. Every renderer (Mermaid, DOT, HTML) draws this one model.

Edges run from the step that produces a value to the step that reads it (a group when
the reader is the group's ``for_each`` list or ``when`` condition, or when a group output
is read), labelled with the output names. ``after`` edges carry no data and are dashed;
``finally`` hangs off the top-level sinks with an ``always`` edge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pipecast.ir.models import ContainerRun, PythonRun
from pipecast.passes.analysis import FINALLY, PipelineIndex, Scope, StepNode

EdgeKind = Literal["data", "after", "finally"]
ClusterKind = Literal["for_each", "when", "else", "pipeline"]


@dataclass
class GNode:
    """A task step (or ``finally``)."""

    id: str
    name: str
    subtitle: str
    parent: str | None  # cluster id
    settings: dict[str, Any]
    is_finally: bool = False
    when: str | None = None


@dataclass
class GCluster:
    """A group (``for_each`` or ``when``) or the ``else`` branch of a ``when`` group."""

    id: str
    name: str
    kind: ClusterKind
    lines: list[str]
    parent: str | None
    children: list[str] = field(default_factory=list)  # node and cluster ids, writing order
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class GEdge:
    src: str
    dst: str
    kind: EdgeKind
    labels: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return ", ".join(self.labels)


@dataclass
class Graph:
    """A whole pipeline picture; ``top`` lists the top-level node/cluster ids in writing order."""

    name: str
    description: str | None
    nodes: dict[str, GNode]
    clusters: dict[str, GCluster]
    edges: list[GEdge]
    top: list[str]
    finally_id: str | None
    index: PipelineIndex


def item_id(node: StepNode) -> str:
    """A stable id that no renderer reads as a keyword (Mermaid chokes on ``end``, ``o``/``x``)."""
    if node.name == FINALLY and node.scope.owner is None and node.yaml_path == ("finally",):
        return "fin"
    # A sub-pipeline's steps have dotted names (SPEC §17); '-' is in no step name, so ids stay
    # unique and every renderer reads them as one word.
    return ("g_" if node.is_group else "s_") + node.name.replace(".", "-")


def else_id(node: StepNode) -> str:
    return f"e_{node.name.replace('.', '-')}"


def short(value: Any, limit: int = 60) -> str:
    """A value as compact text, cut to ``limit`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bare(value: Any) -> str:
    """``"{{ params.regions }}"`` → ``params.regions``; other values as compact text."""
    if isinstance(value, str) and value.startswith("{{") and value.endswith("}}") and value.count("{{") == 1:
        return value[2:-2].strip()
    return short(value)


def _duration(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    s = float(seconds)
    if s < 1:
        return f"{s * 1000:g}ms"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            parts.append(f"{int(s // size)}{unit}")
            s -= (s // size) * size
    if s or not parts:
        parts.append(f"{s:g}s")
    return "".join(parts)


def task_settings(index: PipelineIndex, node: StepNode) -> dict[str, Any]:
    """What a click on a step shows: its effective settings (defaults applied)."""
    task = node.task
    eff = index.effective(node)
    run: dict[str, Any]
    if task.import_ is not None:
        return {"import": task.import_.to_data(), "outputs": dict(task.outputs), "after": list(task.after)}
    if isinstance(task.run, PythonRun):
        run = {"python": task.run.python}
    else:
        assert isinstance(task.run, ContainerRun)
        run = {"image": task.run.image, "command": list(task.run.command), "args": list(task.run.args)}
    retry = eff.retry
    out: dict[str, Any] = {
        "run": run,
        "image": eff.image,
        "inputs": dict(task.inputs),
        "outputs": dict(task.outputs),
        "retry": {
            "attempts": retry.attempts,
            "delay": _duration(retry.delay),
            "backoff": retry.backoff,
            "max_delay": _duration(retry.max_delay),
            "jitter": retry.jitter,
        },
        "timeout": _duration(eff.timeout),
        "resources": {k: v for k, v in eff.resources.model_dump().items() if v is not None},
        "env": dict(eff.env),
        # Names only: where the value comes from, never a value.
        "secrets": dict(eff.secrets),
        "cache": eff.cache,
    }
    if task.after:
        out["after"] = list(task.after)
    if task.when:
        out["when"] = task.when
    if task.description:
        out["description"] = task.description
    return out


def _subtitle(node: StepNode) -> str:
    run = node.task.run
    spec = node.task.import_
    if spec is not None:
        return f"import {short(spec.uri, 40)}"
    if node.task.component is not None:
        # SPEC §16: a component step shows the component it uses.
        return f"uses {short(node.task.component.path, 40)}"
    if isinstance(run, PythonRun):
        return run.python
    assert isinstance(run, ContainerRun)
    return f"{short(run.image, 30)} · {short(run.command[0], 20)}"


def build(index: PipelineIndex) -> Graph:
    """The picture of an indexed (validated) pipeline."""
    nodes: dict[str, GNode] = {}
    clusters: dict[str, GCluster] = {}

    def fill(scope: Scope, parent: str | None) -> list[str]:
        ids = []
        for node in scope.steps.values():
            nid = item_id(node)
            ids.append(nid)
            if node.is_task:
                nodes[nid] = GNode(
                    nid, node.name, _subtitle(node), parent, task_settings(index, node), when=node.task.when
                )
                continue
            group = node.group
            outs = list(group.outputs)
            if group.is_loop:
                lines = [f"for_each {group.as_} in {bare(group.for_each)}"]
                if group.parallelism:
                    lines.append(f"parallelism {group.parallelism}")
                settings: dict[str, Any] = {
                    "for_each": group.for_each,
                    "as": group.as_,
                    "parallelism": group.parallelism,
                }
                kind: ClusterKind = "for_each"
            elif group.when is not None:
                lines = [f"when {group.when}"]
                settings = {"when": group.when}
                kind = "when"
            else:
                lines, settings, kind = [], {}, "pipeline"
            if group.subpipeline is not None:
                # SPEC §17: a sub-pipeline shows which pipeline file it runs.
                lines.insert(0, f"uses {group.subpipeline.path} ({group.subpipeline.name})")
                settings["uses"] = group.subpipeline.path
            if outs:
                lines.append("outputs: " + ", ".join(outs))
                settings["outputs"] = dict(group.outputs)
            if group.after:
                settings["after"] = list(group.after)
            if group.description:
                settings["description"] = group.description
            cluster = GCluster(nid, node.name, kind, lines, parent, settings=settings)
            clusters[nid] = cluster
            assert node.body is not None
            cluster.children = fill(node.body, nid)
            if node.else_body is not None:
                eid = else_id(node)
                else_outs = list(group.else_.outputs) if group.else_ else []
                elines = ["else (condition false)"]
                if else_outs:
                    elines.append("outputs: " + ", ".join(else_outs))
                clusters[eid] = GCluster(eid, "else", "else", elines, nid)
                clusters[eid].children = fill(node.else_body, eid)
                cluster.children.append(eid)
        return ids

    top = fill(index.root, None)
    finally_id = None
    if index.finally_node is not None:
        fnode = index.finally_node
        finally_id = "fin"
        nodes[finally_id] = GNode(
            finally_id, FINALLY, _subtitle(fnode), None, task_settings(index, fnode), is_finally=True
        )
    return Graph(
        name=index.pipeline.name,
        description=index.pipeline.description,
        nodes=nodes,
        clusters=clusters,
        edges=_edges(index),
        top=top,
        finally_id=finally_id,
        index=index,
    )


def _edges(index: PipelineIndex) -> list[GEdge]:
    edges: dict[tuple[str, str, str], GEdge] = {}

    def add(src: str, dst: str, kind: EdgeKind, label: str | None) -> None:
        edge = edges.setdefault((src, dst, kind), GEdge(src, dst, kind))
        if label and label not in edge.labels:
            edge.labels.append(label)

    users = list(index.walk())
    if index.finally_node is not None:
        users.append(index.finally_node)
    for node in users:
        in_finally = node is index.finally_node
        for path, ref in index.input_refs(node):
            if ref.kind != "step":
                continue
            res = index.resolve(ref, node.scope, dependent=node.name, in_finally=in_finally)
            if not res.ok or res.target is None:
                continue
            label = ref.key or ""
            if "when" in path:
                label += " (when)"
            elif "for_each" in path:
                label += " (for_each)"
            add(item_id(index.nodes[res.target]), item_id(node), "data", label)
        for target in node.step.after:
            if target in index.nodes:
                add(item_id(index.nodes[target]), item_id(node), "after", None)
    if index.finally_node is not None:
        deps = index.deps(index.root)
        used = {d for ds in deps.values() for d in ds}
        for name, node in index.root.steps.items():
            if name not in used:
                add(item_id(node), "fin", "finally", "always")
    return list(edges.values())
