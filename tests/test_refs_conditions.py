"""References (SPEC §4) and the condition language (SPEC §5)."""

from __future__ import annotations

import pytest

from pipecast.ir import condition as cond
from pipecast.ir.refs import Ref, RefSyntaxError
from pipecast.passes.parse import parse_condition, parse_template, render, single_ref


def test_parse_template_and_single_ref() -> None:
    segs = parse_template("s3://{{ params.bucket }}/x/{{ item.key }}")
    assert segs == ["s3://", Ref("param", "bucket"), "/x/", Ref("loop", "item", "key")]
    assert single_ref(" {{ steps.a.outputs.b }} ") == Ref("step", "a", "b")
    assert single_ref("x{{ params.p }}") is None


@pytest.mark.parametrize(
    "bad", ["{{ steps.a.b }}", "{{ params }}", "{{ a.b.c }}", "{{ params.p }", "{{ 1x }}"]
)
def test_reference_syntax_errors(bad: str) -> None:
    with pytest.raises(RefSyntaxError):
        parse_template(bad)


def test_render_keeps_type_or_makes_string() -> None:
    values = {Ref("param", "n"): 3, Ref("param", "xs"): [1, 2], Ref("param", "s"): "a"}
    assert render("{{ params.xs }}", values.__getitem__) == [1, 2]
    assert render("n={{ params.n }} xs={{ params.xs }} s={{ params.s }}", values.__getitem__) == (
        "n=3 xs=[1,2] s=a"  # SPEC §22: compact JSON
    )


def test_condition_parse_evaluate_and_round_trip() -> None:
    text = "steps.pick.outputs.best >= params.min_auc and not params.dry or params.r in ['eu', 'us']"
    expr = parse_condition(text)
    env = {
        Ref("step", "pick", "best"): 0.9,
        Ref("param", "min_auc"): 0.8,
        Ref("param", "dry"): True,
        Ref("param", "r"): "us",
    }
    assert cond.evaluate(expr, env.__getitem__) is True
    assert parse_condition(cond.to_text(expr)) == expr
    assert [r.path for r in cond.paths(expr)] == [
        "steps.pick.outputs.best",
        "params.min_auc",
        "params.dry",
        "params.r",
    ]


@pytest.mark.parametrize(
    ("text", "column"),
    [("params.a >= = 1", 13), ("(params.a", 10), ("params.a in [params.b]", 14), ("{{ params.a }}", 1)],
)
def test_condition_syntax_error_columns(text: str, column: int) -> None:
    with pytest.raises(cond.ConditionSyntaxError) as info:
        parse_condition(text)
    assert info.value.column == column


# --------------------------------------------------------------- SPEC §19: literal braces


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("helm --set x=\\{{ .Values.x }} y", ["helm --set x={{ .Values.x }} y"]),
        ("a \\\\{{ params.x }} b", ["a \\", Ref("param", "x"), " b"]),
        ("\\{{ a }}{{ params.y }}", ["{{ a }}", Ref("param", "y")]),
        ("a\\{{b", ["a{{b"]),
        ("\\\\\\{{ x }}", ["\\{{ x }}"]),
        ("c:\\\\dir \\n {{ params.x }}", ["c:\\\\dir \\n ", Ref("param", "x")]),
    ],
)
def test_literal_brace_escape(text: str, segments: list[object]) -> None:
    assert parse_template(text) == segments


def test_literal_brace_renders_and_is_not_a_reference() -> None:
    assert render("\\{{ .Values.x }}", lambda r: 1) == "{{ .Values.x }}"
    assert render("\\{{ x }}-{{ params.n }}", lambda r: 3) == "{{ x }}-3"
    assert single_ref("\\{{ params.n }}") is None


@pytest.mark.parametrize("text", ["{{ .Values.x }}", "\\{{ a }} }}", "x }}", "{{ params.x"])
def test_bad_braces_say_how_to_escape(text: str) -> None:
    with pytest.raises(RefSyntaxError, match=r"write '\\\{\{'"):
        parse_template(text)
