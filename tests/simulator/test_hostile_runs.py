"""Issue 15: secrets, run ids, locks and interrupted runs in the simulator."""

from __future__ import annotations

import json

import pytest

from pipecast.diagnostics import UserError

SECRET = "s3cr3t-value-42"

LEAK = """
pipecast: 1
name: leak
steps:
  a:
    run: {python: "steps:token_line"}
    inputs: {name: TOKEN}
    secrets: {TOKEN: api-token}
    outputs: {output: str}
  b:
    run: {python: "steps:length"}
    inputs: {text: "{{ steps.a.outputs.output }}"}
    outputs: {output: int}
"""

EXTRA = """
def token_line(name):
    import os
    return "token=" + os.environ[name]

def length(text):
    return len(text)

def hello():
    return "hello world"
"""


@pytest.fixture
def env(sim):
    (sim.tmp / "steps.py").write_text((sim.tmp / "steps.py").read_text() + EXTRA)
    return sim


def _files(root):
    return [p for p in root.rglob("*") if p.is_file()]


def test_resume_reruns_a_step_whose_output_held_a_secret(env):
    rec = env.run(LEAK, secrets={"api-token": SECRET}, run_id="r1", fail=["b"])
    assert rec["status"] == "failed"
    assert rec["steps"]["a"]["outputs"]["output"] == "token=***"
    assert rec["steps"]["a"]["secret_outputs"] is True
    for path in _files(env.runs):
        assert SECRET.encode() not in path.read_bytes(), path
    rec = env.run(LEAK, secrets={"api-token": SECRET}, resume="r1")
    assert rec["status"] == "succeeded"
    # b computed from the real value, not from 'token=***'
    assert rec["steps"]["b"]["outputs"]["output"] == len("token=" + SECRET)
    assert not rec["steps"]["a"].get("resumed")


def test_a_secret_never_reaches_the_cache_in_plain_text(env):
    text = LEAK.replace(
        "    outputs: {output: str}\n  b:", "    outputs: {output: str}\n    cache: true\n  b:"
    )
    for run_id in ("c1", "c2"):
        rec = env.run(text, secrets={"api-token": SECRET}, run_id=run_id)
        assert rec["status"] == "succeeded"
        assert rec["steps"]["b"]["outputs"]["output"] == len("token=" + SECRET)
    for path in _files(env.runs):
        assert SECRET.encode() not in path.read_bytes(), path


def test_a_short_secret_does_not_mangle_other_values(env):
    text = """
    pipecast: 1
    name: short
    steps:
      s:
        run: {python: "steps:hello"}
        secrets: {T: tiny}
        outputs: {output: str}
      t:
        run: {python: "steps:length"}
        inputs: {text: "{{ steps.s.outputs.output }}"}
        outputs: {output: int}
    """
    rec = env.run(text, secrets={"tiny": "e"}, run_id="s1", fail=["t"])
    assert rec["steps"]["s"]["outputs"]["output"] == "hello world"
    assert any("'tiny' is shorter than" in w for w in rec["warnings"])
    rec = env.run(text, secrets={"tiny": "e"}, resume="s1")
    assert rec["steps"]["s"]["resumed"] is True
    assert rec["steps"]["t"]["outputs"]["output"] == 11
    assert json.loads((env.runs / "s1" / "run.json").read_text())["steps"]["s"]["outputs"]["output"] == (
        "hello world"
    )


def test_run_ids_are_names(env, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "run.json").write_text("{}")
    text = "pipecast: 1\nname: p\nsteps:\n  s: {run: {python: 'steps:hello'}, outputs: {output: str}}\n"
    for bad in ("../victim", "a/b", "..", "", ".hidden", "x" * 201):
        with pytest.raises(UserError, match="is not a run id"):
            env.run(text, run_id=bad)
        with pytest.raises(UserError, match="is not a run id"):
            env.run(text, resume=bad)
    assert (victim / "run.json").read_text() == "{}"
    assert not (tmp_path / "a").exists()
    from pipecast.cli import main

    assert main(["show", "../victim", "--run-dir", str(env.runs)]) == 1


def test_a_truncated_record_is_damaged_not_missing(env, capsys):
    from pipecast.cli import main

    rec = env.run(
        "pipecast: 1\nname: p\nsteps:\n  s: {run: {python: 'steps:hello'}, outputs: {output: str}}\n"
    )
    path = env.runs / rec["run_id"] / "run.json"
    path.write_text(path.read_text()[:40])
    assert main(["show", rec["run_id"], "--run-dir", str(env.runs)]) == 1
    err = capsys.readouterr().err
    assert "is damaged" in err and "no run record" not in err


PROCS = """
def spawn_setsid(pidfile, hang):
    import subprocess, time
    p = subprocess.Popen(["sleep", "60"], start_new_session=True)
    with open(pidfile, "w") as fh:
        fh.write(str(p.pid))
    if hang:
        time.sleep(60)
    return p.pid

def wait_flag(flag, value):
    import os, time
    while os.path.exists(flag):
        time.sleep(0.05)
    return value
"""


