"""Mermaid ``flowchart TD`` text that GitHub renders as is.

Every label is quoted and every character Mermaid could read as syntax is written as an
entity code (``#quot;``, ``#35;`` …), so no step name, condition or command can break the
chart. Ids come from :func:`pipecast.viz.model.item_id` (``s_``/``g_`` prefixes keep clear
of Mermaid keywords such as ``end`` and of the ``o``/``x`` edge heads).
"""

from __future__ import annotations

from pipecast.viz.model import GCluster, Graph

# Mermaid entity codes: https://mermaid.js.org/syntax/flowchart.html#entity-codes-to-escape-characters
_ENTITIES = {
    "#": "#35;",  # first: the other codes contain '#'
    '"': "#quot;",
    "<": "#lt;",
    ">": "#gt;",
    "&": "#amp;",
    "[": "#91;",
    "]": "#93;",
    "{": "#123;",
    "}": "#125;",
    "|": "#124;",
    "`": "#96;",
    ";": "#59;",
}


def esc(text: str) -> str:
    """Text safe inside a quoted Mermaid label (markdown and HTML characters neutralised)."""
    out = []
    for ch in text:
        if ch in _ENTITIES:
            out.append(_ENTITIES[ch])
        elif ch in "\r\n\t":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def _label(*lines: str) -> str:
    return '"' + "<br/>".join(esc(line) for line in lines if line) + '"'


STYLES = (
    "classDef task fill:#eef4ff,stroke:#3b6fd8,color:#10213f",
    "classDef fin fill:#fff4e0,stroke:#d08a00,color:#3a2600,stroke-width:2px",
    "classDef cond fill:#eef4ff,stroke:#3b6fd8,color:#10213f,stroke-dasharray:4 3",
)


_CLUSTER_STYLE = {
    "for_each": "fill:#f6f9f1,stroke:#5b8a2e",
    "when": "fill:#f8f4fc,stroke:#7a4fb0,stroke-dasharray:6 3",
    "else": "fill:#fcf5f5,stroke:#b04f4f,stroke-dasharray:2 3",
    "pipeline": "fill:#f1f6fa,stroke:#2e6f8a",
}


def render(graph: Graph) -> str:
    """The pipeline as Mermaid text (ends with a newline; deterministic)."""
    lines = ["flowchart TD"]
    if graph.description:
        lines.append(f"  %% {graph.name}: {' '.join(graph.description.split())}")

    def emit(item: str, depth: int) -> None:
        pad = "  " * depth
        if item in graph.clusters:
            cluster: GCluster = graph.clusters[item]
            # One title line: Mermaid draws extra title lines over the subgraph's content.
            parts = [ln for ln in cluster.lines if not ln.startswith("outputs:")]
            title = " · ".join(parts if cluster.kind == "else" else [cluster.name, *parts])
            lines.append(f"{pad}subgraph {item}[{_label(title)}]")
            lines.append(f"{pad}  direction TB")
            for child in cluster.children:
                emit(child, depth + 1)
            lines.append(f"{pad}end")
            return
        node = graph.nodes[item]
        extra = f"when {node.when}" if node.when else ""
        shape = ("([", "])") if node.is_finally else ("[", "]")
        lines.append(f"{pad}{item}{shape[0]}{_label(node.name, node.subtitle, extra)}{shape[1]}")

    for item in graph.top:
        emit(item, 1)
    if graph.finally_id is not None:
        lines.append(f"  subgraph finally_box[{_label('finally: always runs, last')}]")
        emit(graph.finally_id, 2)
        lines.append("  end")
    always_shown = False
    for edge in graph.edges:
        label = f"|{_label(edge.label)}|" if edge.label else ""
        arrow = "-->" if edge.kind == "data" else "-.->"
        dst = "finally_box" if edge.kind == "finally" else edge.dst
        if edge.kind == "finally":
            label = "" if always_shown else label  # one "always" label is enough
            always_shown = True
        lines.append(f"  {edge.src} {arrow}{label} {dst}")
    lines.extend("  " + s for s in STYLES)
    tasks = sorted(n.id for n in graph.nodes.values() if not n.is_finally and not n.when)
    conds = sorted(n.id for n in graph.nodes.values() if n.when)
    if tasks:
        lines.append("  class " + ",".join(tasks) + " task")
    if conds:
        lines.append("  class " + ",".join(conds) + " cond")
    if graph.finally_id:
        lines.append(f"  class {graph.finally_id} fin")
        lines.append("  style finally_box fill:#fffaf0,stroke:#d08a00,stroke-dasharray:4 4")
    for cid in sorted(graph.clusters):
        lines.append(f"  style {cid} {_CLUSTER_STYLE[graph.clusters[cid].kind]}")
    return "\n".join(lines) + "\n"
