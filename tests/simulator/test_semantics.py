"""Each SPEC rule on a small pipeline; expected results are written by hand."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.simulator.conftest import outputs, statuses

pytestmark = pytest.mark.local


def test_parameter_types_pass_between_steps(sim):
    rec = sim.run(
        """
        pipecast: 1
        name: types
        steps:
          make:
            run: {python: "steps:many"}
            outputs: {i: int, f: float, s: str, b: bool, l: list, d: dict}
          check:
            run: {python: "steps:echo_types"}
            inputs:
              i: "{{ steps.make.outputs.i }}"
              f: "{{ steps.make.outputs.f }}"
              s: "{{ steps.make.outputs.s }}"
              b: "{{ steps.make.outputs.b }}"
              l: "{{ steps.make.outputs.l }}"
              d: "{{ steps.make.outputs.d }}"
            outputs: {output: list}
          mixed:
            run: {python: "steps:emit"}
            inputs: {value: "i={{ steps.make.outputs.i }} l={{ steps.make.outputs.l }} s={{ steps.make.outputs.s }}"}
            outputs: {output: str}
          widen:
            run: {python: "steps:emit"}
            inputs: {value: "{{ steps.make.outputs.i }}"}
            outputs: {output: float}
        """
    )
    assert rec["status"] == "succeeded"
    assert outputs(rec, "check")["output"] == [
        "int",
        "float",
        "str",
        "bool",
        "list",
        "dict",
        3,
        2.5,
        "a b",
        True,
        [1, "x"],
        {"k": [1, 2]},
    ]
    assert outputs(rec, "mixed")["output"] == 'i=3 l=[1,"x"] s=a b'  # SPEC §22: compact JSON
    assert outputs(rec, "widen")["output"] == 3.0
    assert isinstance(outputs(rec, "widen")["output"], float)


def test_container_str_output_is_raw_text_and_json_for_others(sim):
    rec = sim.run(
        r"""
        pipecast: 1
        name: cont
        steps:
          c:
            run:
              image: python:3.11-slim
              command: [sh, -c, 'printf "%s" "{{ inputs.word }} [1]" > {{ outputs.text }}; printf "[1, 2]" > {{ outputs.nums }}; echo 7 > {{ outputs.n }}']
            inputs: {word: hello}
            outputs: {text: str, nums: list, n: int}
          py:
            run: {python: "steps:emit"}
            inputs: {value: "{{ steps.c.outputs.text }}"}
            outputs: {output: str}
        """
    )
    assert rec["status"] == "succeeded", rec
    assert outputs(rec, "c") == {"text": "hello [1]", "nums": [1, 2], "n": 7}
    assert outputs(rec, "py")["output"] == "hello [1]"


def test_artifacts_files_folders_and_collected_lists(sim):
    rec = sim.run(
        """
        pipecast: 1
        name: arts
        steps:
          f:
            run: {python: "steps:write_file"}
            inputs: {text: "hello"}
            outputs: {out: Dataset}
          d:
            run: {python: "steps:write_folder"}
            inputs: {names: [a, b]}
            outputs: {out: Model}
          rf:
            run: {python: "steps:read_file"}
            inputs: {f: "{{ steps.f.outputs.out }}"}
            outputs: {output: str}
          rd:
            run: {python: "steps:read_folder"}
            inputs: {d: "{{ steps.d.outputs.out }}"}
            outputs: {output: list}
          fan:
            for_each: [x, y, z]
            steps:
              w:
                run: {python: "steps:write_file"}
                inputs: {text: "{{ item }}!"}
                outputs: {out: Artifact}
            outputs: {files: "{{ steps.w.outputs.out }}"}
          rs:
            run: {python: "steps:read_files"}
            inputs: {fs: "{{ steps.fan.outputs.files }}"}
            outputs: {output: list}
          cat:
            run: {image: busybox, command: [sh, -c, 'cat {{ inputs.f }} {{ inputs.d }}/b > {{ outputs.o }}']}
            inputs: {f: "{{ steps.f.outputs.out }}", d: "{{ steps.d.outputs.out }}"}
            outputs: {o: Artifact}
          rc:
            run: {python: "steps:read_file"}
            inputs: {f: "{{ steps.cat.outputs.o }}"}
            outputs: {output: str}
        """
    )
    assert rec["status"] == "succeeded", rec
    assert outputs(rec, "rf")["output"] == "hello"
    assert outputs(rec, "rd")["output"] == ["a", "b", "A", "B"]
    assert outputs(rec, "rs")["output"] == ["x!", "y!", "z!"]
    assert outputs(rec, "rc")["output"] == "helloB"
    uri = outputs(rec, "f")["out"]
    assert uri.startswith("file://") and uri.endswith("/artifacts/f/out")
    assert [u.rsplit("/", 2)[-2] for u in outputs(rec, "fan")["files"]] == ["w.0", "w.1", "w.2"]


def test_retries_count_attempts_and_recover(sim):
    rec = sim.run(
        f"""
        pipecast: 1
        name: retry
        steps:
          s:
            run: {{python: "steps:flaky"}}
            inputs: {{counter: "{sim.tmp}/c1", fail_times: 2}}
            retry: {{attempts: 3, delay: 0.01}}
            outputs: {{output: int}}
          t:
            run: {{python: "steps:flaky"}}
            inputs: {{counter: "{sim.tmp}/c2", fail_times: 5}}
            retry: {{attempts: 2, delay: 0.01}}
        """
    )
    assert rec["steps"]["s"]["status"] == "succeeded"
    assert rec["steps"]["s"]["attempts"] == 3
    assert outputs(rec, "s")["output"] == 3
    assert rec["steps"]["t"]["status"] == "failed"
    assert rec["steps"]["t"]["attempts"] == 2
    assert "flaky failure 2" in rec["steps"]["t"]["error"]
    assert rec["status"] == "failed"
    assert (sim.tmp / "c2").read_text() == "2"


def test_backoff_and_max_delay_in_virtual_time(sim):
    # attempt 1: 0-1s; wait 10 -> 11-12; wait 30 -> 42-43; wait min(90, 50) -> 93-94.
    rec = sim.run(
        """
        pipecast: 1
        name: backoff
        steps:
          s:
            run: {python: "steps:emit"}
            inputs: {value: 1}
            retry: {attempts: 4, delay: 10s, backoff: 3, max_delay: 50s}
        """,
        dry_run=True,
        fail=["s"],
    )
    assert rec["steps"]["s"]["attempts"] == 4
    assert rec["timeline"]["duration"] == 94
    assert rec["timeline"]["tasks"] == [
        {"step": "s", "start": 0.0, "end": 94.0, "status": "failed", "attempts": 4}
    ]


def test_jitter_is_seeded_and_bounded(sim):
    text = """
        pipecast: 1
        name: jitter
        steps:
          s:
            run: {python: "steps:emit"}
            inputs: {value: 1}
            retry: {attempts: 3, delay: 100s, backoff: 2, jitter: true}
        """
    a = sim.run(text, dry_run=True, fail=["s:2"], seed=7)
    b = sim.run(text, dry_run=True, fail=["s:2"], seed=7)
    c = sim.run(text, dry_run=True, fail=["s:2"], seed=8)
    assert a["timeline"] == b["timeline"]
    assert a["timeline"] != c["timeline"]
    # three 1 s attempts plus waits in [0, 100] and [0, 200]
    assert 3 <= a["timeline"]["duration"] <= 303
    assert a["steps"]["s"]["status"] == "succeeded"


def test_timeout_kills_the_whole_process_tree(sim):
    pidfile = sim.tmp / "child.pid"
    t0 = time.monotonic()
    rec = sim.run(
        f"""
        pipecast: 1
        name: timeout
        steps:
          hang:
            run: {{python: "steps:spawn_and_hang"}}
            inputs: {{pidfile: "{pidfile}"}}
            timeout: 1
        """
    )
    assert time.monotonic() - t0 < 15
    assert rec["steps"]["hang"]["status"] == "failed"
    assert "timed out" in rec["steps"]["hang"]["error"]
    pid = int(pidfile.read_text())
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the step's grandchild survived the timeout")


WHEN = """
pipecast: 1
name: when
params:
  x: {type: int, default: 5}
