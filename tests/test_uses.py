"""The loader's ``uses:`` lowering (SPEC §16-§17) in detail: overrides, bindings rewritten in
templates and conditions, the called pipeline's defaults and local paths, warnings and errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pipecast.api import load_checked
from pipecast.diagnostics import UserError


def _files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


COMPONENT = """
    pipecast: 1
    component: work
    run: {python: "m:f"}
    inputs: {n: int, label: {type: str, default: "x"}}
    outputs: {out: int}
    retry: {attempts: 2, delay: 5s}
    resources: {cpu: 1, memory: 1Gi}
    env: {A: "1", B: "2"}
"""

SUB = """
    pipecast: 1
    name: sub
    schedule: {cron: "0 1 * * *"}
    params:
      n: {type: int, default: 1}
      tag: {type: str, default: "t"}
    defaults: {retry: {attempts: 5}, image: "img:sub"}
    steps:
      data:
        import: {uri: "data/raw.csv", type: Dataset}
      one:
        run: {python: "m:f"}
        inputs: {n: "{{ params.n }}", text: "n={{ params.n }} \\\\{{ literal }} {{ params.tag }}", d: "{{ steps.data.outputs.artifact }}"}
        outputs: {out: int}
      gate:
        when: "params.n > 2 and steps.one.outputs.out > params.n"
        steps:
          two:
            run: {python: "m:f"}
            inputs: {x: "{{ steps.one.outputs.out }}"}
            after: [data]
    outputs: {out: "{{ steps.one.outputs.out }}"}
