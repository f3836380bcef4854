"""Run ONE attempt of a task step (SPEC §3.1): the single executor shared by the simulator
and the in-container runtime, so both fail, time out and produce outputs the same way.

Simple path::

    result = run_attempt(spec, inputs, workdir, timeout=5.0, log_path=workdir / "step.log")
    if result.ok:
        result.outputs      # {"rows": 5000, "table": "/abs/path/to/workdir/outputs/table"}
    else:
        result.error        # "ValueError: bad input" / "timed out after 5s" / "killed by signal 11 (SIGSEGV)"

Fast path for many small steps (a warm pool of worker processes that keep user modules
imported; a worker that crashes or times out is killed and replaced)::

    with ExecutorPool(size=4, python_path=[str(pipeline_dir)]) as pool:
        result = pool.run_attempt(spec, inputs, workdir, timeout=None, log_path=log)

``ExecutorPool.run_attempt`` is thread-safe and takes the same arguments as
:func:`run_attempt` except ``python_path`` (fixed per pool) and ``containers`` (container
steps are spawned as with :func:`run_attempt`, with the pool's ``containers`` mode).

Semantics:

* ``inputs`` are already resolved: parameter values, and artifact inputs as local paths
  (``str``; a collected list of artifacts as a list of paths).
* Python steps: ``module.path`` is imported with ``python_path`` first on ``sys.path`` (then
  the current directory), the function is called with the inputs as keyword arguments plus one
  keyword argument per artifact output (a local path to write a file or a folder at).
  With two or more parameter outputs it must return a dict keyed by output name; with exactly
  one, its return value is that output. Returned values are checked against the declared
  types (an ``int`` is accepted, and converted, for a ``float``).
* Container steps: ``{{ inputs.X }}`` in ``command``/``args`` becomes the value (a string
  raw, anything else JSON) or the artifact's local path; ``{{ outputs.Y }}`` becomes a local
  path to write. A parameter output file holds its value (``str``: raw text, verbatim;
  others: JSON) and is read back and type-checked. ``containers="host"`` runs the command on
  this machine (the image is ignored); ``docker``/``podman`` run it in the image with the
  work folder and every input path mounted at the same path.
* Output locations: ``output_paths[name]`` if given, else ``workdir/outputs/<name>``. Anything
  already there is removed before the attempt (a retry never sees a failed try's leftovers);
  the parent folder is created. Every artifact output must exist after a successful attempt.
* Every attempt runs in a child process in a new session; a crash (segfault, ``os._exit``,
  ``MemoryError``) fails only that attempt. On timeout the whole process group is killed
  with ``SIGKILL`` (a docker container is killed too).
* The step's stdout and stderr go to ``log_path`` (appended), or to this process's stdout
  and stderr when ``log_path`` is ``None``. A failing python step's traceback is written
  there as well. Strings in ``mask`` (secret values) are replaced by ``***`` in the log.
* ``env`` adds variables on top of the current environment for the attempt.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from pipecast.ir.models import ContainerRun, PythonRun
from pipecast.ir.refs import Ref
from pipecast.runtime import _child, _procs
from pipecast.runtime._values import OutputError, from_text, is_artifact, to_text
from pipecast.runtime.spec import StepSpec
from pipecast.runtime.spec_text import fill_text

ContainerMode = Literal["host", "docker", "podman"]
MASK = "***"
#: Seconds between liveness checks of a worker that is running an attempt.
_LIVENESS_POLL = 0.5


@dataclass
class AttemptResult:
    """The outcome of one attempt."""

    ok: bool
    #: Parameter outputs as values; artifact outputs as local paths (``str``).
    outputs: dict[str, Any]
    #: One-line summary: ``"ValueError: bad"``, ``"timed out after 5s"``, ``"killed by signal 11 (SIGSEGV)"``.
    error: str | None
    exit_code: int | None
    timed_out: bool
    duration: float
    #: The Python traceback of a failing python step (also written to the log).
    traceback: str | None = field(default=None, repr=False)


# --------------------------------------------------------------------------- helpers


def output_locations(
    spec: StepSpec, workdir: Path, output_paths: Mapping[str, Path] | None
) -> dict[str, Path]:
    given = dict(output_paths or {})
    return {name: Path(given[name]) if name in given else workdir / "outputs" / name for name in spec.outputs}


def _prepare_outputs(locations: Mapping[str, Path]) -> None:
    for path in locations.values():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)


def _check_artifacts(spec: StepSpec, locations: Mapping[str, Path]) -> str | None:
    for name, type_name in spec.outputs.items():
        if is_artifact(type_name) and not locations[name].exists():
            return (
                f"step did not write artifact output {name!r} ({type_name}): "
                f"expected a file or folder at {locations[name]}"
            )
    return None


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def exit_summary(code: int) -> str:
    if code < 0:
        return f"killed by signal {-code} ({_signal_name(-code)})"
    return f"process exited with code {code}"


def _fmt_seconds(seconds: float) -> str:
    return f"{seconds:g}s"


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    """Kill the attempt's whole process tree: its group and every descendant, including
    those that left the group with ``setsid``."""
    if proc.poll() is None:
        _procs.kill_tree(proc.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _mask_file(path: Path, mask: Sequence[str]) -> None:
    secrets = [m for m in mask if m]
    if not secrets or not path.exists():
        return
    data = path.read_bytes()
    masked = data
    for secret in sorted(secrets, key=len, reverse=True):
        masked = masked.replace(secret.encode(), MASK.encode())
    if masked != data:
        path.write_bytes(masked)


class _MaskPump(threading.Thread):
    """Copies a child's pipe to a sink line by line, replacing secret values."""

    def __init__(self, source: IO[bytes], sink: IO[bytes], mask: Sequence[str]) -> None:
        super().__init__(daemon=True)
        self.source, self.sink = source, sink
        self.secrets = sorted((m.encode() for m in mask if m), key=len, reverse=True)

    def run(self) -> None:
        for line in iter(self.source.readline, b""):
            for secret in self.secrets:
                line = line.replace(secret, MASK.encode())
            self.sink.write(line)
            self.sink.flush()
        self.source.close()