steps:
  a:
    run: {python: "steps:emit"}
    inputs: {value: "{{ params.x }}"}
    outputs: {output: int}
  g:
    when: "steps.a.outputs.output > 3"
    steps:
      hi: {run: {python: "steps:emit"}, inputs: {value: high}, outputs: {output: str}}
    outputs: {label: "{{ steps.hi.outputs.output }}"}
    else:
      steps:
        lo: {run: {python: "steps:emit"}, inputs: {value: low}, outputs: {output: str}}
      outputs: {label: "{{ steps.lo.outputs.output }}"}
  use:
    run: {python: "steps:emit"}
    inputs: {value: "{{ steps.g.outputs.label }}"}
    outputs: {output: str}
  maybe:
    when: "params.x == 1"
    run: {python: "steps:emit"}
    inputs: {value: 1}
    outputs: {output: int}
  reader:
    run: {python: "steps:emit"}
    inputs: {value: "{{ steps.maybe.outputs.output }}"}
    outputs: {output: int}
  follower:
    run: {python: "steps:emit"}
    inputs: {value: ok}
    after: [maybe]
    outputs: {output: str}
"""


def test_when_else_and_skips(sim):
    hi = sim.run(WHEN)
    assert statuses(hi) | {} == {
        "a": "succeeded",
        "g": "succeeded",
        "hi": "succeeded",
        "lo": "skipped",
        "use": "succeeded",
        "maybe": "skipped",
        "reader": "skipped",
        "follower": "succeeded",
    }
    assert outputs(hi, "use")["output"] == "high"
    lo = sim.run(WHEN, params={"x": 2})
    assert statuses(lo)["hi"] == "skipped" and statuses(lo)["lo"] == "succeeded"
    assert outputs(lo, "use")["output"] == "low"
    one = sim.run(WHEN, params={"x": "1"})
    assert statuses(one)["maybe"] == "succeeded" and outputs(one, "reader")["output"] == 1


def test_when_group_without_else_is_skipped_and_later_steps_run(sim):
    rec = sim.run(
        """
        pipecast: 1
        name: gate
        steps:
          g:
            when: "1 > 2"
            steps:
              inner: {run: {python: "steps:emit"}, inputs: {value: 1}}
              nested:
                when: "true"
                steps:
                  deep: {run: {python: "steps:emit"}, inputs: {value: 1}}
          later:
            run: {python: "steps:emit"}
            inputs: {value: 2}
            after: [g]
            outputs: {output: int}
        """
    )
    assert rec["status"] == "succeeded"
    assert statuses(rec) == {
        "g": "skipped",
        "inner": "skipped",
        "nested": "skipped",
        "deep": "skipped",
        "later": "succeeded",
    }


def _overlap(folder: Path) -> int:
    spans = [tuple(map(float, p.read_text().split())) for p in folder.iterdir()]
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    best = cur = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def test_for_each_parallelism_caps_concurrency_and_keeps_item_order(sim):
    out = sim.tmp / "stamps"
    out.mkdir()
    rec = sim.run(
        f"""
        pipecast: 1
        name: fan
        steps:
          fan:
            for_each: [{{n: a, t: 0.4}}, {{n: b, t: 0.05}}, {{n: c, t: 0.3}}, {{n: d, t: 0.05}}, {{n: e, t: 0.1}}]
            as: it
            parallelism: 2
            steps:
              s:
                run: {{python: "steps:stamp"}}
                inputs: {{folder: "{out}", name: "{{{{ it.n }}}}", seconds: "{{{{ it.t }}}}"}}
                outputs: {{output: str}}
            outputs: {{names: "{{{{ steps.s.outputs.output }}}}"}}
        """,
        max_parallel=8,
    )
    assert rec["status"] == "succeeded"
    assert rec["steps"]["fan"]["outputs"]["names"] == ["a", "b", "c", "d", "e"]
    assert _overlap(out) == 2


def test_independent_steps_run_concurrently_up_to_max_parallel(sim):
    out = sim.tmp / "stamps"
    out.mkdir()
    steps = "\n".join(
        f"""  s{i}:
    run: {{python: "steps:stamp"}}
    inputs: {{folder: "{out}", name: "s{i}", seconds: 0.3}}"""
        for i in range(4)
    )
    rec = sim.run(f"pipecast: 1\nname: wide\nsteps:\n{steps}\n", max_parallel=3)
    assert rec["status"] == "succeeded"
    assert _overlap(out) == 3


def test_nested_for_each_keys_and_outputs(sim):
    rec = sim.run(
        """
        pipecast: 1
        name: nested
        steps:
          rows:
            for_each: [1, 2]
            as: r
            steps:
              cols:
                for_each: [10, 20, 30]
                as: c
                steps:
                  cell:
                    run: {python: "steps:add"}
                    inputs: {a: "{{ r }}", b: "{{ c }}"}
                    outputs: {output: int}
                outputs: {vals: "{{ steps.cell.outputs.output }}"}
            outputs: {grid: "{{ steps.cols.outputs.vals }}"}
          sum:
            run: {python: "steps:emit"}
            inputs: {value: "{{ steps.rows.outputs.grid }}"}
            outputs: {output: list}
        """
    )
    assert rec["status"] == "succeeded"
    assert outputs(rec, "cell[1][2]")["output"] == 32
    assert outputs(rec, "cell[0][0]")["output"] == 11
    assert statuses(rec)["cols[1]"] == "succeeded"
    assert outputs(rec, "sum")["output"] == [[11, 21, 31], [12, 22, 32]]


def test_dict_items_and_loop_keys(sim):
    rec = sim.run(
        """
        pipecast: 1
        name: dicts
        params:
          jobs: {type: list, default: [{n: a, k: 1}, {n: b, k: 2}]}
        steps:
          each:
            for_each: "{{ params.jobs }}"
            as: job
            steps:
              s:
                run: {python: "steps:emit"}
                inputs: {value: "{{ job.n }}-{{ job.k }}"}
                outputs: {output: str}
            outputs: {v: "{{ steps.s.outputs.output }}"}
        outputs:
          labels: "{{ steps.each.outputs.v }}"
        """
    )
    assert rec["outputs"] == {"labels": ["a-1", "b-2"]}


FINALLY = """
pipecast: 1
name: fin
params:
  bad: {type: bool, default: false}