"""


def test_component_overrides_merge_field_by_field(tmp_path: Path) -> None:
    _files(
        tmp_path,
        {
            "lib/work.yaml": COMPONENT,
            "p.yaml": """
        pipecast: 1
        name: p
        defaults: {timeout: 1h}
        steps:
          a:
            uses: ./lib/work.yaml
            inputs: {n: 3}
            retry: {attempts: 4}
            env: {B: "9", C: "3"}
            timeout: 10m
    """,
        },
    )
    loaded = load_checked(tmp_path / "p.yaml")
    a = loaded.pipeline.steps["a"]
    assert a.inputs == {"n": 3, "label": "x"}
    assert a.retry is not None and (a.retry.attempts, a.retry.delay) == (4, 5.0)
    assert a.env == {"A": "1", "B": "9", "C": "3"}
    assert a.timeout == 600.0
    eff = loaded.index.effective(loaded.index.nodes["a"])
    assert eff.resources.memory == "1Gi" and eff.timeout == 600.0
    assert a.component is not None and a.component.path == "lib/work.yaml"


def test_subpipeline_bindings_defaults_paths_and_schedule(tmp_path: Path) -> None:
    _files(
        tmp_path,
        {
            "lib/sub.yaml": SUB,
            "p.yaml": """
        pipecast: 1
        name: p
        params: {k: {type: int, default: 7}}
        steps:
          s:
            uses: ./lib/sub.yaml
            inputs: {n: "{{ params.k }}", tag: "{ok}"}
    """,
        },
    )
    loaded = load_checked(tmp_path / "p.yaml")
    (warning,) = [w for w in loaded.warnings if w.code == "subpipeline-schedule"]
    assert "the schedule of pipeline 'sub'" in warning.message and warning.line == 7
    group = loaded.pipeline.steps["s"]
    one = group.steps["s.one"]
    assert one.inputs["n"] == "{{ params.k }}"
    assert one.inputs["text"] == "n={{ params.k }} \\{{ literal }} {ok}"
    assert one.inputs["d"] == "{{ steps.s.data.outputs.artifact }}"
    assert one.retry is not None and one.retry.attempts == 5 and one.image == "img:sub"  # its own defaults
    assert group.steps["s.data"].import_.uri == "lib/data/raw.csv"  # relative to the top file now
    gate = group.steps["s.gate"]
    assert gate.when == "(params.k > 2) and (steps.s.one.outputs.out > params.k)"
    assert gate.steps["s.two"].after == ["s.data"]  # names are unique in the called pipeline
    assert group.outputs == {"out": "{{ steps.s.one.outputs.out }}"}


def test_literal_bindings_become_condition_literals(tmp_path: Path) -> None:
    _files(
        tmp_path,
        {
            "lib/sub.yaml": SUB,
            "p.yaml": """
        pipecast: 1
        name: p
        steps:
          s:
            uses: ./lib/sub.yaml
            inputs: {n: 4}
    """,
        },
    )
    group = load_checked(tmp_path / "p.yaml").pipeline.steps["s"]
    assert group.steps["s.gate"].when == "(4 > 2) and (steps.s.one.outputs.out > 4)"
    assert group.steps["s.one"].inputs["n"] == 4 and group.steps["s.one"].inputs["text"].startswith("n=4 ")


def test_subpipeline_step_errors(tmp_path: Path) -> None:
    _files(
        tmp_path,
        {
            "lib/sub.yaml": SUB,
            "p.yaml": """
        pipecast: 1
        name: p
        steps:
          s:
            uses: ./lib/sub.yaml
            inputs: {m: 1}
            retry: {attempts: 2}
    """,
        },
    )
    with pytest.raises(UserError) as info:
        load_checked(tmp_path / "p.yaml")
    (diag,) = info.value.diagnostics
    assert "'retry' does not apply to a step that uses a pipeline" in diag.message and diag.line == 8


def test_errors_inside_a_called_pipeline_name_its_file(tmp_path: Path) -> None:
    _files(
        tmp_path,
        {
            "lib/bad.yaml": """
        pipecast: 1
        name: bad
        steps:
          a:
            run: {python: "m:f"}
            inputs: {x: "{{ steps.nope.outputs.y }}"}
    """,
            "p.yaml": """
        pipecast: 1
        name: p
        steps:
          s:
            uses: ./lib/bad.yaml
    """,
        },
    )
    with pytest.raises(UserError) as info:
        load_checked(tmp_path / "p.yaml")
    diag = info.value.diagnostics[0]
    assert diag.file is not None and diag.file.endswith("bad.yaml") and diag.line == 7
    assert "nope" in diag.message


def test_missing_file_and_not_a_component(tmp_path: Path) -> None:
    _files(
        tmp_path,
        {
            "lib/x.yaml": "a: 1\n",
            "p.yaml": """
        pipecast: 1
        name: p
        steps:
          a:
            uses: ./lib/missing.yaml
          b:
            uses: ./lib/x.yaml
    """,
        },
    )
    with pytest.raises(UserError) as info:
        load_checked(tmp_path / "p.yaml")
    messages = [(d.line, d.message) for d in info.value.diagnostics]
    assert messages[0][0] == 6 and "no such file: './lib/missing.yaml'" in messages[0][1]
    assert messages[1][0] == 8 and "is neither a component file" in messages[1][1]


def test_a_doubling_chain_of_subpipelines_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipecast.passes import uses

    monkeypatch.setattr(uses, "MAX_INLINED_STEPS", 100)
    files = {
        "l0.yaml": "pipecast: 1\nname: l0\nsteps:\n  a: {run: {python: 'm:f'}}\n  b: {run: {python: 'm:f'}}\n"
    }
    for i in range(1, 12):
        files[f"l{i}.yaml"] = (
            f"pipecast: 1\nname: l{i}\nsteps:\n  x: {{uses: ./l{i - 1}.yaml}}\n  y: {{uses: ./l{i - 1}.yaml}}\n"
        )
    _files(tmp_path, files)
    with pytest.raises(UserError) as info:
        load_checked(tmp_path / "l11.yaml")
    (diag,) = info.value.diagnostics
    assert diag.code == "too-big" and "grows past 100 steps through sub-pipelines" in diag.message


def test_import_paths_follow_their_file_through_nesting(tmp_path: Path) -> None:
    _files(
        tmp_path,
        {
            "a/b/inner.yaml": """
            pipecast: 1
            name: inner
            params: {given: {type: Dataset, default: "x.csv"}}
            steps:
              own:
                import: {uri: "data/own.csv", type: Dataset}
              bound:
                import: {uri: "{{ params.given }}", type: Dataset}
        """,
            "a/middle.yaml": """
            pipecast: 1
            name: middle
            steps:
              m:
                uses: ./b/inner.yaml
                inputs: {given: "mid.csv"}
        """,
            "p.yaml": """
            pipecast: 1
            name: p
            steps:
              top:
                uses: ./a/middle.yaml
        """,
        },
    )
    top = load_checked(tmp_path / "p.yaml").pipeline.steps["top"]
    inner = top.steps["top.m"]
    assert inner.steps["top.m.own"].import_.uri == "a/b/data/own.csv"
    assert inner.steps["top.m.bound"].import_.uri == "a/mid.csv"  # relative to middle.yaml
