"""Shared fixtures of the viz tests: one simulator run of tests/viz/demo that ends in every
status (succeeded, failed, skipped, not_run, plus a retried step and a fan-out)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

DEMO = Path(__file__).parent / "demo" / "pipeline.yaml"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from pipecast.simulator import run_pipeline

    root = tmp_path_factory.mktemp("runs")
    record = run_pipeline(
        str(DEMO),
        run_dir=root,
        run_id="demo",
        fail={"flaky": 1, "boom": None},
        secrets={"viz-demo-token": "not-a-real-token"},
        max_parallel=2,
        containers="host",
    )
    return root / "demo", record


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "Chromium is not installed: the browser tests need Debian's 'chromium' package; "
            "run scripts/install-tools.sh (as root) to install it"
        )
    return path


@pytest.fixture(scope="session")
def browser(chromium_path: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, args=BROWSER_ARGS)
        yield b
        b.close()
