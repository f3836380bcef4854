"""``pipecast graph``: the model, Mermaid, DOT and HTML output (no browser here)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipecast.api import load_checked
from pipecast.cli import main
from pipecast.viz import dot, html, mermaid
from pipecast.viz.model import build

from .conftest import DEMO, EXAMPLES

PIPELINES = [*sorted(EXAMPLES.glob("*/pipeline.yaml")), DEMO]

NASTY = """
pipecast: 1
name: nasty
description: 'ends "] --> x; <script>alert(1)</script> & #35; `md` {{braces}} |pipe|'
params:
  label: {type: str, default: 'a"b'}
steps:
  end:
    run: {image: "busybox", command: [sh, -c, 'echo "</script><script>alert(2)</script>" | tr "]" "["']}
    outputs: {o: str}
  x:
    when: "steps.end.outputs.o == '\\"]<b>#x</b>' or params.label in ['a|b', '<']"
    run: {python: "mod:f"}
    inputs: {v: "{{ steps.end.outputs.o }}"}
"""


def graph_of(path: Path):
    return build(load_checked(path).index)


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.parent.name)
def test_every_step_and_group_is_drawn(path: Path) -> None:
    loaded = load_checked(path)
    g = build(loaded.index)
    text_m, text_d, text_h = mermaid.render(g), dot.render(g), html.render(g)
    assert text_m.startswith("flowchart TD\n")
    for node in loaded.index.walk():
        prefix = "g_" if node.is_group else "s_"
        assert re.search(rf"^\s*(subgraph )?{prefix}{node.name}[\[(]", text_m, re.M), node.name
        assert f'"{prefix}{node.name}"' in text_d or f'"cluster_{prefix}{node.name}"' in text_d
        assert f'data-id="{prefix}{node.name}"' in text_h
    # Deterministic: the same pipeline gives byte-identical output.
    g2 = graph_of(path)
    assert (mermaid.render(g2), dot.render(g2), html.render(g2)) == (text_m, text_d, text_h)


def test_churn_edges_carry_output_names_and_finally_is_apart() -> None:
    g = graph_of(EXAMPLES / "churn" / "pipeline.yaml")
    edges = {(e.src, e.dst): (e.kind, e.label) for e in g.edges}
    assert edges[("s_ingest", "s_train")] == ("data", "table")
    assert edges[("g_per_region", "s_evaluate")] == ("data", "aucs")
    assert edges[("g_per_region", "s_register")] == ("data", "models")
    # The condition reads a metric of evaluate's Metrics output (SPEC §15).
    assert edges[("s_evaluate", "g_publish")] == ("data", "metrics (when)")
    assert edges[("s_evaluate", "s_alert")] == ("data", "metrics")
    assert edges[("g_publish", "fin")] == ("finally", "always")
    # Only the top-level sink leads to finally.
    assert [e.src for e in g.edges if e.kind == "finally"] == ["g_publish"]
    assert g.clusters["g_per_region"].lines[:2] == ["for_each region in params.regions", "parallelism 2"]
    assert (
        g.clusters["g_publish"].lines[0]
        == "when steps.evaluate.outputs.metrics.auc >= params.min_auc and not params.dry"
    )
    assert g.clusters["e_publish"].children == ["s_alert"]
    text = mermaid.render(g)
    assert 'subgraph finally_box["finally: always runs, last"]' in text
    assert 's_ingest -->|"table"| s_train' in text
    assert "g_publish -.->|" in text


def test_after_edges_are_dashed() -> None:
    g = graph_of(EXAMPLES / "dataeng" / "pipeline.yaml")
    after = [e for e in g.edges if e.kind == "after"]
    assert after, "dataeng has an after: edge"
    text_m, text_d = mermaid.render(g), dot.render(g)
    for e in after:
        assert f"{e.src} -.-> {e.dst}" in text_m
        assert re.search(rf'"{e.src}" -> "{e.dst}" \[[^\]]*style=dashed', text_d)


def test_effective_settings_in_the_model() -> None:
    g = graph_of(EXAMPLES / "churn" / "pipeline.yaml")
    train = g.nodes["s_train"].settings
    assert train["retry"] == {
        "attempts": 3,
        "delay": "10s",
        "backoff": 2.0,
        "max_delay": "5m",
        "jitter": True,
    }
    assert train["resources"] == {"cpu": 4.0, "memory": "16Gi", "gpu": 1, "accelerator": "nvidia-t4"}
    assert train["timeout"] == "1h"
    assert train["outputs"] == {"model": "Model", "auc": "float"}
    demo = graph_of(DEMO)
    assert demo.nodes["s_flaky"].settings["secrets"] == {"API_TOKEN": "viz-demo-token"}


def test_labels_are_escaped(tmp_path: Path) -> None:
    path = tmp_path / "nasty.yaml"
    path.write_text(NASTY)
    g = graph_of(path)
    text = mermaid.render(g)
    for line in text.splitlines():
        # Inside a node/edge label only our own quotes appear: no raw quote, bracket, #, <, >, |.
        for label in re.findall(r'"(.*?)"', line):
            label = label.replace("<br/>", "")  # our own line breaks
            assert not set(label) & set('"<>[]{}|`'), line
            assert not re.search(r"#(?!(quot|lt|gt|amp|\d+);)", label), line
    assert "s_end[" in text  # a step named 'end' gets an id Mermaid does not read as a keyword
    page = html.render(g)
    assert "<script>alert" not in page and "</script><script>" not in page
    assert page.count("<script") == 2  # the JSON data and the viewer
    d = dot.render(g)
    assert '\\"' in d  # quotes escaped
    if shutil.which("dot"):
        subprocess.run(["dot", "-Tsvg", "-o", str(tmp_path / "n.svg")], input=d, text=True, check=True)


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.parent.name)
def test_dot_is_valid_graphviz(path: Path, tmp_path: Path) -> None:
    text = dot.render(graph_of(path))
    assert text.count("{") == text.count("}")
    exe = shutil.which("dot")
    if exe is None:
        pytest.skip("graphviz 'dot' is not installed (apt-get install graphviz)")
    proc = subprocess.run([exe, "-Tsvg"], input=text, text=True, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr
    assert "<svg" in proc.stdout


def test_cli_graph_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    churn = str(EXAMPLES / "churn" / "pipeline.yaml")
    assert main(["graph", churn]) == 0
    assert capsys.readouterr().out.startswith("flowchart TD")
    for suffix, marker in ((".dot", "digraph"), (".html", "<!doctype html>"), (".mmd", "flowchart TD")):
        out = tmp_path / f"g{suffix}"
        assert main(["graph", churn, "-o", str(out)]) == 0
        assert out.read_text().startswith(marker)
    assert main(["graph", churn, "--format", "dot"]) == 0
    assert capsys.readouterr().out.startswith('digraph "churn-training"')
    assert main(["graph", str(tmp_path / "missing.yaml")]) == 1
    assert main(["graph", churn, "--format", "png"]) == 1  # a bad option value is a user error


def test_html_escapes_pipeline_text() -> None:
    page = html.render(graph_of(DEMO))
    assert "&lt;b&gt;not bold&lt;/b&gt;" in page and "<b>not bold</b>" not in page


def test_html_is_self_contained() -> None:
    page = html.render(graph_of(EXAMPLES / "sweep" / "pipeline.yaml"))
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "@import" not in page and "url(http" not in page
    assert "default-src 'none'" in page


def test_subpipeline_and_components_are_drawn() -> None:
    """SPEC §16-§17: a sub-pipeline is a cluster naming its file, a component step shows the
    component it uses, and dotted step names make one-word ids in every renderer."""
    root = Path(__file__).resolve().parents[2]
    loaded = load_checked(root / "examples" / "components" / "training.yaml")
    graph = build(loaded.index)
    prep = graph.clusters["g_prep"]
    assert prep.kind == "pipeline" and prep.lines[0] == "uses prep.yaml (prep)"
    assert graph.nodes["s_prep-clean"].subtitle == "uses components/clean.yaml"
    text = mermaid.render(graph)
    assert "s_prep-clean[" in text and "s_prep.clean" not in text
