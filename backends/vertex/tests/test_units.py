"""Conditions, the kfp convention's value handling, and deploy up to the request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pipecast_vertex.conditions import to_cel

from pipecast.api import compile_pipeline, load_checked
from pipecast.diagnostics import UserError
from pipecast.ir.condition import evaluate
from pipecast.passes.parse import parse_condition
from pipecast.runtime.conventions.kfp import coerce, final_status, local_path

pytestmark = pytest.mark.vertex
ROOT = Path(__file__).resolve().parents[3]

TYPES = {"params.n": "int", "params.f": "float", "params.s": "str", "params.b": "bool"}


def _lookup(ref):
    return f"pipelinechannel--{ref.name}", TYPES[ref.path]


def _typed(expr: Any) -> Any:
    """The condition as the resolve pass hands it over: each path typed (here from TYPES)."""
    from pipecast.ir import condition as c

    if isinstance(expr, c.Path):
        return c.Path(expr.ref, TYPES[expr.ref.path])
    if isinstance(expr, c.Not):
        return c.Not(_typed(expr.operand))
    if isinstance(expr, c.BoolOp):
        return c.BoolOp(expr.op, tuple(_typed(o) for o in expr.operands))
    if isinstance(expr, c.Compare):
        return c.Compare(expr.op, _typed(expr.left), _typed(expr.right))
    if isinstance(expr, c.In):
        return c.In(_typed(expr.operand), expr.options)
    return expr


@pytest.mark.parametrize(
    ("text", "cel"),
    [
        ("params.n > 2", "int(inputs.parameter_values['pipelinechannel--n']) > 2"),
        ("params.f >= 1", "inputs.parameter_values['pipelinechannel--f'] >= 1.0"),
        (
            "params.s == 'it''s'".replace("''", "\\'"),
            "inputs.parameter_values['pipelinechannel--s'] == 'it\\'s'",
        ),
        ("params.b", "inputs.parameter_values['pipelinechannel--b'] == true"),
        (
            "not params.b or params.s in ['a', 'b']",
            "(!(inputs.parameter_values['pipelinechannel--b'] == true)) || "
            "(inputs.parameter_values['pipelinechannel--s'] in ['a', 'b'])",
        ),
    ],
)
def test_cel(text: str, cel: str) -> None:
    assert to_cel(_typed(parse_condition(text)), _lookup) == cel


@pytest.mark.parametrize(
    "values",
    [
        {"n": 3, "f": 0.5, "s": "a", "b": True},
        {"n": 1, "f": 2.0, "s": "c", "b": False},
    ],
)
def test_cel_agrees_with_the_reference_evaluator(values: dict) -> None:
    """The CEL text, evaluated the way kfp.local does, gives the simulator's answer."""
    from kfp.local import io
    from kfp.local.orchestrator.enhanced_dag_orchestrator import ConditionEvaluator

    store = io.IOStore()
    for k, v in values.items():
        store.put_parent_input(k, v)
    for text in ["params.n > 2 and params.f < 1", "not params.b or params.s in ['a', 'b']", "params.n == 1"]:
        expr = _typed(parse_condition(text))
        want = evaluate(expr, lambda ref: values[ref.name])
        assert ConditionEvaluator.evaluate_condition(to_cel(expr, _lookup), store) is want, text


def test_convention_values() -> None:
    assert local_path("gs://b/x/y") == "/gcs/b/x/y"
    assert local_path("/tmp/a") == "/tmp/a"
    assert coerce("int", 3.0) == 3 and isinstance(coerce("int", 3.0), int)
    assert coerce("list", [1.0, 2.5, "x"]) == [1, 2.5, "x"]
    assert coerce("dict", '{"a": 1}') == {"a": 1}
    assert final_status({"state": "SUCCEEDED"}) == "succeeded"
    assert final_status({"state": "FAILED", "error": {"code": 1}}) == "failed"
    assert final_status('{"state": "CANCELLED"}') == "failed"


def test_deploy_builds_the_request_offline() -> None:
    from google.auth.credentials import AnonymousCredentials
    from pipecast_vertex.deploy import build_job

    loaded = load_checked(ROOT / "examples/churn/pipeline.yaml")
    settings = {
        "project": "p1",
        "region": "us-east1",
        "pipeline_root": "gs://b/root",
        "labels": {"env": "test"},
        "image": "img:1",
    }
    result = compile_pipeline(loaded, "vertex", settings)
    from pipecast_vertex.settings import VertexSettings

    job = build_job(
        loaded.pipeline,
        result.files,
        VertexSettings(**settings),
        params={"min_auc": 0.9},
        credentials=AnonymousCredentials(),
        job_id="churn-run-1",
    )
    body = job.to_dict()
    assert body["runtimeConfig"]["parameterValues"] == {
        "data_uri": "https://example.blob.core.windows.net/churn/customers.csv",
        "min_auc": 0.9,
        "regions": '["eu", "us"]',  # a list parameter travels as JSON text (SPEC §22)
        "dry": False,
    }
    assert body["runtimeConfig"]["gcsOutputDirectory"] == "gs://b/root"
    assert body["labels"]["env"] == "test"
    assert job.project == "p1" and job.location == "us-east1"


def test_deploy_refuses_placeholders_and_missing_settings() -> None:
    from pipecast_vertex.deploy import build_job
    from pipecast_vertex.settings import VertexSettings

    loaded = load_checked(ROOT / "examples/churn/pipeline.yaml")
    result = compile_pipeline(loaded, "vertex", {})
    with pytest.raises(UserError, match="project"):
        build_job(loaded.pipeline, result.files, VertexSettings())
    text = result.files["churn-training.yaml"].replace("python:3.11-slim", "<set image>")
    with pytest.raises(UserError, match="placeholder"):
        build_job(
            loaded.pipeline,
            {"churn-training.yaml": text},
            VertexSettings(project="p", pipeline_root="gs://b"),
        )


def test_json_text_transport_is_exact() -> None:
    from pipecast.runtime.conventions.kfp import decode, encode, encode_items

    value = [1, "two", 3.0, {"n": 1, "f": 2.0, "l": [1.0]}]
    text = encode("list", value)
    assert isinstance(text, str)
    back = decode("list", text)
    assert back == value and [type(v) for v in back] == [int, str, float, dict]
    assert type(back[3]["f"]) is float and type(back[3]["n"]) is int
    # A collected list of per-iteration JSON texts decodes element by element.
    collected = decode("list[dict]", [encode("dict", {"f": 1.0}), encode("dict", {"f": 2})])
    assert [type(d["f"]) for d in collected] == [float, int]
    # Collected scalars arrive as doubles and are converted by the element type.
    assert [type(v) for v in decode("list[int]", [3.0, 1.0])] == [int, int]
    # Untyped loop items: scalars native, compound and JSON-looking strings as text.
    items = encode_items("list", [1.5, "a", "[x", {"k": 1.0}])
    assert items == [1.5, "a", '"[x"', '{"k": 1.0}']
    assert [decode("any", v) for v in items] == [1.5, "a", "[x", {"k": 1.0}]
