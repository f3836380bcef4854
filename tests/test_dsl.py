"""The Python DSL builds the IR the YAML format describes (SPEC §1-§5), with errors at Python lines."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Annotated, TypedDict

import pytest

from pipecast.diagnostics import UserError
from pipecast.dsl import (
    IN,
    OUT,
    PIPELINE,
    Dataset,
    Input,
    Model,
    Output,
    Param,
    Retry,
    container_step,
    finally_,
    for_each,
    load_python_pipeline,
    otherwise,
    pipeline,
    step,
    when,
)
from pipecast.ir import condition
from pipecast.loader import load
from pipecast.passes.parse import parse_condition

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
HERE = Path(__file__).read_text().splitlines()
MOD = __name__


def line_of(marker: str) -> int:
    """The 1-based line of this file that holds ``marker`` (a comment on the line under test)."""
    hits = [i for i, text in enumerate(HERE, 1) if text.rstrip().endswith(marker)]
    assert len(hits) == 1, marker
    return hits[0]


# --------------------------------------------------------------------- steps used below


@step(output="rows", retry=Retry(attempts=2, delay="10ms"), timeout="1m")
def prep(uri: str, table: Output[Dataset], limit: int = 10) -> int:
    return limit


class Scores(TypedDict):
    auc: float
    loss: float


@step(resources={"cpu": 2, "memory": "1Gi"})
def fit(table: Input[Dataset], region: str, model: Output[Model]) -> Scores:
    return {"auc": 0.9, "loss": 0.1}


@step
def report(values: list, best: float = 0.0) -> None:
    print(values, best)


@step
def tell(status: str) -> None:
    print(status)


@step(output="value")
def score(x: float) -> float:
    return x


best_of = container_step(
    "best_of",
    image="python:3.11-slim",
    command=[
        "python",
        "-c",
        "import json,sys; open(sys.argv[2],'w').write(str(max(json.loads(sys.argv[1]))))",
    ],
    args=[IN.values, OUT.best],
    outputs={"best": float},
)


# --------------------------------------------------------------------- IR shape


def test_steps_groups_finally_build_the_expected_ir() -> None:
    @pipeline(name="demo", defaults={"image": "python:3.11-slim"}, schedule="0 1 * * *")
    def demo(
        uri: str = "file:///x.csv",
        regions: list = Param(["eu", "us"], description="where"),
        min_auc: Annotated[float, "threshold"] = 0.5,
        dry: bool = False,
    ):
        """Demo pipeline."""
        p = prep(uri=uri)
        loop = for_each(regions, as_="region", parallelism=2, name="per_region")
        with loop as region:
            f = fit(table=p.outputs.table, region=region)
            loop.outputs(aucs=f.outputs.auc, models=f.outputs.model)
        b = best_of(values=loop.outputs.aucs)
        with when((b.outputs.best >= min_auc) & ~dry, name="publish") as publish:
            report(values=loop.outputs.models, after=[p])
        with publish.otherwise():
            report(values=loop.outputs.aucs, best=b.outputs.best)
        finally_(tell, status=PIPELINE.status)
        return {"best": b.outputs.best}

    ir, _ = demo.build()
    assert ir.to_data() == {
        "pipecast": 1,
        "name": "demo",
        "description": "Demo pipeline.",
        "schedule": {"cron": "0 1 * * *"},
        "defaults": {"image": "python:3.11-slim"},
        "params": {
            "uri": {"type": "str", "default": "file:///x.csv"},
            "regions": {"type": "list", "default": ["eu", "us"], "description": "where"},
            "min_auc": {"type": "float", "default": 0.5, "description": "threshold"},
            "dry": {"type": "bool", "default": False},
        },
        "steps": {
            "prep": {
                "run": {"python": f"{MOD}:prep"},
                "inputs": {"uri": "{{ params.uri }}"},
                "outputs": {"table": "Dataset", "rows": "int"},
                "retry": {"attempts": 2, "delay": 0.01},
                "timeout": 60.0,
            },
            "per_region": {
                "for_each": "{{ params.regions }}",
                "as": "region",
                "parallelism": 2,
                "steps": {
                    "fit": {
                        "run": {"python": f"{MOD}:fit"},
                        "inputs": {"table": "{{ steps.prep.outputs.table }}", "region": "{{ region }}"},
                        "outputs": {"model": "Model", "auc": "float", "loss": "float"},
                        "resources": {"cpu": 2.0, "memory": "1Gi"},
                    }
                },
                "outputs": {"aucs": "{{ steps.fit.outputs.auc }}", "models": "{{ steps.fit.outputs.model }}"},
            },
            "best_of": {
                "run": {
                    "image": "python:3.11-slim",
                    "command": best_of._run["command"],
                    "args": ["{{ inputs.values }}", "{{ outputs.best }}"],
                },
                "inputs": {"values": "{{ steps.per_region.outputs.aucs }}"},
                "outputs": {"best": "float"},
            },
            "publish": {
                "when": "steps.best_of.outputs.best >= params.min_auc and not params.dry",
                "steps": {
                    "report": {
                        "run": {"python": f"{MOD}:report"},
                        "inputs": {"values": "{{ steps.per_region.outputs.models }}"},
                        "after": ["prep"],
                    }
                },
                "else": {
                    "steps": {
                        "report_2": {
                            "run": {"python": f"{MOD}:report"},
                            "inputs": {
                                "values": "{{ steps.per_region.outputs.aucs }}",
                                "best": "{{ steps.best_of.outputs.best }}",
                            },
                        }
                    }
                },
            },
        },
        "finally": {"run": {"python": f"{MOD}:tell"}, "inputs": {"status": "{{ pipeline.status }}"}},
        "outputs": {"best": "{{ steps.best_of.outputs.best }}"},
    }


def test_required_params_loop_item_keys_and_when_outputs() -> None:
    @pipeline
    def keys_demo(cells: list, threshold: float = Param(description="cut-off")):
        with for_each(cells, as_="cell") as cell:
            s = score(x=cell["x"])
            score(x=cell.y, name="score_y")
            gate = when(s.output > threshold)
            with gate:
                gate.outputs(v=score(x=s.output, name="hi").output)
            with otherwise():
                gate.outputs(v=score(x=0, name="lo").output)
        report(values=[1, 2], best=3)

    data = keys_demo.build()[0].to_data()
    assert data["name"] == "keys-demo"
    assert data["params"] == {
        "cells": {"type": "list"},
        "threshold": {"type": "float", "description": "cut-off"},
    }
    loop = data["steps"]["for_cell"]
    assert loop["for_each"] == "{{ params.cells }}" and loop["as"] == "cell"
    assert loop["steps"]["score"]["inputs"] == {"x": "{{ cell.x }}"}
    assert loop["steps"]["score_y"]["inputs"] == {"x": "{{ cell.y }}"}
    gate = loop["steps"]["when"]
    assert gate["when"] == "steps.score.outputs.value > params.threshold"
    assert gate["outputs"] == {"v": "{{ steps.hi.outputs.value }}"}
    assert gate["else"] == {
        "steps": {
            "lo": {"run": {"python": f"{MOD}:score"}, "inputs": {"x": 0}, "outputs": {"value": "float"}}
        },
        "outputs": {"v": "{{ steps.lo.outputs.value }}"},
    }
    assert data["steps"]["report"]["inputs"] == {"values": [1, 2], "best": 3}


def test_nested_loops_fstrings_literal_lists_and_after_method() -> None:
    @pipeline(name="nested")
    def nested(tag: str = "t"):
        first = score(x=1)
        outer = for_each([0.1, 0.2], as_="lr")
        with outer as lr:
            inner = for_each([{"d": 1}, {"d": 2}], as_="cfg", name="inner")
            with inner as cfg:
                s = score(x=lr).after(first)
                score(x=cfg.d, name="depth")
                report(values=[0], best=s.output, name="cell_report").after(s, "first")
                inner.outputs(v=s.output)
            outer.outputs(v=inner.outputs.v)
        tell(status=f"{tag}-{PIPELINE.run_id}-{PIPELINE.name}")
        report(values=outer.outputs.v)

    data = nested.build()[0].to_data()
    outer = data["steps"]["for_lr"]
    assert outer["for_each"] == [0.1, 0.2]
    inner = outer["steps"]["inner"]
    assert inner["for_each"] == [{"d": 1}, {"d": 2}] and inner["as"] == "cfg"
    assert inner["steps"]["score_2"]["after"] == ["score"]
    assert inner["steps"]["cell_report"]["after"] == ["score_2", "first"]
    assert data["steps"]["tell"]["inputs"] == {
        "status": "{{ params.tag }}-{{ pipeline.run_id }}-{{ pipeline.name }}"
    }
    assert outer["outputs"] == {"v": "{{ steps.inner.outputs.v }}"}
    assert inner["steps"]["depth"]["inputs"] == {"x": "{{ cfg.d }}"}


# --------------------------------------------------------------------- conditions


@pytest.mark.parametrize(
    ("build", "text"),
    [
        (lambda a, b, f: (a >= b) & ~f, "params.a >= params.b and not params.f"),
        (lambda a, b, f: (a > 1) | (b < 2) & f, "params.a > 1 or params.b < 2 and params.f"),
        (lambda a, b, f: ((a > 1) | (b < 2)) & f, "(params.a > 1 or params.b < 2) and params.f"),
        (lambda a, b, f: ~((a == 1) | f), "not (params.a == 1 or params.f)"),
        (lambda a, b, f: a.isin([1, 2.5]) & (b != 0), "params.a in [1, 2.5] and params.b != 0"),
        (lambda a, b, f: (a <= b) & (b > -3) & f, "params.a <= params.b and params.b > -3 and params.f"),
        (lambda a, b, f: f & (a < 0) | (b == 7), "params.f and params.a < 0 or params.b == 7"),
        (lambda a, b, f: "params.a > 3", "params.a > 3"),
        (lambda a, b, f: f, "params.f"),
    ],
)
def test_operator_conditions_render_to_spec_text(build, text) -> None:
    @pipeline(name="cond")
    def cond_demo(a: float = 1.0, b: float = 2.0, f: bool = True):
        with when(build(a, b, f), name="gate"):
            score(x=a)

    data = cond_demo.build()[0].to_data()
    written = data["steps"]["gate"]["when"]
    assert written == text
    # The text parses back to the same expression the operators built.
    assert condition.to_text(parse_condition(written)) == condition.to_text(parse_condition(text))


def test_string_literals_in_conditions_are_quoted() -> None:
    @pipeline(name="strcond")
    def strcond(mode: str = "fast"):
        with when((mode == "it's") | mode.isin(["a", "b"]), name="gate"):
            score(x=1)

    assert strcond.build()[0].steps["gate"].when == "params.mode == 'it\\'s' or params.mode in ['a', 'b']"


# --------------------------------------------------------------------- errors at Python lines


def _error(build) -> tuple[str, int | None]:
    with pytest.raises(UserError) as info:
        build()
    diag = info.value.diagnostics[0]
    assert diag.file == __file__ or diag.file is None or diag.file.endswith("test_dsl.py")
    return diag.render(), diag.line


def test_unknown_output_names_the_nearest() -> None:
    @pipeline(name="e1")
    def e1():
        p = prep(uri="x")
        report(values=p.outputs.rowz)  # MARK:unknown-output

    text, line = _error(e1.build)
    assert line == line_of("# MARK:unknown-output")
    assert "has no output 'rowz'" in text and "did you mean 'rows'" in text


def test_unknown_and_missing_inputs() -> None:
    @pipeline(name="e2")
    def e2():
        prep(uri="x", limt=3)  # MARK:unknown-input

    text, line = _error(e2.build)
    assert line == line_of("# MARK:unknown-input")
    assert "no input 'limt'" in text and "did you mean 'limit'" in text

    @pipeline(name="e3")
    def e3():
        prep(limit=3)  # MARK:missing-input

    text, line = _error(e3.build)
    assert line == line_of("# MARK:missing-input") and "missing input(s) uri" in text

    @pipeline(name="e4")
    def e4():
        prep(uri="x", table="/tmp/t")  # MARK:output-as-input

    text, line = _error(e4.build)
    assert line == line_of("# MARK:output-as-input") and "'table' is an output" in text


def test_type_mismatch_at_build_time() -> None:
    @pipeline(name="e5")
    def e5(name: str = "a"):
        score(x=name)  # MARK:type

    text, line = _error(e5.build)
    assert line == line_of("# MARK:type") and "expects float but gets str" in text


def test_scope_errors() -> None:
    @pipeline(name="e6")
    def e6(regions: list = Param(["a"])):
        with for_each(regions, as_="r", name="loop"):
            inner = score(x=1)
        report(values=[], best=inner.output)  # MARK:scope

    text, line = _error(e6.build)
    assert line == line_of("# MARK:scope")
    assert "inside group 'loop'" in text and "loop.outputs(value=" in text

    @pipeline(name="e7")
    def e7():
        tell(status=PIPELINE.status)  # MARK:status

    text, line = _error(e7.build)
    assert line == line_of("# MARK:status") and "finally" in text


def test_names_explicit_duplicates_and_python_truth() -> None:
    @pipeline(name="e8")
    def e8():
        score(x=1, name="a")
        score(x=2, name="a")  # MARK:dup

    text, line = _error(e8.build)
    assert line == line_of("# MARK:dup") and "already used" in text

    @pipeline(name="e9")
    def e9(flag: bool = True):
        if flag:  # MARK:truth
            score(x=1)

    text, line = _error(e9.build)
    assert line == line_of("# MARK:truth") and "with when(cond)" in text


def test_group_misuse() -> None:
    @pipeline(name="e10")
    def e10(n: int = 3):
        with for_each(n):  # MARK:for-each-int
            score(x=1)

    text, line = _error(e10.build)
    assert line == line_of("# MARK:for-each-int") and "needs a list" in text

    @pipeline(name="e11")
    def e11():
        score(x=1)
        with otherwise():  # MARK:otherwise
            score(x=2)

    text, line = _error(e11.build)
    assert line == line_of("# MARK:otherwise") and "right after" in text

    @pipeline(name="e12")
    def e12():
        loop = for_each([1, 2])  # MARK:unused
        del loop

    text, line = _error(e12.build)
    assert line == line_of("# MARK:unused") and "never used" in text


def test_nested_function_step_is_rejected() -> None:
    @step
    def local_step(x: int) -> int:
        return x

    @pipeline(name="e13")
    def e13():
        local_step(x=1)  # MARK:local

    text, line = _error(e13.build)
    assert line == line_of("# MARK:local") and "module level" in text


def test_bad_settings_point_at_the_decorator() -> None:
    with pytest.raises(UserError) as info:
        step(resources={"accelerator": "nvidia-t5"})  # MARK:settings
    diag = info.value.diagnostics[0]
    assert diag.line == line_of("# MARK:settings")
    assert "nvidia-t4" in diag.render()


def test_container_step_placeholders_are_checked() -> None:
    with pytest.raises(UserError) as info:
        container_step("c", image="busybox", command=["sh", "-c", "x", OUT.bset], outputs={"best": int})
    assert "{{ outputs.bset }}" in info.value.render() and "did you mean 'best'" in info.value.render()


def test_steps_stay_plain_functions_outside_a_pipeline(tmp_path: Path) -> None:
    assert prep(uri="x", table=str(tmp_path / "t"), limit=4) == 4
    assert fit.__wrapped__.__name__ == "fit"
    with pytest.raises(UserError, match="only inside a pipeline"):
        best_of(values=[1])


# --------------------------------------------------------------------- files


def _write(tmp_path: Path, body: str, name: str = "flow.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def test_load_python_pipeline_maps_yaml_paths_to_lines(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
        from pipecast.dsl import for_each, pipeline, step

        @step(output="y")
        def double(x: int) -> int:
            return 2 * x

        @pipeline(name="flow")
        def flow(xs: list = [1, 2]):  # noqa: B006
            with for_each(xs, as_="x", name="each") as x:
                double(x=x)
        """,
    )
    ir, source = load_python_pipeline(path)
    assert ir.steps["each"].steps["double"].run.python == "flow:double"
    assert source.file == str(path)
    assert source.positions[("steps", "each")][0] == 9
    assert source.positions[("steps", "each", "steps", "double")] == (10, 9)
    assert source.positions[("params", "xs")][0] == 8
    # "flow" must not stay importable: another file may have the same stem.
    import sys

    assert "flow" not in sys.modules