# --------------------------------------------------------------------------- python steps


class _Worker:
    """One child process running :mod:`pipecast.runtime._child`."""

    def __init__(
        self,
        python_path: Sequence[str] = (),
        *,
        stdout: Any = None,
        stderr: Any = None,
    ) -> None:
        req_r, self._req_w = os.pipe()
        self._res_r, res_w = os.pipe()
        env = dict(os.environ)
        # The child must find pipecast itself even when it runs from a source checkout.
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.python_path = list(python_path)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipecast.runtime._child", str(req_r), str(res_w), str(os.getpid())],
            pass_fds=(req_r, res_w),
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=env,
        )
        os.close(req_r)
        os.close(res_w)

    def request(self, message: dict[str, Any], timeout: float | None) -> tuple[dict[str, Any] | None, bool]:
        """Send one request; return ``(response, timed_out)``; ``None`` if the child died."""
        try:
            _child.write_msg(self._req_w, message)
        except (BrokenPipeError, OSError):
            return None, False
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        while True:
            # Wake up now and then to see whether the child is still alive: its death
            # normally shows as EOF, but not when a process forked meanwhile (without exec)
            # by other code in this process still holds a copy of the pipe's write end.
            wait = _LIVENESS_POLL if deadline is None else min(_LIVENESS_POLL, deadline - time.monotonic())
            ready, _, _ = select.select([self._res_r], [], [], max(wait, 0.0))
            if ready:
                break
            if deadline is not None and time.monotonic() >= deadline:
                self.kill()
                return None, True
            if self.proc.poll() is not None:
                ready, _, _ = select.select([self._res_r], [], [], 0)
                if not ready:
                    return None, False
                break
        try:
            return _child.read_msg(self._res_r), False
        except (OSError, ValueError):
            return None, False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        _kill_group(self.proc)
        self._close()

    def close(self) -> None:
        """Ask the child to exit (EOF on its request pipe) and reap it."""
        self._close()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc)

    def exit_code(self) -> int | None:
        try:
            return self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc)
            return self.proc.returncode

    def _close(self) -> None:
        for fd in (self._req_w, self._res_r):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._req_w = self._res_r = -1


def _python_request(
    spec: StepSpec,
    inputs: Mapping[str, Any],
    locations: Mapping[str, Path],
    env: Mapping[str, str] | None,
    log_path: Path | None,
    python_path: Sequence[str],
) -> dict[str, Any]:
    assert isinstance(spec.run, PythonRun)
    return {
        "target": spec.run.python,
        "kwargs": dict(inputs),
        "params": {n: t for n, t in spec.outputs.items() if not is_artifact(t)},
        "artifacts": {n: str(locations[n]) for n, t in spec.outputs.items() if is_artifact(t)},
        "python_path": [str(p) for p in python_path],
        "env": dict(env or {}),
        "log": str(log_path) if log_path else None,
    }


