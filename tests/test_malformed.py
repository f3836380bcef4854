"""The malformed-pipeline corpus: every file fails with its message, at its line and YAML path,
and the CLI exits 1 without a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipecast.api import load_checked
from pipecast.cli import main
from pipecast.diagnostics import UserError, format_path

HERE = Path(__file__).parent / "malformed"
EXPECTED = yaml.safe_load((HERE / "expected.yaml").read_text())
FILES = sorted(p.name for p in HERE.iterdir() if p.is_file() and p.name != "expected.yaml")


def test_corpus_is_complete() -> None:
    assert len(FILES) >= 35
    assert sorted(EXPECTED) == FILES, "every malformed file needs an entry in expected.yaml"


@pytest.mark.parametrize("name", FILES)
def test_error_message_and_location(name: str) -> None:
    with pytest.raises(UserError) as info:
        load_checked(HERE / name)
    got = [(d.line, format_path(d.path) if d.path else None, d.message) for d in info.value.diagnostics]
    want = EXPECTED[name]
    assert len(got) == len(want), got
    for (line, path, message), exp in zip(got, want, strict=True):
        assert exp["message"] in message
        assert line == exp["line"], (message, line)
        assert path == exp["path"], (message, path)
    for d, exp in zip(info.value.diagnostics, want, strict=True):
        # An error inside a used component file is reported in that file (SPEC §16).
        assert d.file == str(HERE / exp.get("file", name))
        if "column" in exp:
            assert d.column == exp["column"], (d.message, d.column)


@pytest.mark.parametrize("name", FILES)
def test_cli_exits_1_without_traceback(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(HERE / name)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert EXPECTED[name][0]["message"] in err
    first = EXPECTED[name][0]
    if first["line"] is not None:
        assert f"{first.get('file', name)}:{first['line']}:" in err


def test_condition_error_points_at_the_column() -> None:
    with pytest.raises(UserError) as info:
        load_checked(HERE / "when_syntax.yaml")
    (diag,) = info.value.diagnostics
    line = (HERE / "when_syntax.yaml").read_text().splitlines()[diag.line - 1]
    assert line[diag.column - 1] == "="