def test_validation_errors_point_at_python_lines(tmp_path: Path) -> None:
    from pipecast.api import load_checked

    path = _write(
        tmp_path,
        """\
        from pipecast.dsl import pipeline, step, when

        @step(output="y")
        def double(x: int) -> int:
            return 2 * x

        @pipeline(name="flow")
        def flow(n: int = 1):
            a = double(x=n)
            gate = when(a.output > 1, name="gate")
            with gate:
                gate.outputs(y=double(x=a.output, name="b").output)
            double(x=gate.outputs.y, name="c")
        """,
    )
    with pytest.raises(UserError) as info:
        load_checked(path)
    diags = info.value.diagnostics
    assert diags and all(d.file == str(path) for d in diags)
    assert {d.line for d in diags} & {10, 12}, info.value.render()


def test_import_errors_and_pipeline_choice(tmp_path: Path) -> None:
    bad = _write(tmp_path, "import nope_not_a_module\n", "bad.py")
    with pytest.raises(UserError, match=r"importing bad\.py failed: ModuleNotFoundError") as info:
        load_python_pipeline(bad)
    assert info.value.diagnostics[0].line == 1

    none = _write(tmp_path, "x = 1\n", "none.py")
    with pytest.raises(UserError, match="defines no pipeline"):
        load_python_pipeline(none)

    two = _write(
        tmp_path,
        """\
        from pipecast.dsl import pipeline, step

        @step
        def s() -> None: ...

        @pipeline(name="one")
        def one():
            s()

        @pipeline(name="two")
        def two():
            s()
        """,
        "two.py",
    )
    with pytest.raises(UserError, match="defines 2 pipelines"):
        load_python_pipeline(two)
    two.write_text(two.read_text() + "\npipeline = two\n")
    assert load_python_pipeline(two)[0].name == "two"