def _gone(pid: int, seconds: float = 5.0) -> bool:
    import os
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # a zombie is gone too (its parent has not reaped it yet)
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def penv(env):
    (env.tmp / "steps.py").write_text((env.tmp / "steps.py").read_text() + PROCS)
    return env


def test_a_step_s_processes_end_with_the_step_even_after_setsid(penv):
    pidfile = penv.tmp / "bg.pid"
    rec = penv.run(
        f"""
        pipecast: 1
        name: bg
        steps:
          s:
            run: {{python: "steps:spawn_setsid"}}
            inputs: {{pidfile: "{pidfile}", hang: false}}
            outputs: {{output: int}}
        """
    )
    assert rec["status"] == "succeeded"
    assert _gone(int(pidfile.read_text()))


def test_timeout_kills_descendants_that_called_setsid(penv):
    pidfile = penv.tmp / "hang.pid"
    rec = penv.run(
        f"""
        pipecast: 1
        name: hang
        steps:
          s:
            run: {{python: "steps:spawn_setsid"}}
            inputs: {{pidfile: "{pidfile}", hang: true}}
            timeout: 1s
        """
    )
    assert "timed out" in rec["steps"]["s"]["error"]
    assert _gone(int(pidfile.read_text()))


KILLED = """
pipecast: 1
name: killed
steps:
  a:
    run: {python: "steps:token_line"}
    inputs: {name: TOKEN}
    secrets: {TOKEN: api-token}
    outputs: {output: str}
  s:
    run: {python: "steps:wait_flag"}
    inputs: {flag: "FLAG1", value: "{{ steps.a.outputs.output }}"}
    secrets: {TOKEN: api-token}
    outputs: {output: str}
  c:
    run: {python: "steps:wait_flag"}
    inputs: {flag: "FLAG2", value: 5}
    cache: true
    after: [s]
    outputs: {output: int}
  d:
    run: {python: "steps:length"}
    inputs: {text: "{{ steps.s.outputs.output }}"}
    after: [c]
    outputs: {output: int}
"""


def _start_and_kill(penv, path, secrets_file, log):
    """Start 'pipecast run' as a CLI process, wait until ``log`` exists, kill -9 it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "pipecast", "run", str(path), "--run-dir", str(penv.runs)]
    cmd += ["--secrets", str(secrets_file), "--containers", "host", "--json"]
    cmd += ["--resume", "k1"] if (penv.runs / "k1" / "run.json").exists() else ["--run-id", "k1"]
    proc = subprocess.Popen(cmd, cwd=penv.tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not (penv.runs / "k1" / "logs" / log).exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"the run did not reach {log}: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.05)
    # A second run with the same id while the first holds the folder: a clear error.
    with pytest.raises(UserError, match="being run by another pipecast process"):
        penv.run(path, resume="k1", secrets={"api-token": SECRET})
    workers = [int(p) for p in _child_pids(proc.pid)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert workers and all(_gone(pid) for pid in workers), "workers outlived kill -9 of the run"


def _child_pids(pid):
    from pipecast.runtime._procs import descendants

    return descendants(pid)


def test_kill_9_during_a_secret_step_and_a_cached_step_then_resume(penv, capsys):
    from pipecast.cli import main

    flag1, flag2 = penv.tmp / "flag1", penv.tmp / "flag2"
    flag1.write_text("")
    flag2.write_text("")
    path = penv.write(KILLED.replace("FLAG1", str(flag1)).replace("FLAG2", str(flag2)))
    secrets_file = penv.tmp / "secrets.env"
    secrets_file.write_text(f"api-token={SECRET}\n")

    _start_and_kill(penv, path, secrets_file, "s.1.log")  # during the secret-holding step
    capsys.readouterr()
    assert main(["show", "k1", "--run-dir", str(penv.runs)]) == 0
    assert "interrupted" in capsys.readouterr().out
    assert main(["runs", "--run-dir", str(penv.runs), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "interrupted"

    flag1.unlink()
    _start_and_kill(penv, path, secrets_file, "c.1.log")  # during the cached step
    flag2.unlink()
    rec = penv.run(path, resume="k1", secrets={"api-token": SECRET})
    assert rec["status"] == "succeeded"
    assert rec["steps"]["d"]["outputs"]["output"] == len("token=" + SECRET)
    assert rec["steps"]["c"]["outputs"]["output"] == 5
    for p in _files(penv.runs):
        assert SECRET.encode() not in p.read_bytes(), p
    again = penv.run(path, secrets={"api-token": SECRET})
    assert again["steps"]["c"]["status"] == "cached"
    assert again["steps"]["d"]["outputs"]["output"] == len("token=" + SECRET)


def test_a_host_command_step_s_processes_end_with_it(penv):
    pidfile = penv.tmp / "cmd.pid"
    rec = penv.run(
        f"""
        pipecast: 1
        name: hostcmd
        steps:
          s:
            run: {{image: "alpine:3", command: [sh, -c, "setsid sleep 60 & echo $! > {pidfile}; exit 0"]}}
        """
    )
    assert rec["status"] == "succeeded", rec["steps"]["s"]
    assert _gone(int(pidfile.read_text()))


def test_two_runs_started_with_one_run_id_one_is_refused(penv):
    import subprocess
    import sys

    flag = penv.tmp / "hold"
    flag.write_text("")
    path = penv.write(
        f"""
        pipecast: 1
        name: same
        steps:
          s: {{run: {{python: "steps:wait_flag"}}, inputs: {{flag: "{flag}", value: 1}}, outputs: {{output: int}}}}
        """
    )
    cmd = [
        sys.executable,
        "-m",
        "pipecast",
        "run",
        str(path),
        "--run-dir",
        str(penv.runs),
        "--run-id",
        "same",
    ]
    procs = [
        subprocess.Popen(cmd, cwd=penv.tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    import time

    time.sleep(3)
    flag.unlink()
    results = [(p.wait(timeout=60), p.stderr.read() if p.stderr else "") for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    refused = next(err for code, err in results if code == 1)
    assert "being run by another pipecast process" in refused or "already exists" in refused


# A fake container engine: the client ('docker' on PATH) hands each 'run' to a daemon (a thread
# of this test process), so, as with the real engine, the container is no descendant of the
# client and dies only through 'docker kill' / 'docker rm -f'.
FAKE_ENGINE = r"""#!PYTHON
import json, os, signal, sys, time
spool = os.environ["FAKE_ENGINE_SPOOL"]
args = sys.argv[1:]
if args[0] == "info":
    sys.exit(0)
