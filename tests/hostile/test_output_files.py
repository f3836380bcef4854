"""Issue 15: compiled files are written as a whole set (or not at all), with the umask's
mode, and a recompile removes what the last compile of the pipeline wrote and this one
does not."""

from __future__ import annotations

import os
import resource
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PIPE = """pipecast: 1
name: sets
steps:
  STEP: {run: {python: "m:f"}, outputs: {output: int}}
  other: {run: {python: "m:f"}, inputs: {x: "{{ steps.STEP.outputs.output }}"}}
"""


def _cli(args, cwd, *, umask=None, fsize=None):
    def limits():
        if umask is not None:
            os.umask(umask)
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run(
        [sys.executable, "-m", "pipecast", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        preexec_fn=limits,
        check=False,
    )


def _pipeline(tmp_path, step="first"):
    path = tmp_path / "p.yaml"
    path.write_text(PIPE.replace("STEP", step))
    return path


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_files_get_the_umask_mode(tmp_path):
    path = _pipeline(tmp_path)
    for mask, mode in ((0o022, 0o644), (0o027, 0o640)):
        out = tmp_path / f"out{mask:o}"
        res = _cli(["compile", str(path), "-t", "airflow", "-o", str(out)], tmp_path, umask=mask)
        assert res.returncode == 0, res.stderr
        res = _cli(["export", str(path), "-o", str(out / "p.json")], tmp_path, umask=mask)
        assert res.returncode == 0, res.stderr
        files = [p for p in out.rglob("*") if p.is_file()]
        assert files
        for p in files:
            assert stat.S_IMODE(p.stat().st_mode) == mode, (p, oct(p.stat().st_mode))


def test_a_recompile_removes_stale_files_of_that_pipeline_only(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    res = _cli(["compile", str(_pipeline(tmp_path)), "-t", "stepfunctions", "-o", str(out)], tmp_path)
    assert res.returncode == 0, res.stderr
    assert (out / "specs" / "first.json").exists()
    res = _cli(
        ["compile", str(_pipeline(tmp_path, "second")), "-t", "stepfunctions", "-o", str(out)], tmp_path
    )
    assert res.returncode == 0, res.stderr
    assert not (out / "specs" / "first.json").exists()
    assert (out / "specs" / "second.json").exists()
    assert "removed" in res.stderr and "first.json" in res.stderr
    assert (out / "mine.txt").read_text() == "keep"
    assert not [p for p in out.iterdir() if p.name.startswith(".pipecast-") and p.is_dir()]


def test_a_full_disk_writes_nothing_and_says_so(tmp_path):
    out = tmp_path / "out"
    res = _cli(["compile", str(_pipeline(tmp_path)), "-t", "stepfunctions", "-o", str(out)], tmp_path)
    assert res.returncode == 0, res.stderr
    before = _tree(out)
    # A file size limit makes every write past 300 bytes fail, as a full disk does.
    res = _cli(
        ["compile", str(_pipeline(tmp_path, "second")), "-t", "stepfunctions", "-o", str(out)],
        tmp_path,
        fsize=300,
    )
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr and "cannot write the compiled files" in res.stderr
    assert _tree(out) == before


@pytest.mark.parametrize("target", ["compile", "export", "run"])
def test_output_on_a_file_or_read_only_folder_is_a_user_error(tmp_path, target):
    path = _pipeline(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("x")
    args = {
        "compile": ["compile", str(path), "-t", "airflow", "-o", str(afile)],
        "export": ["export", str(path), "-o", str(tmp_path)],
        "run": ["run", str(path), "--run-dir", str(afile), "--dry-run"],
    }[target]
    res = _cli(args, tmp_path)
    assert res.returncode in (0, 1), res.stderr
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr
    if target != "run":  # a dry run writes nothing
        assert res.returncode == 1


RUN = """pipecast: 1
name: big
steps:
  s: {run: {python: "steps:big"}, inputs: {n: 200000}, outputs: {output: str}}
  t: {run: {python: "steps:big"}, inputs: {n: 1}, outputs: {output: str}, after: [s]}
"""


def test_a_run_on_a_full_disk_fails_with_the_reason(tmp_path):
    (tmp_path / "steps.py").write_text("def big(n):\n    return 'x' * n\n")
    path = tmp_path / "p.yaml"
    path.write_text(RUN)
    runs = tmp_path / "runs"
    res = _cli(
        ["run", str(path), "--run-dir", str(runs), "--run-id", "r1", "--containers", "host"],
        tmp_path,
        fsize=50_000,
    )
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr
    assert "the run stopped: cannot write" in res.stderr and "--resume r1" in res.stderr
    show = _cli(["show", "r1", "--run-dir", str(runs), "--json"], tmp_path)
    import json

    assert json.loads(show.stdout)["status"] in ("failed", "interrupted")
