"""SPEC §18 (a group's own ``finally``) and plain groups (SPEC §17's lowering target) in the
simulator, the reference semantics; expected results written by hand."""

from __future__ import annotations

import pytest

from tests.simulator.conftest import outputs, statuses

pytestmark = pytest.mark.local


def test_failing_group_finally_fails_the_pipeline_and_its_group(sim):
    rec = sim.run(
        """
        pipecast: 1
        name: gf
        steps:
          gate:
            when: "1 == 1"
            steps:
              a: {run: {python: "steps:emit"}, inputs: {value: 1}, outputs: {output: int}}
            finally:
              run: {python: "steps:boom"}
              inputs: {message: "{{ group.status }}"}
          later: {run: {python: "steps:emit"}, inputs: {value: 2}, after: [gate]}
        finally:
          run: {python: "steps:status"}
          inputs: {s: "{{ pipeline.status }}"}
          outputs: {output: str}
        """
    )
    assert rec["status"] == "failed"
    st = statuses(rec)
    assert st["a"] == "succeeded"
    assert st["gate.finally"] == "failed"
    assert "succeeded" in rec["steps"]["gate.finally"]["error"]  # it saw group.status
    assert st["gate"] == "failed"
    assert st["later"] == "not_run"  # the group ends when its finally ends
    assert outputs(rec, "finally") == {"output": "failed"}


def test_failure_outside_the_group_still_runs_the_started_groups_finally(sim):
    text = """
        pipecast: 1
        name: gf
        steps:
          slow_group:
            for_each: [1]
            steps:
              slow: {run: {python: "steps:stamp"}, inputs: {folder: "FOLDER", name: "s", seconds: 0.3}}
              next: {run: {python: "steps:emit"}, inputs: {value: 1}, after: [slow]}
            finally:
              run: {python: "steps:status"}
              inputs: {s: "{{ group.status }}"}
              outputs: {output: str}
          broken: {run: {python: "steps:boom"}, inputs: {message: "x"}}
        """
    rec = sim.run(text.replace("FOLDER", str(sim.tmp)), max_parallel=4)
    st = statuses(rec)
    assert rec["status"] == "failed"
    assert st["slow[0]"] == "succeeded" and st["next[0]"] == "not_run"
    assert outputs(rec, "slow_group.finally") == {"output": "failed"}
    assert st["slow_group"] == "not_run"  # interrupted, nothing inside failed


def test_nested_group_finallys_run_innermost_first(sim):
    rec = sim.run(
        """
        pipecast: 1
        name: gf
        steps:
          outer:
            for_each: [1, 2]
            steps:
              inner:
                when: "item == 2"
                steps:
                  bad: {run: {python: "steps:boom"}, inputs: {message: "x"}}
                finally:
                  run: {python: "steps:status"}
                  inputs: {s: "inner {{ group.status }} {{ item }}"}
                  outputs: {output: str}
            finally:
              run: {python: "steps:status"}
              inputs: {s: "outer {{ group.status }}"}
              outputs: {output: str}
        """
    )
    st = statuses(rec)
    assert rec["status"] == "failed"
    assert st["inner[0]"] == "skipped" and "inner.finally[0]" not in st
    assert outputs(rec, "inner.finally[1]") == {"output": "inner failed 2"}
    assert outputs(rec, "outer.finally") == {"output": "outer failed"}
    fin_inner = rec["steps"]["inner.finally[1]"]
    fin_outer = rec["steps"]["outer.finally"]
    assert fin_inner["ended"] <= fin_outer["started"]
    assert list(rec["steps"]).index("inner.finally[1]") < list(rec["steps"]).index("outer.finally")


def test_group_finally_reads_outside_steps_and_orders_its_group(sim):
    rec = sim.run(
        """
        pipecast: 1
        name: gf
        steps:
          loop:
            for_each: [1, 2]
            steps:
              sq: {run: {python: "steps:square"}, inputs: {x: "{{ item }}"}, outputs: {output: int}}
            finally:
              run: {python: "steps:add"}
              inputs: {a: "{{ steps.base.outputs.output }}", b: 1}
              outputs: {output: int}
          base: {run: {python: "steps:emit"}, inputs: {value: 40}, outputs: {output: int}}
        """
    )
    assert rec["status"] == "succeeded"
    assert outputs(rec, "loop.finally") == {"output": 41}
    # Reading 'base' in the group's finally made the group wait for it.
    assert rec["steps"]["base"]["ended"] <= rec["steps"]["sq[0]"]["started"]


@pytest.mark.parametrize(
    ("finally_yaml", "message", "path"),
    [
        (
            '{run: {python: "steps:status"}, inputs: {s: "{{ steps.sq.outputs.output }}"}}',
            "is inside group 'loop' and not visible here",
            "steps.loop.finally.inputs.s",
        ),
        (
            '{run: {python: "steps:status"}, inputs: {s: "{{ steps.loop.outputs.all }}"}}',
            "a group's 'finally' cannot read the outputs of 'loop'",
            "steps.loop.finally.inputs.s",
        ),
        (
            '{run: {python: "steps:status"}, inputs: {s: "x"}, after: [base]}',
            "a group's 'finally' runs after the group's steps; it cannot have 'after'",
            "steps.loop.finally.after",
        ),
    ],
)
def test_what_a_group_finally_may_not_do(sim, finally_yaml, message, path):
    from pipecast.api import load_checked
    from pipecast.diagnostics import UserError, format_path

    file = sim.write(
        """
        pipecast: 1
        name: gf
        steps:
          base: {run: {python: "steps:emit"}, inputs: {value: 1}, outputs: {output: int}}
          loop:
            for_each: [1, 2]
            steps:
              sq: {run: {python: "steps:square"}, inputs: {x: "{{ item }}"}, outputs: {output: int}}
            outputs: {all: "{{ steps.sq.outputs.output }}"}
            finally: FINALLY
        """.replace("FINALLY", finally_yaml)
    )
    with pytest.raises(UserError) as info:
        load_checked(file)
    found = [(format_path(d.path), d.message, d.line) for d in info.value.diagnostics]
    assert any(p == path and message in m and line for p, m, line in found), found


def test_a_loop_variable_named_group_shadows_group_status(sim):
    rec = sim.run(
        """
        pipecast: 1
        name: gf
        steps:
          outer:
            for_each: [{status: "mine"}]
            as: group
            steps:
              inner:
                when: "1 == 1"
                steps:
                  a: {run: {python: "steps:emit"}, inputs: {value: 1}}
                finally:
                  run: {python: "steps:status"}
                  inputs: {s: "{{ group.status }}"}
                  outputs: {output: str}
        """
    )
    assert rec["status"] == "succeeded", rec
    assert outputs(rec, "inner.finally[0]") == {"output": "mine"}
