"""The graph and report pages in headless Chromium (Debian's package, driven by Playwright).

Each page must load from file:// with no console error and no request but the page itself,
show the expected steps and statuses, open the settings panel on a click and zoom.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipecast.cli import main

from .conftest import EXAMPLES

pytestmark = pytest.mark.browser


def open_page(browser: Any, path: Path) -> tuple[Any, list[str], list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    requests: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None,
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.resolve().as_uri())
    page.wait_for_selector("#pc-graph .pc-node")
    return page, problems, requests


def zoom_and_pan(page: Any) -> None:
    stage = page.locator("#pc-stage")
    before = float(stage.get_attribute("data-zoom"))
    page.click("#pc-zoom-in")
    after = float(stage.get_attribute("data-zoom"))
    assert after == pytest.approx(before * 1.25, rel=1e-3)
    box = stage.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, 400)  # scroll down = zoom out around the pointer
    page.wait_for_function(f"document.getElementById('pc-stage').dataset.zoom < {after}")
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 80, box["y"] + box["height"] / 2 + 40, steps=4)
    page.mouse.up()
    assert stage.get_attribute("data-panned") == "1"


def test_graph_page(browser: Any, tmp_path: Path) -> None:
    out = tmp_path / "churn.html"
    assert main(["graph", str(EXAMPLES / "churn" / "pipeline.yaml"), "-o", str(out)]) == 0
    page, problems, requests = open_page(browser, out)
    names = page.locator(".pc-node").evaluate_all("els => els.map(e => e.dataset.name)")
    assert sorted(names) == ["alert", "evaluate", "finally", "ingest", "register", "train"]
    clusters = page.locator(".pc-cluster").evaluate_all("els => els.map(e => e.dataset.name)")
    assert sorted(clusters) == ["else", "per_region", "publish"]
    assert page.locator(".pc-edge-after, .pc-edge-finally").count() == 1  # the finally edge
    page.locator('.pc-node[data-name="train"]').click()
    panel = page.locator("#pc-panel")
    assert panel.get_attribute("data-selected") == "train"
    text = panel.inner_text()
    for expected in ("retry", '"attempts": 3', "nvidia-t4", "timeout", "1h", "churn.steps:train", "outputs"):
        assert expected in text, (expected, text)
    page.locator('.pc-cluster[data-name="per_region"] .pc-cluster-title').click()
    assert panel.get_attribute("data-selected") == "per_region"
    assert "parallelism" in panel.inner_text()
    zoom_and_pan(page)
    page.screenshot(path=str(tmp_path / "graph.png"), full_page=True)
    assert (tmp_path / "graph.png").stat().st_size > 10_000
    assert problems == []
    assert requests == [out.resolve().as_uri()]
    page.close()


def test_report_page(browser: Any, demo_run: tuple[Path, dict], tmp_path: Path) -> None:
    folder, record = demo_run
    out = tmp_path / "report.html"
    assert main(["report", str(folder), "-o", str(out)]) == 0
    page, problems, requests = open_page(browser, out)
    assert page.locator("#pc-run-status").inner_text() == "failed"
    for key, entry in record["steps"].items():
        row = page.locator(f'#pc-steps tr[data-key="{key}"]')
        assert row.count() == 1, key
        assert row.locator(".pill").first.inner_text() == entry["status"]
    for status, step in (
        ("failed", "boom"),
        ("not_run", "late"),
        ("skipped", "never"),
        ("succeeded", "flaky"),
    ):
        assert page.locator(f'.pc-node.st-{status}[data-name="{step}"]').count() == 1, (status, step)
    # Gantt: two attempts of the retried step with the wait between them; critical path marked.
    flaky = page.locator('#pc-gantt g[data-key="flaky"]')
    assert flaky.locator(".g-attempt").count() == 2
    assert flaky.locator(".g-wait").count() == 1
    assert page.locator("#pc-gantt .g-row.pc-critical").count() >= 3
    assert page.locator(".pc-node.pc-critical").count() >= 3
    page.locator('.pc-node[data-name="flaky"]').click()
    text = page.locator("#pc-panel").inner_text()
    assert "succeeded, 2 attempt(s)" in text and "viz-demo-token" in text
    page.locator('#pc-steps tr[data-key="prep"] summary').click()
    assert "prepared 2 items" in page.locator('#pc-steps tr[data-key="prep"] pre').inner_text()
    zoom_and_pan(page)
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert problems == []
    assert requests == [out.resolve().as_uri()]
    page.close()
