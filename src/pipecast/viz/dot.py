"""Graphviz DOT: groups as ``cluster_`` subgraphs, edges to and from groups via
``lhead``/``ltail`` (``compound=true``) so they touch the group's box.

Every id and label is a double-quoted DOT string with ``\\`` and ``"`` escaped and line
breaks written as ``\\n``, so nothing a pipeline holds can end the string early.
"""

from __future__ import annotations

from pipecast.viz.model import Graph


def q(text: str) -> str:
    """A DOT quoted string (https://graphviz.org/doc/info/lang.html: only ``"`` needs escaping;
    a backslash is escaped too so ``\\n``-style escapes in user text stay literal)."""
    body = text.replace("\\", "\\\\").replace('"', '\\"')
    body = body.replace("\r", " ").replace("\n", " ")
    return f'"{body}"'


def _label(*lines: str) -> str:
    # Join our own lines with a real DOT line break after escaping the text.
    return '"' + "\\n".join(q(line)[1:-1] for line in lines if line) + '"'


_CLUSTER_STYLE = {
    "for_each": 'style="rounded,filled" fillcolor="#f3f7ee" color="#5b8a2e"',
    "when": 'style="rounded,filled,dashed" fillcolor="#f7f3fb" color="#7a4fb0"',
    "else": 'style="rounded,filled,dotted" fillcolor="#fbf3f3" color="#b04f4f"',
    "pipeline": 'style="rounded,filled" fillcolor="#f1f6fa" color="#2e6f8a"',
}


def render(graph: Graph) -> str:
    """The pipeline as DOT text (deterministic, ends with a newline)."""
    out = [
        f"digraph {q(graph.name)} {{",
        "  compound=true;",
        "  rankdir=TB;",
        "  newrank=true;",
        f"  label={q(graph.name + (': ' + graph.description if graph.description else ''))};",
        "  labelloc=t;",
        '  fontname="Helvetica";',
        '  node [shape=box, style="rounded,filled", fillcolor="#eef4ff", color="#3b6fd8", fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9, color="#555555"];',
    ]
    for item in graph.top:
        _emit(graph, item, 1, out)
    if graph.finally_id is not None:
        out.append(f"  subgraph {q('cluster_finally')} {{")
        out.append(f'    label={q("finally: always runs, last")}; style="rounded,dashed"; color="#d08a00";')
        out.append(
            f"    {q(graph.finally_id)} [label={_label('finally', graph.nodes[graph.finally_id].subtitle)}, "
            'fillcolor="#fff4e0", color="#d08a00", penwidth=2];'
        )
        out.append("  }")
    out += _edges(graph)
    out.append("}")
    return "\n".join(out) + "\n"


def _anchor(graph: Graph, cid: str, pick_last: bool) -> str:
    """The task an edge to or from cluster ``cid`` attaches to (it is clipped at the box)."""
    children = graph.clusters[cid].children
    child = children[-1] if pick_last else children[0]
    return _anchor(graph, child, pick_last) if child in graph.clusters else child


def _emit(graph: Graph, item: str, depth: int, out: list[str]) -> None:
    """A node, or a cluster with everything inside it."""
    pad = "  " * depth
    if item in graph.clusters:
        c = graph.clusters[item]
        title = c.lines if c.kind == "else" else [c.name, *c.lines]
        out.append(f"{pad}subgraph {q('cluster_' + item)} {{")
        out.append(f"{pad}  label={_label(*title)}; {_CLUSTER_STYLE[c.kind]};")
        if not c.children:
            out.append(f'{pad}  {q(item + "_empty")} [label="(no steps)", shape=plaintext, style=""];')
        for child in c.children:
            _emit(graph, child, depth + 1, out)
        out.append(f"{pad}}}")
        return
    n = graph.nodes[item]
    attrs = [f"label={_label(n.name, n.subtitle, f'when {n.when}' if n.when else '')}"]
    if n.when:
        attrs.append('style="rounded,filled,dashed"')
    out.append(f"{pad}{q(item)} [{', '.join(attrs)}];")


def _edges(graph: Graph) -> list[str]:
    """Every edge; one to a group attaches to one of its tasks and is clipped at the cluster box
    (an empty group has no task: its edges are left out)."""
    first = {cid: _anchor(graph, cid, False) for cid in graph.clusters if graph.clusters[cid].children}
    last = {cid: _anchor(graph, cid, True) for cid in graph.clusters if graph.clusters[cid].children}
    out = []
    for edge in graph.edges:
        src, dst = edge.src, edge.dst
        attrs = []
        if src in graph.clusters:
            if src not in last:
                continue
            attrs.append(f"ltail={q('cluster_' + src)}")
            src = last[src]
        if dst in graph.clusters:
            if dst not in first:
                continue
            attrs.append(f"lhead={q('cluster_' + dst)}")
            dst = first[dst]
        if edge.label:
            attrs.append(f"label={q(edge.label)}")
        if edge.kind != "data":
            attrs.append("style=dashed")
        if edge.kind == "finally":
            attrs.append('color="#d08a00"')
        out.append(f"  {q(src)} -> {q(dst)}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    return out
