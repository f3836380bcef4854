"""A layered layout of the pipeline picture, drawn as inline SVG (no JavaScript library).

Each scope (the top level, a group's body, an ``else`` branch) is laid out on its own:
siblings are put in layers by their longest dependency chain (the sibling dependencies of
:meth:`PipelineIndex.deps`), ordered inside a layer by the barycentre of what they wait
for, and centred. A group is a box sized by its own layout, so groups nest; the ``else``
branch sits to the right of the ``then`` steps. ``finally`` is set apart below a rule.
Everything is computed from the pipeline alone: the same pipeline gives the same SVG.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from pipecast.passes.analysis import Scope
from pipecast.viz.model import GEdge, GNode, Graph, else_id, item_id

NODE_H = 44
WHEN_H = 14
LINE_H = 15
PAD = 14
GAP_X = 26
GAP_Y = 48
CHAR_W = 7.0  # a rough average for 12px sans-serif; labels longer than the box are cut
SUB_CHAR_W = 6.0
MIN_W, MAX_W = 130, 250


@dataclass
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2


@dataclass
class Layout:
    width: float
    height: float
    boxes: dict[str, Box]  # node and cluster ids → absolute boxes
    rule_y: float | None  # the line above finally


def _fit(text: str, width: float, char_w: float) -> str:
    room = max(4, int((width - 16) / char_w))
    return text if len(text) <= room else text[: room - 1] + "…"


def _node_size(graph: Graph, nid: str, badges: dict[str, str] | None = None) -> tuple[float, float]:
    n = graph.nodes[nid]
    badge = (badges or {}).get(nid, "")
    w = max(len(n.name) * CHAR_W + 24, len(n.subtitle) * SUB_CHAR_W + 20, len(badge) * SUB_CHAR_W + 20, MIN_W)
    h = NODE_H + (WHEN_H if n.when else 0) + (WHEN_H if badge else 0)
    return min(w, MAX_W), h


class _Layouter:
    def __init__(self, graph: Graph, badges: dict[str, str] | None = None) -> None:
        self.g = graph
        self.badges = badges
        self.rel: dict[str, tuple[float, float]] = {}  # item → offset inside its parent's content
        self.size: dict[str, tuple[float, float]] = {}

    def scope(self, scope: Scope) -> tuple[float, float, dict[str, tuple[float, float]]]:
        index = self.g.index
        deps = index.deps(scope)
        order = index.toposort(scope)
        ids = {name: item_id(node) for name, node in scope.steps.items()}
        for name, node in scope.steps.items():
            self.item(ids[name], node)
        layer: dict[str, int] = {}
        for name in order:
            layer[name] = 1 + max((layer[d] for d in deps[name]), default=-1)
        rows: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
        for name in scope.steps:  # writing order first
            rows[layer[name]].append(name)
        # Barycentre ordering: place a step under what it waits for (two sweeps are plenty).
        for _ in range(2):
            pos = {name: i for row in rows for i, name in enumerate(row)}
            for row in rows[1:]:
                row.sort(
                    key=lambda n: (
                        sum(pos[d] for d in deps[n]) / len(deps[n]) if deps[n] else pos[n],
                        scope.steps[n].index,
                    )
                )
                pos.update({name: i for i, name in enumerate(row)})
        widths = [sum(self.size[ids[n]][0] for n in row) + GAP_X * (len(row) - 1) for row in rows]
        width = max(widths, default=0)
        offsets: dict[str, tuple[float, float]] = {}
        y = 0.0
        for row, row_w in zip(rows, widths, strict=True):
            x = (width - row_w) / 2
            row_h = max(self.size[ids[n]][1] for n in row)
            for name in row:
                w = self.size[ids[name]][0]
                offsets[ids[name]] = (x, y)
                x += w + GAP_X
            y += row_h + GAP_Y
        height = max(0.0, y - GAP_Y)
        return width, height, offsets

    def item(self, iid: str, node: object) -> None:
        from pipecast.passes.analysis import StepNode

        assert isinstance(node, StepNode)
        if iid in self.g.nodes:
            self.size[iid] = _node_size(self.g, iid, self.badges)
            return
        cluster = self.g.clusters[iid]
        assert node.body is not None
        bw, bh, boff = self.scope(node.body)
        head = LINE_H * (len(cluster.lines) + 1) + 6
        content_w, content_h = bw, bh
        for child, (x, y) in boff.items():
            self.rel[child] = (PAD + x, head + y)
        if node.else_body is not None:
            eid = else_id(node)
            ew, eh, eoff = self.scope(node.else_body)
            ehead = LINE_H * len(self.g.clusters[eid].lines) + 8
            for child, (x, y) in eoff.items():
                self.rel[child] = (PAD + x, ehead + y)
            self.size[eid] = (max(ew, 120) + 2 * PAD, ehead + eh + PAD)
            self.rel[eid] = (PAD + bw + (GAP_X if bw else 0), head)
            content_w = bw + (GAP_X if bw else 0) + self.size[eid][0]
            content_h = max(bh, self.size[eid][1])
        title_w = max(len(line) for line in [cluster.name, *cluster.lines]) * SUB_CHAR_W + 2 * PAD
        self.size[iid] = (max(content_w + 2 * PAD, min(title_w, 420), 150), head + content_h + PAD)


def layout(graph: Graph, badges: dict[str, str] | None = None) -> Layout:
    """Absolute boxes for every node and cluster of ``graph`` (``badges``: an extra line per node)."""
    lay = _Layouter(graph, badges)
    width, height, top = lay.scope(graph.index.root)
    margin = 16.0
    boxes: dict[str, Box] = {}

    def place(iid: str, x: float, y: float) -> None:
        w, h = lay.size[iid]
        boxes[iid] = Box(x, y, w, h)
        if iid in graph.clusters:
            for child in graph.clusters[iid].children:
                cx, cy = lay.rel[child]
                place(child, x + cx, y + cy)

    for iid, (x, y) in top.items():
        place(iid, margin + x, margin + y)
    rule_y = None
    total_h = margin + height
    if graph.finally_id is not None:
        rule_y = total_h + GAP_Y / 2 + 6
        w, h = _node_size(graph, graph.finally_id, badges)
        width = max(width, w)
        boxes[graph.finally_id] = Box(margin + (width - w) / 2, rule_y + GAP_Y / 2 + 8, w, h)
        total_h = rule_y + GAP_Y / 2 + 8 + h
    return Layout(width + 2 * margin, total_h + margin, boxes, rule_y)


# ---------------------------------------------------------------------------- SVG


def _ports(graph: Graph, boxes: dict[str, Box]) -> dict[tuple[int, str], float]:
    """Spread the ends of edges along a box's top/bottom side, ordered by the other end's x."""
    ports: dict[tuple[int, str], float] = {}
    for end, other in (("dst", "src"), ("src", "dst")):
        by_box: dict[str, list[tuple[float, int]]] = {}
        for i, e in enumerate(graph.edges):
            by_box.setdefault(getattr(e, end), []).append((boxes[getattr(e, other)].cx, i))
        for bid, items in by_box.items():
            items.sort()
            box = boxes[bid]
            for k, (_x, i) in enumerate(items):
                ports[(i, end)] = box.x + box.w * (k + 1) / (len(items) + 1)
    return ports


def _edge_svg(edge: GEdge, i: int, boxes: dict[str, Box], ports: dict[tuple[int, str], float]) -> str:
    s, d = boxes[edge.src], boxes[edge.dst]
    x1, y1 = ports[(i, "src")], s.y + s.h
    x2, y2 = ports[(i, "dst")], d.y
    dy = max(24.0, abs(y2 - y1) / 2)
    path = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{y1 + dy:.1f} {x2:.1f},{y2 - dy:.1f} {x2:.1f},{y2 - 2:.1f}"
    cls = f"pc-edge pc-edge-{edge.kind}"
    parts = [
        f'<g class="{cls}" data-src="{escape(edge.src)}" data-dst="{escape(edge.dst)}">',
        f'<path d="{path}" marker-end="url(#pc-arrow)"/>',
    ]
    if edge.label:
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        text = edge.label if len(edge.label) <= 36 else edge.label[:35] + "…"
        w = len(text) * 5.6 + 8
        parts.append(
            f'<rect class="pc-edge-label-bg" x="{mx - w / 2:.1f}" y="{my - 8:.1f}" width="{w:.1f}" height="15" rx="3"/>'
            f'<text class="pc-edge-label" x="{mx:.1f}" y="{my + 3:.1f}">{escape(text)}</text>'
        )
        if text != edge.label:
            parts.append(f"<title>{escape(edge.label)}</title>")
    parts.append("</g>")
    return "".join(parts)


def _node_svg(nid: str, n: GNode, b: Box, st: tuple[str, str] | None, critical: bool) -> str:
    """One step's box, with its status class and badge in a run report."""
    out: list[str] = []
    cls = "pc-node" + (" pc-finally" if n.is_finally else "") + (" pc-when" if n.when else "")
    if st:
        cls += f" st-{st[0]}"
    if critical:
        cls += " pc-critical"
    out.append(
        f'<g class="{cls}" data-id="{escape(nid)}" data-name="{escape(n.name)}" tabindex="0">'
        f'<rect x="{b.x:.1f}" y="{b.y:.1f}" width="{b.w:.1f}" height="{b.h:.1f}" rx="7"/>'
        f'<text class="pc-node-name" x="{b.x + 10:.1f}" y="{b.y + 18:.1f}">{escape(_fit(n.name, b.w, CHAR_W))}</text>'
        f'<text class="pc-node-sub" x="{b.x + 10:.1f}" y="{b.y + 34:.1f}">{escape(_fit(n.subtitle, b.w, SUB_CHAR_W))}</text>'
    )
    if n.when:
        out.append(
            f'<text class="pc-node-when" x="{b.x + 10:.1f}" y="{b.y + 48:.1f}">'
            f"{escape(_fit('when ' + n.when, b.w, SUB_CHAR_W))}</text>"
        )
    if st and st[1]:
        out.append(
            f'<text class="pc-badge pc-node-badge" x="{b.x + 10:.1f}" y="{b.y + 48 + (WHEN_H if n.when else 0):.1f}">'
            f"{escape(_fit(st[1], b.w, SUB_CHAR_W))}</text>"
        )
    out.append(f"<title>{escape(n.name + ': ' + n.subtitle)}</title></g>")
    return "".join(out)


