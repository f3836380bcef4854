"""Run :func:`pipecast.verify.kfp_local.run_local` in a child process with a time bound.

kfp.local runs a pipeline's tasks in thread pools (one per ``ParallelFor``) in the calling
process; a run that never ends there would hold its caller forever, and its patches (working
directory, environment, kfp functions) would stay in place. Here each run gets a process of
its own, forked from a ``forkserver`` that imported kfp once (so a run costs a fork, not a
fresh interpreter), in a process group of its own (so its task subprocesses end with it). On
a timeout the child's thread stacks are collected (``faulthandler`` on ``SIGUSR1``) before
the group is killed, and :class:`KfpHang` carries them: a hang is reported with where it was.
"""

from __future__ import annotations

import contextlib
import faulthandler
import multiprocessing
import os
import signal
import time
import traceback
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from pipecast.passes.analysis import PipelineIndex

_PRELOAD = ["kfp.local", "pipecast.verify.kfp_local"]
_context: Any = None


class KfpHang(TimeoutError):
    """A kfp.local run that did not end within its bound; ``stacks`` are its threads' stacks."""

    def __init__(self, seconds: float, stacks: str) -> None:
        super().__init__(f"kfp.local did not finish within {seconds:g} s")
        self.stacks = stacks


def _forkserver() -> Any:
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(_PRELOAD)
    return _context


def _child(conn: Connection, work: str, environment: dict[str, str], args: tuple[Any, ...]) -> None:
    from pipecast.verify.kfp_local import run_local

    # A forkserver's children start from its environment, not the caller's at this moment.
    os.environ.clear()
    os.environ.update(environment)
    os.setpgrp()  # the task subprocesses kfp.local starts belong to this group
    # kfp.local streams every task's log to stdout: keep it beside the run, not in the caller's.
    with open(Path(work) / "kfp_local.log", "w", encoding="utf-8") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    stacks = open(Path(work) / "stacks.txt", "w", encoding="utf-8")  # noqa: SIM115 (lives with the process)
    faulthandler.register(signal.SIGUSR1, file=stacks, all_threads=True)
    try:
        conn.send(("ok", run_local(*args)))
    except BaseException as exc:  # handed to the parent, raised there
        try:
            conn.send(("raised", exc))
        except Exception:  # an exception that does not pickle: its text
            conn.send(("raised", RuntimeError("".join(traceback.format_exception(exc)))))


def run_bounded(
    spec_path: Path,
    params: Mapping[str, Any],
    work: Path,
    python_path: Sequence[Path],
    env: Mapping[str, str] | None = None,
    index: PipelineIndex | None = None,
    *,
    timeout: float,
) -> dict[str, Any]:
    """:func:`~pipecast.verify.kfp_local.run_local` in a child process; :class:`KfpHang` after
    ``timeout`` seconds (the child and its tasks killed), the child's exception if it raised."""
    ctx = _forkserver()
    receive, send = ctx.Pipe(duplex=False)
    args = (Path(spec_path), dict(params), Path(work), [Path(p) for p in python_path], dict(env or {}), index)
    process = ctx.Process(target=_child, args=(send, str(work), dict(os.environ), args), daemon=True)
    process.start()
    send.close()
    try:
        if receive.poll(timeout):
            try:
                kind, value = receive.recv()
            except EOFError:  # the child died without an answer
                process.join(5)
                raise RuntimeError(
                    f"kfp.local child ended without a result (exit code {process.exitcode})"
                ) from None
            process.join(30)
            if kind == "raised":
                raise value
            result: dict[str, Any] = value
            return result
        stacks = _stacks(process.pid, work / "stacks.txt")
        raise KfpHang(timeout, stacks)
    finally:
        receive.close()
        if process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.join(5)


def _stacks(pid: int | None, path: Path) -> str:
    """Ask the child for its threads' stacks (``SIGUSR1``) and read them back."""
    if pid is None:
        return ""
    try:
        os.kill(pid, signal.SIGUSR1)
    except ProcessLookupError:
        return ""
    time.sleep(1.0)
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
