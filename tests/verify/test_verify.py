"""``pipecast verify`` on each target's local engine: agreement, injected failures, and a
deliberately broken backend output that must be caught, naming the step and field.

The engines are the product's own (the same code the conformance suite executes with).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from pipecast.api import load_checked
from pipecast.cli import main
from pipecast.verify import verify

REPO = Path(__file__).resolve().parents[2]
CASES = REPO / "tests" / "conformance" / "cases"
CHURN = REPO / "examples" / "churn" / "pipeline.yaml"

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["verify", *argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip().startswith("{") else {}


# ------------------------------------------------------------------------------ Step Functions


def _break_result_path(step: str) -> Any:
    """Patch the ResultPath of ``step``'s Task state: the next step reads nothing."""

    def patch(files: dict[str, str]) -> dict[str, str]:
        (rel,) = [r for r in files if r.endswith(".asl.json")]
        asl = json.loads(files[rel])
        state = asl["States"][step]
        assert state["ResultPath"] == f"$.steps.{step}", state
        state["ResultPath"] = f"$.steps.{step}_renamed"
        return {**files, rel: json.dumps(asl)}

    return patch


@pytest.mark.stepfunctions
@pytest.mark.slow
def test_stepfunctions_churn_agrees_and_is_fast(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    code, data = _cli(capsys, str(CHURN), "--target", "stepfunctions")
    elapsed = time.monotonic() - started
    assert code == 0, data.get("differences")
    assert data["agree"] is True and data["differences"] == []
    assert data["stepfunctions"]["record"]["status"] == "succeeded"
    assert data["simulator"]["seconds"] > 0 and data["stepfunctions"]["seconds"] > 0
    assert any("compute=callback" in n for n in data["notes"])  # the default compute is sagemaker
    assert elapsed < 180, f"verify took {elapsed:.0f} s"  # a blow-up guard; goal: under 60 s


@pytest.mark.stepfunctions
def test_stepfunctions_fail_injection_takes_the_finally_path(tmp_path: Path) -> None:
    from pipecast.verify.report import render

    result = verify(load_checked(CASES / "finally_success.yaml"), "stepfunctions", fail=["work"])
    assert result.agree, [d.render("stepfunctions") for d in result.differences]
    page = render(result)
    assert page.count('class="bar failed"') == 2  # 'work' in both timelines
    assert result.local.record["status"] == "failed"
    assert result.local.record["steps"]["work"]["status"] == "failed"
    assert result.local.record["steps"]["finally"]["outputs"] == {"output": "failed"}


@pytest.mark.stepfunctions
def test_stepfunctions_broken_result_path_is_caught(capsys: pytest.CaptureFixture[str]) -> None:
    result = verify(
        load_checked(CASES / "linear.yaml"), "stepfunctions", patch=_break_result_path("a"), timeout=60
    )
    assert not result.agree
    found = {(d.where, d.field) for d in result.differences}
    assert ("step b", "status") in found, found
    assert ("pipeline", "status") in found


# ------------------------------------------------------------------------------ engine plumbing


def test_a_missing_engine_names_the_extra() -> None:
    from pipecast.diagnostics import UserError
    from pipecast.verify.engine import Engine

    class Absent(Engine):
        target = "stepfunctions"
        extra = "verify-aws"
        modules = ("pipecast_no_such_module",)

        def session(self, workdir: Path) -> Any:
            raise AssertionError("not reached")

    with pytest.raises(UserError) as err:
        Absent().require()
    (diag,) = err.value.diagnostics
    assert "pipecast_no_such_module" in diag.message and diag.hint == "pip install 'pipecast[verify-aws]'"


def test_a_target_without_engine_is_a_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(CASES / "linear.yaml"), "--target", "local"]) == 1
    assert "has no local engine" in capsys.readouterr().err