# --------------------------------------------------------------------- round trip


DSL_EXAMPLES = sorted(EXAMPLES.glob("*/pipeline.py"))


def test_there_are_dsl_examples() -> None:
    assert {p.parent.name for p in DSL_EXAMPLES} >= {"churn"}


@pytest.mark.parametrize("path", DSL_EXAMPLES, ids=lambda p: p.parent.name)
def test_export_round_trip(path: Path, tmp_path: Path) -> None:
    from pipecast.cli import main

    built, _ = load_python_pipeline(path)
    out = tmp_path / "exported.yaml"
    assert main(["export", str(path), "-o", str(out)]) == 0
    assert load(out).pipeline == built
    twin = path.with_name("pipeline.yaml")
    if twin.exists():
        assert load(twin).pipeline == built


def test_churn_twin_equals_spec_yaml() -> None:
    built, _ = load_python_pipeline(EXAMPLES / "churn" / "pipeline.py")
    assert built == load(EXAMPLES / "churn" / "pipeline.yaml").pipeline


def test_step_cache_mapping(tmp_path: Path) -> None:
    # SPEC §20: cache may be a mapping {version, max_age} in the DSL as in YAML.
    path = _write(
        tmp_path,
        """\
        from pipecast.dsl import pipeline, step

        @step(output="y", cache={"version": "2", "max_age": "1d"})
        def double(x: int) -> int:
            return 2 * x

        @pipeline(name="flow")
        def flow():
            double(x=1)
        """,
    )
    ir, _source = load_python_pipeline(path)
    assert ir.steps["double"].cache.version == "2" and ir.steps["double"].cache.max_age == 86400.0


def test_references_inside_list_and_dict_arguments_keep_their_type() -> None:
    """SPEC §19: a reference inside a list/dict argument is written as one reference."""

    @pipeline(name="structured")
    def structured(lr: float = 0.1):
        s = score(x=lr)
        report(values=[s.output, 3, {"lr": lr, "tag": f"lr-{lr}"}], name="cell")
        with for_each([lr, s.output, 2], as_="v", name="each") as v:
            score(x=v, name="inner")

    data = structured.build()[0].to_data()
    assert data["steps"]["cell"]["inputs"]["values"] == [
        "{{ steps.score.outputs.value }}",
        3,
        {"lr": "{{ params.lr }}", "tag": "lr-{{ params.lr }}"},
    ]
    assert data["steps"]["each"]["for_each"] == ["{{ params.lr }}", "{{ steps.score.outputs.value }}", 2]
