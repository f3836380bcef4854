"""The feature table (``pipecast targets --table``) follows the backends' declarations, and the
README's copy is current."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipecast import features_table, registry
from pipecast.backend import Feature
from pipecast.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"
CELL = {"native": "yes", "runtime": "runtime", "approximate": "approx", "unsupported": "no"}


def test_readme_table_is_current() -> None:
    assert features_table.check_readme(README), (
        f"the README's feature table is stale: run `{features_table.REFRESH}`"
    )


def test_cells_and_notes_follow_the_declarations() -> None:
    text = features_table.render_table("markdown")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    notes = dict(re.findall(r"^(\d+)\. (.*)$", text, re.M))
    names = registry.available()
    assert rows["feature"].strip("| ").split(" | ")[1:] == names
    for feature in Feature:
        cells = rows[feature.value].strip("| ").split(" | ")[1:]
        for name, cell in zip(names, cells, strict=True):
            sup = registry.get(name).support(feature)
            word, _, ref = cell.partition(" ")
            assert word == CELL[sup.level], (name, feature)
            if sup.level == "native":
                assert not ref
                continue
            note = notes[ref.strip("[]")]
            assert note.startswith(f"{name}, {feature.value}: ")
            # Why not / how: the backend's note and what to do instead are in the footnote.
            for part in (sup.note, sup.instead):
                assert features_table._md_escape(part) in note


def test_text_format_aligns_columns(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["targets", "--table", "--format", "text"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["feature", *registry.available()]
    assert set(lines[1]) == {"-"}
    assert len(lines[2 : 2 + len(Feature)]) == len(Feature)


def test_check_and_update_readme(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "README.md"
    stale.write_text(f"# x\n\n{features_table.START}\nold table\n{features_table.END}\n\nafter\n")
    assert main(["targets", "--check-readme", str(stale)]) == 1
    assert features_table.REFRESH in capsys.readouterr().err
    assert main(["targets", "--update-readme", str(stale)]) == 0
    assert main(["targets", "--check-readme", str(stale)]) == 0
    text = stale.read_text()
    assert text.startswith("# x\n\n") and text.endswith("\n\nafter\n") and "old table" not in text
    assert not features_table.update_readme(stale)  # idempotent


def test_missing_markers_are_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = tmp_path / "README.md"
    bare.write_text("# no markers\n")
    assert main(["targets", "--check-readme", str(bare)]) == 1
    assert "feature-table:start" in capsys.readouterr().err


def test_readme_lists_every_first_party_target() -> None:
    header = features_table.readme_block().splitlines()[3]
    assert header.strip("| ").split(" | ")[1:] == ["local", *sorted(registry.DISTRIBUTED)]


def test_a_target_not_installed_is_named_not_dropped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without ``pipecast-kubeflow`` the README check fails naming it (it does not pass on a
    table without the column), and ``--table`` says which first-party target is missing."""
    installed = {n: ep for n, ep in registry._entry_points().items() if n != "kubeflow"}
    monkeypatch.setattr(registry, "_entry_points", lambda: installed)
    monkeypatch.setattr(registry, "get", registry.get.__wrapped__)
    assert main(["targets", "--check-readme", str(README)]) == 1
    err = capsys.readouterr().err
    assert "target 'kubeflow' is not installed" in err and "pip install pipecast-kubeflow" in err
    assert "Traceback" not in err
    assert main(["targets", "--table"]) == 0
    out, err = capsys.readouterr()
    assert "kubeflow" not in out.splitlines()[0]
    assert "note: target 'kubeflow' is not installed (pip install pipecast-kubeflow)" in err