def _finish_python(
    spec: StepSpec,
    response: dict[str, Any] | None,
    timed_out: bool,
    worker: _Worker,
    locations: Mapping[str, Path],
    timeout: float | None,
    started: float,
) -> AttemptResult:
    duration = time.monotonic() - started
    if timed_out:
        return AttemptResult(False, {}, f"timed out after {_fmt_seconds(timeout or 0)}", None, True, duration)
    if response is None:
        code = worker.exit_code()
        return AttemptResult(False, {}, exit_summary(code if code is not None else -9), code, False, duration)
    if not response["ok"]:
        return AttemptResult(
            False, {}, response["error"], 1, False, duration, traceback=response.get("traceback") or None
        )
    missing = _check_artifacts(spec, locations)
    if missing:
        return AttemptResult(False, {}, missing, 1, False, duration)
    outputs = dict(response["outputs"])
    for name, type_name in spec.outputs.items():
        if is_artifact(type_name):
            outputs[name] = str(locations[name])
    return AttemptResult(True, outputs, None, 0, False, duration)


def _run_python_spawn(
    spec: StepSpec,
    inputs: Mapping[str, Any],
    locations: Mapping[str, Path],
    *,
    timeout: float | None,
    log_path: Path | None,
    env: Mapping[str, str] | None,
    python_path: Sequence[str],
    mask: Sequence[str],
) -> AttemptResult:
    started = time.monotonic()
    pumps: list[_MaskPump] = []
    log_fh = None
    if any(mask):
        # Route the child's output through pumps that mask secret values as they stream.
        worker = _Worker(python_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if log_path is not None:
            log_fh = open(log_path, "ab")  # noqa: SIM115 - closed below
            sinks: tuple[IO[bytes], IO[bytes]] = (log_fh, log_fh)
        else:
            sinks = (sys.stdout.buffer, sys.stderr.buffer)
        assert worker.proc.stdout is not None and worker.proc.stderr is not None
        pumps = [
            _MaskPump(worker.proc.stdout, sinks[0], mask),
            _MaskPump(worker.proc.stderr, sinks[1], mask),
        ]
        for pump in pumps:
            pump.start()
        request_log = None
    else:
        out = open(log_path, "ab") if log_path is not None else None  # noqa: SIM115
        worker = _Worker(python_path, stdout=out, stderr=out)
        if out is not None:
            out.close()
        request_log = None
    try:
        request = _python_request(spec, inputs, locations, env, request_log, python_path)
        response, timed_out = worker.request(request, timeout)
        result = _finish_python(spec, response, timed_out, worker, locations, timeout, started)
    finally:
        worker.close()
        for pump in pumps:
            pump.join(timeout=5)
        if log_fh is not None:
            log_fh.close()
    return result


# --------------------------------------------------------------------------- container steps


def substitute(text: str, spec: StepSpec, inputs: Mapping[str, Any], locations: Mapping[str, Path]) -> str:
    """Replace ``{{ inputs.X }}`` / ``{{ outputs.Y }}`` placeholders in one argument; ``\\{{``
    is a literal ``{{`` (SPEC §19)."""
    if "{{" not in text:
        return text

    def fill(ref: Ref) -> str:
        name = ref.name
        if ref.kind == "inputs":
            if name not in inputs:
                raise OutputError(f"command refers to unknown input {name!r} (inputs: {', '.join(inputs)})")
            return to_text(inputs[name])
        if ref.kind == "outputs":
            if name not in locations:
                raise OutputError(
                    f"command refers to unknown output {name!r} (outputs: {', '.join(locations)})"
                )
            return str(locations[name])
        return str(ref)

    return fill_text(text, fill)


def _container_argv(
    run: ContainerRun,
    argv: list[str],
    mode: ContainerMode,
    workdir: Path,
    inputs: Mapping[str, Any],
    locations: Mapping[str, Path],
    env: Mapping[str, str] | None,
    name: str,
) -> list[str]:
    if mode == "host":
        return argv
    mounts: set[Path] = {workdir.resolve()}
    mounts.update(p.parent.resolve() for p in locations.values())
    for value in inputs.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item.startswith("/") and os.path.exists(item):
                mounts.add(Path(item).resolve())
    # --init: a PID 1 that forwards signals and reaps, so a stop/kill of the container ends
    # the command's whole tree (https://docs.docker.com/reference/cli/docker/container/run/#init).
    cmd = [mode, "run", "--rm", "--init", "--name", name, "--user", f"{os.getuid()}:{os.getgid()}"]
    for mount in sorted(mounts):
        cmd += ["-v", f"{mount}:{mount}"]
    for key, value in sorted((env or {}).items()):
        cmd += ["-e", f"{key}={value}"]
    return [*cmd, "--entrypoint", argv[0], run.image, *argv[1:]]


_container_counter = iter(range(1, 1 << 62))


def _run_container(
    spec: StepSpec,
    inputs: Mapping[str, Any],
    workdir: Path,
    locations: Mapping[str, Path],
    *,
    timeout: float | None,
    log_path: Path | None,
    env: Mapping[str, str] | None,
    containers: ContainerMode,
    mask: Sequence[str],
) -> AttemptResult:
    assert isinstance(spec.run, ContainerRun)
    started = time.monotonic()
    try:
        argv = [substitute(a, spec, inputs, locations) for a in [*spec.run.command, *spec.run.args]]
    except OutputError as exc:
        return AttemptResult(False, {}, str(exc), None, False, time.monotonic() - started)
    name = f"pipecast-{os.getpid()}-{next(_container_counter)}"
    argv = _container_argv(spec.run, argv, containers, workdir, inputs, locations, env, name)
    argv = _guarded(argv, containers, name)
    full_env = {**os.environ, **(env or {})}
    pumps: list[_MaskPump] = []
    log_fh = None
    masking = any(mask)
    if log_path is not None:
        log_fh = open(log_path, "ab")  # noqa: SIM115 - closed below
    try:
        try:
            proc = subprocess.Popen(
                argv,
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if masking else log_fh,
                stderr=subprocess.PIPE if masking else log_fh,
                env=full_env,
            )
        except OSError as exc:
            return AttemptResult(
                False,
                {},
                f"cannot start {argv[0]!r}: {exc.strerror or exc}",
                None,
                False,
                time.monotonic() - started,
            )
        if masking:
            sinks = (log_fh, log_fh) if log_fh else (sys.stdout.buffer, sys.stderr.buffer)
            assert proc.stdout is not None and proc.stderr is not None
            pumps = [_MaskPump(proc.stdout, sinks[0], mask), _MaskPump(proc.stderr, sinks[1], mask)]
            for pump in pumps:
                pump.start()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            if containers != "host":
                subprocess.run([containers, "kill", name], capture_output=True, check=False)
            _kill_group(proc)
            for pump in pumps:
                pump.join(timeout=5)
            return AttemptResult(
                False,
                {},
                f"timed out after {_fmt_seconds(timeout or 0)}",
                None,
                True,
                time.monotonic() - started,
            )
        for pump in pumps:
            pump.join(timeout=5)
    finally:
        if log_fh is not None:
            log_fh.close()
    duration = time.monotonic() - started
    if code != 0:
        return AttemptResult(False, {}, exit_summary(code), code, False, duration)
    return _container_outputs(spec, locations, code, duration)


def _guarded(argv: list[str], containers: ContainerMode, name: str) -> list[str]:
    """``argv`` under the guard (Linux): it ends the command's processes with it and when this
    process dies; a container (run by the engine's daemon, not a descendant) is removed by
    name."""
    if argv and shutil.which(argv[0]) and sys.platform.startswith("linux"):
        guard = str(Path(_procs.__file__).with_name("_guard.py"))
        owned = [] if containers == "host" else ["--container", containers, name]
        return [sys.executable, "-E", "-s", guard, str(os.getpid()), *owned, *argv]
    return argv


def _container_outputs(
    spec: StepSpec, locations: Mapping[str, Path], code: int, duration: float
) -> AttemptResult:
    """The outcome of a container command that exited 0: its parameter outputs read from their
    files, its artifacts checked."""
    outputs: dict[str, Any] = {}
    try:
        for out_name, type_name in spec.outputs.items():
            path = locations[out_name]
            if is_artifact(type_name):
                continue
            if not path.is_file():
                raise OutputError(f"step did not write parameter output {out_name!r} ({type_name}) to {path}")
            outputs[out_name] = from_text(out_name, type_name, path.read_text(encoding="utf-8"))
    except OutputError as exc:
        return AttemptResult(False, {}, str(exc), code, False, duration)
    missing = _check_artifacts(spec, locations)
    if missing:
        return AttemptResult(False, {}, missing, code, False, duration)
    for out_name, type_name in spec.outputs.items():
        if is_artifact(type_name):
            outputs[out_name] = str(locations[out_name])
    return AttemptResult(True, outputs, None, code, False, duration)


# --------------------------------------------------------------------------- public API


def run_attempt(
    spec: StepSpec,
    inputs: dict[str, Any],
    workdir: Path,
    *,
    timeout: float | None,
    log_path: Path | None,
    env: Mapping[str, str] | None = None,
    python_path: Sequence[str] = (),
    containers: ContainerMode = "host",
    output_paths: Mapping[str, Path] | None = None,
    mask: Sequence[str] = (),
) -> AttemptResult:
    """Run one attempt of ``spec`` in a fresh child process (see the module docstring)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    locations = output_locations(spec, workdir, output_paths)
    _prepare_outputs(locations)
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    if isinstance(spec.run, PythonRun):
        return _run_python_spawn(
            spec,
            inputs,
            locations,
            timeout=timeout,
            log_path=log_path,
            env=env,
            python_path=python_path,
            mask=mask,
        )
    return _run_container(
        spec,
        inputs,
        workdir,
        locations,
        timeout=timeout,
        log_path=log_path,
        env=env,
        containers=containers,
        mask=mask,
    )


class ExecutorPool:
    """Warm worker processes for python steps (see the module docstring).

    Workers are started on demand up to ``size`` and kept between attempts; a worker whose
    attempt timed out or that died is discarded and replaced by a fresh one on the next
    request. Workers keep user modules imported, so a pool serves one ``python_path``.
    """

    def __init__(
        self, size: int = 4, *, python_path: Sequence[str] = (), containers: ContainerMode = "host"
    ) -> None:
        if size < 1:
            raise ValueError("an ExecutorPool needs at least one worker")
        self.size = size
        self.python_path = [str(p) for p in python_path]
        self.containers: ContainerMode = containers
        self._idle: list[_Worker] = []
        self._count = 0
        self._cond = threading.Condition()
        self._closed = False

    def __enter__(self) -> ExecutorPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def warm(self, n: int | None = None) -> None:
        """Start ``n`` (default ``size``) workers now rather than on first use."""
        workers = [self._acquire() for _ in range(min(n or self.size, self.size))]
        for worker in workers:
            self._release(worker)

    def _acquire(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("the ExecutorPool is closed")
                if self._idle:
                    return self._idle.pop()
                if self._count < self.size:
                    self._count += 1
                    break
                self._cond.wait()
        try:
            return _Worker(self.python_path)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def _release(self, worker: _Worker, *, broken: bool = False) -> None:
        if broken or not worker.alive():
            worker.kill()
            with self._cond:
                self._count -= 1
                self._cond.notify()
            return
        with self._cond:
            if self._closed:
                worker.close()
                self._count -= 1
            else:
                self._idle.append(worker)
            self._cond.notify()

    def run_attempt(
        self,
        spec: StepSpec,
        inputs: dict[str, Any],
        workdir: Path,
        *,
        timeout: float | None,
        log_path: Path | None,
        env: Mapping[str, str] | None = None,
        output_paths: Mapping[str, Path] | None = None,
        mask: Sequence[str] = (),
    ) -> AttemptResult:
        """Like :func:`run_attempt`, on a warm worker for python steps."""
        workdir = Path(workdir)
        if not isinstance(spec.run, PythonRun):
            return run_attempt(
                spec,
                inputs,
                workdir,
                timeout=timeout,
                log_path=log_path,
                env=env,
                containers=self.containers,
                output_paths=output_paths,
                mask=mask,
            )
        workdir.mkdir(parents=True, exist_ok=True)
        locations = output_locations(spec, workdir, output_paths)
        _prepare_outputs(locations)
        if log_path is not None:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        worker = self._acquire()
        broken = True
        try:
            request = _python_request(spec, inputs, locations, env, log_path, self.python_path)
            response, timed_out = worker.request(request, timeout)
            broken = response is None
            result = _finish_python(spec, response, timed_out, worker, locations, timeout, started)
        finally:
            self._release(worker, broken=broken)
        if log_path is not None and any(mask):
            _mask_file(Path(log_path), mask)
        return result

    def close(self) -> None:
        """Stop every idle worker; busy ones stop when their attempt ends."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._cond.notify_all()
        for worker in idle:
            worker.close()
