"""The resolved form (pipecast.passes.resolve): typed value nodes, typed conditions, effective
settings, dependencies and group scope, built once per index."""

from __future__ import annotations

from pathlib import Path

from pipecast.api import load_checked
from pipecast.ir import condition as cond
from pipecast.passes.resolve import (
    DictOf,
    ListOf,
    Lit,
    LoopItem,
    MetricValue,
    ParamRef,
    PipelineField,
    StepOutput,
    Text,
    evaluate_value,
    refs_of,
    type_of,
)

PIPELINE = r"""
pipecast: 1
name: typed
params:
  n: {type: int, default: 2}
  rows: {type: list, default: [{k: 1}]}
defaults:
  retry: {attempts: 3}
  env: {A: "1"}
steps:
  a:
    run: {python: "mod:f"}
    inputs: {x: "{{ params.n }}", lit: 1.5, flag: true, none: null, esc: 'a \{{ b }}'}
    outputs: {v: int, m: Metrics}
  b:
    run: {python: "mod:f"}
    when: "steps.a.outputs.v > 2 and not (params.n in [1, 2]) and steps.a.outputs.m.auc >= 0.5"
    inputs:
      mixed: "v={{ steps.a.outputs.v }} in {{ pipeline.name }}"
      pad: " {{ steps.a.outputs.v }} "
      metric: "{{ steps.a.outputs.m.auc }}"
      many: ["{{ params.n }}", 3, 'x \{{ y }}']
      conf: {n: "{{ params.n }}", fixed: [1, 2]}
      plain: [1, 'a \{{ b }}']
    retry: {attempts: 5}
    env: {B: "2"}
  loop:
    for_each: "{{ params.rows }}"
    as: row
    steps:
      inner:
        run: {python: "mod:f"}
        inputs: {k: "{{ row.k }}", whole: "{{ row }}", up: "{{ steps.a.outputs.v }}"}
        outputs: {o: str}
    outputs: {os: "{{ steps.inner.outputs.o }}"}
outputs:
  final: "{{ steps.loop.outputs.os }}"
finally:
  run: {python: "mod:f"}
  inputs: {status: "{{ pipeline.status }}", run: "{{ pipeline.run_id }}"}
"""


def _resolved(tmp_path: Path) -> object:
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE)
    return load_checked(path).index


def test_values_are_typed_nodes(tmp_path: Path) -> None:
    index = _resolved(tmp_path)
    res = index.resolved  # type: ignore[attr-defined]
    assert index.resolved is res  # type: ignore[attr-defined]  # built once per index
    a = res.step("a").inputs
    assert a["x"] == ParamRef(a["x"].ref, "int")
    assert a["lit"] == Lit(1.5, "float") and a["flag"] == Lit(True, "bool")
    assert a["none"].value is None
    assert a["esc"] == Lit("a {{ b }}", "str")  # the \{{ escape decoded once
    b = res.step("b").inputs
    mixed = b["mixed"]
    assert isinstance(mixed, Text) and type_of(mixed) == "str"
    assert mixed.parts[0] == "v=" and isinstance(mixed.parts[1], StepOutput)
    assert mixed.parts[1].producer == "a" and mixed.parts[1].type == "int"
    assert mixed.parts[1].sibling == "a"
    assert isinstance(mixed.parts[3], PipelineField) and mixed.parts[3].field == "name"
    assert isinstance(b["pad"], StepOutput)  # a lone reference keeps its type, blanks aside
    assert isinstance(b["metric"], MetricValue) and b["metric"].type == "float"
    assert b["metric"].metric == "auc" and b["metric"].output == "m"
    many = b["many"]
    assert isinstance(many, ListOf) and many.items[1] == Lit(3, "int")
    assert many.items[2] == Lit("x {{ y }}", "str")
    assert isinstance(b["conf"], DictOf) and dict(b["conf"].items)["fixed"] == Lit([1, 2], "list")
    assert b["plain"] == Lit([1, "a {{ b }}"], "list")
    assert [r.path for r in refs_of(many)] == ["params.n"]
    inner = res.step("inner")
    assert isinstance(inner.inputs["k"], LoopItem) and inner.inputs["k"].group == "loop"
    assert inner.inputs["k"].key == "k" and inner.inputs["whole"].type == "any"  # an untyped list
    assert inner.inputs["up"].sibling == "a"  # the sibling of the enclosing loop it waits for
    assert inner.groups == ("loop",)
    loop = res.step("loop")
    assert isinstance(loop.for_each, ParamRef) and loop.for_each.type == "list"
    assert isinstance(loop.outputs["os"], StepOutput) and loop.outputs["os"].producer == "inner"
    assert res.outputs["final"].type == "list[str]"
    fin = res.step("finally").inputs
    assert isinstance(fin["status"], PipelineField) and fin["status"].type == "str"


def test_conditions_are_typed_trees(tmp_path: Path) -> None:
    res = _resolved(tmp_path).resolved  # type: ignore[attr-defined]
    when = res.step("b").when
    assert isinstance(when, cond.BoolOp) and when.op == "and"
    gt, neg, metric = when.operands
    assert isinstance(gt, cond.Compare) and isinstance(gt.left, cond.Path)
    assert gt.left.type == "int" and isinstance(gt.left.node, StepOutput)
    assert isinstance(gt.right, cond.Literal) and gt.right.type == "int"
    assert isinstance(neg, cond.Not) and isinstance(neg.operand, cond.In)
    assert neg.operand.operand.type == "int"  # type: ignore[union-attr]
    assert [o.type for o in neg.operand.options] == ["int", "int"]
    assert isinstance(metric, cond.Compare) and metric.left.type == "float"  # type: ignore[union-attr]
    assert metric.right.type == "float"  # type: ignore[union-attr]
    values = {"steps.a.outputs.v": 3, "params.n": 5, "steps.a.outputs.m.auc": 0.7}
    assert cond.evaluate(when, lambda ref: values[ref.path]) is True


def test_settings_deps_and_evaluation(tmp_path: Path) -> None:
    res = _resolved(tmp_path).resolved  # type: ignore[attr-defined]
    b = res.step("b")
    assert b.effective.retry.attempts == 5 and b.effective.env == {"A": "1", "B": "2"}
    assert res.step("a").effective.retry.attempts == 3
    assert b.deps == ["a"] and res.step("loop").deps == ["a"]
    got = evaluate_value(
        b.inputs["mixed"], lambda n: {"steps.a.outputs.v": 7, "pipeline.name": "typed"}[n.path]
    )
    assert got == "v=7 in typed"
    conf = evaluate_value(b.inputs["conf"], lambda n: 4)
    assert conf == {"n": 4, "fixed": [1, 2]}
    assert [s.name for s in res] == ["a", "b", "loop", "inner", "finally"]