if args[0] in ("kill", "rm"):
    name = args[-1]
    with open(os.path.join(spool, "calls"), "a") as fh:
        fh.write(" ".join(args) + "\n")
    try:
        os.kill(int(open(os.path.join(spool, name + ".pid")).read()), signal.SIGKILL)
    except (OSError, ValueError):
        sys.exit(1)
    sys.exit(0)
assert args[0] == "run", args
name = args[args.index("--name") + 1]
entry = args.index("--entrypoint")
cmd = [args[entry + 1], *args[entry + 3:]]
with open(os.path.join(spool, name + ".tmp"), "w") as fh:
    json.dump(cmd, fh)
os.rename(os.path.join(spool, name + ".tmp"), os.path.join(spool, name + ".req"))
exit_file = os.path.join(spool, name + ".exit")
while not os.path.exists(exit_file):
    time.sleep(0.05)
sys.exit(int(open(exit_file).read() or 1))
"""


@pytest.fixture
def fake_engine(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys
    import threading
    import time

    spool, bindir = tmp_path / "spool", tmp_path / "bin"
    spool.mkdir()
    bindir.mkdir()
    client = bindir / "docker"
    client.write_text(FAKE_ENGINE.replace("PYTHON", sys.executable))
    client.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ENGINE_SPOOL", str(spool))
    stop = threading.Event()
    containers: list[subprocess.Popen[bytes]] = []

    def finish(name: str, proc: subprocess.Popen[bytes]) -> None:
        (spool / f"{name}.exit").write_text(str(128 + 9 if proc.wait() < 0 else proc.returncode))

    def daemon() -> None:
        while not stop.is_set():
            for req in spool.glob("*.req"):
                name = req.name[: -len(".req")]
                proc = subprocess.Popen(json.loads(req.read_text()), start_new_session=True)
                containers.append(proc)
                (spool / f"{name}.pid").write_text(str(proc.pid))
                req.unlink()
                threading.Thread(target=finish, args=(name, proc), daemon=True).start()
            time.sleep(0.05)

    thread = threading.Thread(target=daemon, daemon=True)
    thread.start()
    yield spool
    stop.set()
    for proc in containers:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_container_step_ends_with_a_killed_run(penv, fake_engine):
    import os
    import signal
    import subprocess
    import sys
    import time

    path = penv.write(
        """
        pipecast: 1
        name: ctr
        steps:
          s:
            run: {image: "alpine:3", command: [sleep, "60"]}
        """
    )
    cmd = [sys.executable, "-m", "pipecast", "run", str(path), "--run-dir", str(penv.runs)]
    proc = subprocess.Popen([*cmd, "--containers", "docker"], cwd=penv.tmp, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not list(fake_engine.glob("*.pid")):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"the container did not start: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.05)
    (pid_file,) = fake_engine.glob("*.pid")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _gone(int(pid_file.read_text())), "the container outlived kill -9 of the run"
    assert f"rm -f {pid_file.name[: -len('.pid')]}" in (fake_engine / "calls").read_text()


def test_a_container_step_that_times_out_is_killed(penv, fake_engine):
    rec = penv.run(
        """
        pipecast: 1
        name: ctr
        steps:
          s:
            run: {image: "alpine:3", command: [sleep, "60"]}
            timeout: 1s
        """,
        containers="docker",
    )
    assert "timed out" in rec["steps"]["s"]["error"]
    (pid_file,) = fake_engine.glob("*.pid")
    assert _gone(int(pid_file.read_text()))