def svg(
    graph: Graph, status: dict[str, tuple[str, str]] | None = None, critical: set[str] | None = None
) -> str:
    """The picture as an ``<svg>`` element.

    Args:
        graph: the model.
        status: node id → (status class, badge text), for run reports.
        critical: node ids on the critical path (drawn with a thick outline).
    """
    status = status or {}
    lay = layout(graph, {k: v[1] for k, v in status.items() if v[1] and k in graph.nodes})
    boxes = lay.boxes
    critical = critical or set()
    out = [
        f'<svg id="pc-graph" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {lay.width:.0f} {lay.height:.0f}" '
        f'width="{lay.width:.0f}" height="{lay.height:.0f}" role="img" aria-label="{escape(graph.name)}">',
        '<defs><marker id="pc-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>',
        '<g id="pc-viewport">',
    ]

    def cluster(cid: str) -> None:
        c = graph.clusters[cid]
        b = boxes[cid]
        title = c.lines if c.kind == "else" else [c.name, *c.lines]
        st = status.get(cid)
        cls = f"pc-cluster pc-cluster-{c.kind}" + (f" st-{st[0]}" if st else "")
        out.append(
            f'<g class="{cls}" data-id="{escape(cid)}" data-name="{escape(c.name)}" tabindex="0">'
            f'<rect x="{b.x:.1f}" y="{b.y:.1f}" width="{b.w:.1f}" height="{b.h:.1f}" rx="10"/>'
        )
        for k, line in enumerate(title):
            klass = "pc-cluster-title" if k == 0 else "pc-cluster-line"
            text = _fit(line, b.w, SUB_CHAR_W)
            out.append(
                f'<text class="{klass}" x="{b.x + 10:.1f}" y="{b.y + 16 + k * LINE_H:.1f}">{escape(text)}</text>'
            )
        if st and st[1]:
            out.append(
                f'<text class="pc-badge" x="{b.x + b.w - 10:.1f}" y="{b.y + 16:.1f}">{escape(st[1])}</text>'
            )
        out.append(f"<title>{escape(' | '.join(title))}</title></g>")
        for child in c.children:
            if child in graph.clusters:
                cluster(child)

    def walk_clusters(items: list[str]) -> None:
        for iid in items:
            if iid in graph.clusters:
                cluster(iid)

    walk_clusters(graph.top)
    if lay.rule_y is not None:
        out.append(
            f'<line class="pc-rule" x1="8" y1="{lay.rule_y:.1f}" x2="{lay.width - 8:.1f}" y2="{lay.rule_y:.1f}"/>'
            f'<text class="pc-rule-label" x="12" y="{lay.rule_y - 6:.1f}">finally: always runs, last</text>'
        )
    ports = _ports(graph, boxes)
    for i, edge in enumerate(graph.edges):
        out.append(_edge_svg(edge, i, boxes, ports))
    out.extend(
        _node_svg(nid, n, boxes[nid], status.get(nid), nid in critical) for nid, n in graph.nodes.items()
    )
    out.append("</g></svg>")
    return "".join(out)
