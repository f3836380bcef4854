"""Self-contained HTML pages: the pipeline graph (``pipecast graph --format html``) and the
shared page machinery of run reports.

Templates live in ``templates/viz/`` and are rendered with autoescaping on: every value from
a pipeline or a run record is HTML-escaped, and the JSON the page script reads is embedded
with ``<``, ``>`` and ``&`` written as ``\\u003c``-style escapes so it cannot close its
``<script>`` element. CSS and JavaScript are inlined; the page makes no network request
(a Content-Security-Policy of ``default-src 'none'`` enforces it).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jinja2
from markupsafe import Markup

from pipecast.templating import template_root
from pipecast.viz.layout import svg
from pipecast.viz.model import Graph


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_root())),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        keep_trailing_newline=True,
    )


def script_json(data: Any) -> Markup:
    """JSON safe inside a ``<script type="application/json">`` element."""
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(text)


def items_data(graph: Graph) -> dict[str, Any]:
    """What the click panel shows, keyed by node/cluster id."""
    items: dict[str, Any] = {}
    for nid, n in graph.nodes.items():
        items[nid] = {
            "name": n.name,
            "kind": "finally step" if n.is_finally else "task step",
            "settings": n.settings,
        }
    for cid, c in graph.clusters.items():
        kind = {
            "for_each": "fan-out group",
            "when": "condition group",
            "else": "else branch",
            "pipeline": "sub-pipeline",
        }[c.kind]
        items[cid] = {"name": c.name, "kind": kind, "settings": c.settings}
    return items


def render_page(template: str, graph: Graph, svg_markup: str, data: dict[str, Any], **context: Any) -> str:
    return (
        environment()
        .get_template(template)
        .render(
            svg=Markup(svg_markup),
            data_json=script_json(data),
            description=graph.description or "",
            **context,
        )
    )


def render(graph: Graph) -> str:
    """The graph page for ``pipecast graph --format html``."""
    return render_page(
        "viz/graph.html.j2",
        graph,
        svg(graph),
        {"items": items_data(graph), "pipeline": graph.name},
        title=f"{graph.name}: pipeline graph",
        heading=graph.name,
    )