steps:
  ok:
    run: {python: "steps:emit"}
    inputs: {value: 1}
    outputs: {output: int}
  maybe_bad:
    when: "params.bad"
    run: {python: "steps:boom"}
    inputs: {message: "kaput"}
    after: [ok]
  later:
    run: {python: "steps:emit"}
    inputs: {value: 2}
    after: [maybe_bad]
finally:
  run: {python: "steps:status"}
  inputs: {s: "{{ pipeline.status }}"}
  outputs: {output: str}
"""


def test_finally_after_success_and_failure(sim):
    good = sim.run(FINALLY)
    assert good["status"] == "succeeded"
    assert outputs(good, "finally")["output"] == "succeeded"
    bad = sim.run(FINALLY, params={"bad": "true"})
    assert bad["status"] == "failed"
    assert statuses(bad) == {
        "ok": "succeeded",
        "maybe_bad": "failed",
        "later": "not_run",
        "finally": "succeeded",
    }
    assert outputs(bad, "finally")["output"] == "failed"
    assert "ValueError: kaput" in bad["steps"]["maybe_bad"]["error"]


def test_failing_finally_fails_the_pipeline(sim):
    rec = sim.run(
        """
        pipecast: 1
        name: badfin
        steps:
          ok: {run: {python: "steps:emit"}, inputs: {value: 1}}
        finally:
          run: {python: "steps:boom"}
          inputs: {message: "in finally"}
        """
    )
    assert rec["status"] == "failed"
    assert statuses(rec) == {"ok": "succeeded", "finally": "failed"}


def test_failure_stops_new_steps_but_running_ones_finish(sim):
    rec = sim.run(
        f"""
        pipecast: 1
        name: stop
        steps:
          slow:
            run: {{python: "steps:stamp"}}
            inputs: {{folder: "{sim.tmp}", name: slow.txt, seconds: 0.5}}
            outputs: {{output: str}}
          bad:
            run: {{python: "steps:boom"}}
            inputs: {{message: x}}
          queued:
            run: {{python: "steps:emit"}}
            inputs: {{value: 1}}
          after_slow:
            run: {{python: "steps:emit"}}
            inputs: {{value: "{{{{ steps.slow.outputs.output }}}}"}}
        """,
        max_parallel=2,
    )
    assert statuses(rec) == {
        "slow": "succeeded",
        "bad": "failed",
        "queued": "not_run",
        "after_slow": "not_run",
    }
    assert rec["status"] == "failed"


def test_crashes_fail_only_their_step(sim):
    rec = sim.run(
        f"""
        pipecast: 1
        name: crash
        steps:
          ex: {{run: {{python: "steps:exit3"}}}}
          seg: {{run: {{python: "steps:segfault"}}}}
          mem: {{run: {{python: "steps:memory"}}}}
          fine:
            run: {{python: "steps:stamp"}}
            inputs: {{folder: "{sim.tmp}", name: fine.txt, seconds: 0.3}}
            outputs: {{output: str}}
        """,
        max_parallel=4,
    )
    st = statuses(rec)
    assert st == {"ex": "failed", "seg": "failed", "mem": "failed", "fine": "succeeded"}
    assert "exited with code 3" in rec["steps"]["ex"]["error"]
    assert "SIGSEGV" in rec["steps"]["seg"]["error"]
    assert "MemoryError" in rec["steps"]["mem"]["error"]
    # the simulator keeps working afterwards
    again = sim.run(
        "pipecast: 1\nname: after\nsteps:\n  a: {run: {python: 'steps:emit'}, inputs: {value: 1}}\n"
    )
    assert again["status"] == "succeeded"


def test_fault_injection(sim):
    text = """
        pipecast: 1
        name: inject
        steps:
          s:
            run: {python: "steps:emit"}
            inputs: {value: 1}
            retry: {attempts: 3, delay: 0.01}
            outputs: {output: int}
        finally:
          run: {python: "steps:status"}
          inputs: {s: "{{ pipeline.status }}"}
          outputs: {output: str}
        """
    rec = sim.run(text, fail=["s:2"])
    assert rec["steps"]["s"]["status"] == "succeeded" and rec["steps"]["s"]["attempts"] == 3
    rec = sim.run(text, fail=["s"])
    assert rec["steps"]["s"]["status"] == "failed" and rec["steps"]["s"]["attempts"] == 3
    assert outputs(rec, "finally")["output"] == "failed"
    from pipecast.diagnostics import UserError

    with pytest.raises(UserError, match="did you mean 's'"):
        sim.run(text, fail=["ss"])


def test_dry_run_timeline_and_critical_path(sim, tmp_path):
    mock = tmp_path / "mock.yaml"
    mock.write_text(
        "a: {duration: 2s}\nb: {duration: 3s}\nc: {duration: 5s}\nd: {duration: 1s, outputs: {output: 42}}\n"
    )
    rec = sim.run(
        """
        pipecast: 1
        name: plan
        steps:
          a: {run: {python: "steps:emit"}, inputs: {value: 1}, outputs: {output: int}}
          b: {run: {python: "steps:emit"}, inputs: {value: "{{ steps.a.outputs.output }}"}}
          c: {run: {python: "steps:emit"}, inputs: {value: "{{ steps.a.outputs.output }}"}}
          d: {run: {python: "steps:emit"}, inputs: {value: 1}, after: [b, c], outputs: {output: int}}
        """,
        dry_run=True,
        mock=mock,
        max_parallel=4,
    )
    tl = rec["timeline"]
    assert tl["duration"] == 8
    assert [(r["step"], r["start"], r["end"]) for r in tl["tasks"]] == [
        ("a", 0, 2),
        ("b", 2, 5),
        ("c", 2, 7),
        ("d", 7, 8),
    ]
    assert tl["critical_path"] == ["a", "c", "d"]
    assert outputs(rec, "d")["output"] == 42
    assert not (sim.runs / rec["run_id"]).exists()


def test_secrets_reach_the_step_and_never_the_record_or_logs(sim, tmp_path):
    value = "hunter2-very-secret"
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text(f"# local secrets\napi-token='{value}'\n")
    rec = sim.run(
        """
        pipecast: 1
        name: sec
        steps:
          s:
            run: {python: "steps:show_secret"}
            inputs: {name: TOKEN}
            secrets: {TOKEN: api-token}
            outputs: {output: str}
        """,
        secrets=secrets_file,
    )
    assert rec["status"] == "succeeded"
    folder = sim.runs / rec["run_id"]
    for path in folder.rglob("*"):
        if path.is_file():
            assert value.encode() not in path.read_bytes(), path
    log = (folder / rec["steps"]["s"]["logs"][0]).read_text()
    assert "the secret is ***" in log
    from pipecast.diagnostics import UserError

    with pytest.raises(UserError, match="API_TOKEN"):
        sim.run(
            "pipecast: 1\nname: sec2\nsteps:\n  s: {run: {python: 'steps:emit'}, inputs: {value: 1}, secrets: {T: api-token}}\n"
        )
