"""``pipecast report``: the run report page from a real simulator run (no browser here)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipecast.cli import main
from pipecast.diagnostics import UserError
from pipecast.simulator.run import read_record
from pipecast.viz.report import critical_path, find_run, load_rows, write_report


def test_demo_run_ends_in_every_status(demo_run: tuple[Path, dict]) -> None:
    _folder, record = demo_run
    st = {k: v["status"] for k, v in record["steps"].items()}
    assert record["status"] == "failed"
    assert st["prep"] == st["work[0]"] == st["work[1]"] == st["flaky"] == "succeeded"
    assert st["never"] == "skipped" and st["instead"] == "succeeded"
    assert st["boom"] == "failed" and st["late"] == "not_run" and st["finally"] == "succeeded"
    assert record["steps"]["flaky"]["attempts"] == 2


def test_attempts_and_retry_waits_from_the_record(demo_run: tuple[Path, dict]) -> None:
    folder, _record = demo_run
    from pipecast.loader import load

    record = read_record(folder)
    index = load(record["file"]).index
    rows = {r.key: r for r in load_rows(record, index)}
    flaky = rows["flaky"]
    assert [a.ok for a in flaky.attempts] == [False, True]
    assert not any(a.estimated for a in flaky.attempts)
    wait = flaky.attempts[1].start - flaky.attempts[0].end
    assert 0.04 <= wait < 2.0  # the 50 ms retry delay, measured
    assert [a.ok for a in rows["boom"].attempts] == [False, False]
    # Without per-attempt times (older records) attempts are laid out from the policy.
    entry = dict(record["steps"]["flaky"])
    entry.pop("attempt_times")
    estimated = load_rows({"steps": {"flaky": entry}}, index)[0].attempts
    assert len(estimated) == 2 and all(a.estimated for a in estimated)
    assert estimated[1].start - estimated[0].end == pytest.approx(0.05, abs=0.01)


def test_critical_path_follows_dependencies(demo_run: tuple[Path, dict]) -> None:
    folder, _ = demo_run
    from pipecast.loader import load

    record = read_record(folder)
    index = load(record["file"]).index
    path = critical_path(load_rows(record, index), index)
    assert path[0] == "prep" and path[-1] == "finally"
    assert "boom" in path and path.index("boom") < path.index("finally")
    assert "late" not in path  # never ran


def test_report_page(demo_run: tuple[Path, dict], tmp_path: Path) -> None:
    folder, record = demo_run
    out = write_report(folder, tmp_path / "sub" / "r.html")
    page = out.read_text()
    for key, entry in record["steps"].items():
        assert f'data-key="{key}" data-status="{entry["status"]}"' in page
    # Status colours on the graph, critical path outlined, the failure and the reason shown.
    assert re.search(r'class="pc-node st-failed[^"]*" data-id="s_boom"', page)
    assert re.search(r'class="pc-node st-not_run[^"]*" data-id="s_late"', page)
    assert re.search(r'class="pc-node st-skipped[^"]*" data-id="s_never"', page)
    assert re.search(r'class="pc-node st-succeeded pc-critical" data-id="s_prep"', page)
    assert "injected failure" in page
    assert "2 runs: 2 succeeded" in page  # the fan-out badge
    # Artifact and log links are relative to the page, and they resolve.
    links = re.findall(r'href="([^"]+)"', page)
    assert links and not any(link.startswith(("http", "/", "file:")) for link in links)
    for link in links:
        assert (out.parent / link).exists(), link
    assert "prepared 2 items" in page  # a log tail
    assert "not-a-real-token" not in page
    data = json.loads(
        re.search(r'<script type="application/json" id="pc-data">(.*?)</script>', page, re.S)[1]
    )
    assert data["items"]["s_flaky"]["settings"]["instances"]["flaky"].startswith("succeeded, 2 attempt(s)")
    assert data["items"]["s_flaky"]["settings"]["secrets"] == {"API_TOKEN": "viz-demo-token"}
    # Deterministic for a given run and output place.
    assert write_report(folder, tmp_path / "sub" / "r2.html").read_text() == page


def test_cli_report_and_errors(demo_run: tuple[Path, dict], capsys: pytest.CaptureFixture[str]) -> None:
    folder, _ = demo_run
    assert main(["report", "demo", "--run-dir", str(folder.parent)]) == 0
    assert capsys.readouterr().out.strip() == str(folder / "report.html")
    assert main(["report", "dmeo", "--run-dir", str(folder.parent)]) == 1
    assert "did you mean 'demo'?" in capsys.readouterr().err
    with pytest.raises(UserError, match="no run"):
        find_run("nothing", folder.parent / "missing")


def test_run_report_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from .conftest import DEMO

    secrets = tmp_path / "secrets.env"
    secrets.write_text("viz-demo-token=abc\n")
    args = ["run", str(DEMO), "--run-dir", str(tmp_path), "--run-id", "r1", "--containers", "host"]
    assert main([*args, "--secrets", str(secrets), "--fail", "boom", "--report"]) == 1
    out = capsys.readouterr().out
    assert f"report: {tmp_path / 'r1' / 'report.html'}" in out
    assert 'data-key="boom" data-status="failed"' in (tmp_path / "r1" / "report.html").read_text()
