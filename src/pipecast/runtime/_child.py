"""The process that runs python steps: one request at a time, read from a pipe.

Started by :mod:`pipecast.runtime.executor` as ``python -m pipecast.runtime._child FD_IN FD_OUT``
in its own session (so a timeout can kill the whole process tree). It imports only the
standard library and :mod:`pipecast.runtime._values`, so it starts fast, and it keeps user
modules imported between requests (the warm pool reuses it). Messages on both pipes are a
4-byte big-endian length followed by UTF-8 JSON.

Request: ``{"target": "mod:fn", "kwargs": {...}, "params": {name: type},
"artifacts": {name: path}, "python_path": [...], "env": {...}, "log": path | null,
"mask": [...]}``. Response: ``{"ok": true, "outputs": {...}}`` or ``{"ok": false,
"error": "<one line>", "traceback": "..."}``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import struct
import sys
import threading
import time
import traceback
from typing import Any

from pipecast.runtime import _procs
from pipecast.runtime._values import OutputError, check_value

_HEADER = struct.Struct(">I")


def read_msg(fd: int) -> Any:
    header = _read_exact(fd, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    body = _read_exact(fd, size)
    if body is None:
        return None
    return json.loads(body)


def write_msg(fd: int, message: Any) -> None:
    body = json.dumps(message, allow_nan=True).encode()
    data = _HEADER.pack(len(body)) + body
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def summary(exc: BaseException) -> str:
    """``ValueError: bad input`` on one line (the first line of the message)."""
    text = str(exc).strip().splitlines()
    name = type(exc).__qualname__
    if type(exc).__module__ not in ("builtins", "__main__"):
        name = f"{type(exc).__module__}.{name}"
    return f"{name}: {text[0]}" if text else name


def call(request: dict[str, Any]) -> dict[str, Any]:
    """Import and call the step function; check and collect its outputs."""
    for entry in reversed(request.get("python_path") or []):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    module_name, _, func_name = request["target"].partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        return _failure(f"cannot import {module_name!r}: {summary(exc)}", exc)
    func = getattr(module, func_name, None)
    if not callable(func):
        near = sorted(n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_"))
        return {
            "ok": False,
            "error": f"module {module_name!r} has no function {func_name!r}"
            + (f" (it has: {', '.join(near[:8])})" if near else ""),
            "traceback": "",
        }
    kwargs = dict(request.get("kwargs") or {})
    kwargs.update(request.get("artifacts") or {})
    try:
        result = func(**kwargs)
    except BaseException as exc:  # SystemExit/KeyboardInterrupt from user code fail the step too
        return _failure(summary(exc), exc)
    try:
        outputs = collect(request.get("params") or {}, result)
    except OutputError as exc:
        return {"ok": False, "error": f"{request['target']}: {exc}", "traceback": ""}
    return {"ok": True, "outputs": outputs}


def collect(params: dict[str, str], result: Any) -> dict[str, Any]:
    """SPEC §3.1: one parameter output is the return value; two or more come as a dict."""
    if not params:
        return {}
    if len(params) == 1:
        ((name, type_name),) = params.items()
        if result is None and type_name != "str":
            raise OutputError(f"returned None; it must return the value of output {name!r} ({type_name})")
        return {name: check_value(name, type_name, result)}
    if not isinstance(result, dict):
        raise OutputError(
            f"has {len(params)} parameter outputs ({', '.join(params)}), so it must return a dict "
            f"keyed by output name; it returned {type(result).__name__}"
        )
    missing = [n for n in params if n not in result]
    extra = sorted(str(k) for k in result if k not in params)
    if missing or extra:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(repr(n) for n in missing))
        if extra:
            parts.append("unexpected " + ", ".join(repr(n) for n in extra))
        raise OutputError(
            "returned a dict with " + " and ".join(parts) + f" (declared outputs: {', '.join(params)})"
        )
    return {name: check_value(name, t, result[name]) for name, t in params.items()}


def _failure(error: str, exc: BaseException) -> dict[str, Any]:
    # Drop this module's own frame: the user's code starts at the next one.
    tb_start = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    tb = "".join(traceback.format_exception(type(exc), exc, tb_start))
    return {"ok": False, "error": error, "traceback": tb}


def handle(request: dict[str, Any], saved: tuple[int, int]) -> dict[str, Any]:
    """Run one request with its log redirection and environment, then restore both."""
    log = request.get("log")
    old_env = dict(os.environ)
    os.environ.update(request.get("env") or {})
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    try:
        response = call(request)
        if not response["ok"] and response.get("traceback"):
            sys.stderr.write(response["traceback"])
        return response
    finally:
        _flush()
        if log:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
        os.environ.clear()
        os.environ.update(old_env)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _end_strays() -> None:
    """Kill what the step left running (a background process, a daemon that called
    ``setsid``): as on every target, a step's processes end with the step."""
    if _procs.has_children():
        _procs.kill_tree(os.getpid(), include_root=False)
        _procs.has_children()  # reap them


def _watch_parent(parent: int) -> None:
    """Exit, killing the step's processes, as soon as the process that started this worker
    is gone (``kill -9`` of ``pipecast run``): a worker never outlives its run."""
    while True:
        time.sleep(0.25)
        if os.getppid() != parent:
            _procs.kill_tree(os.getpid(), include_root=False)
            os._exit(1)


def main(argv: list[str]) -> int:
    fd_in, fd_out = int(argv[0]), int(argv[1])
    parent = int(argv[2]) if len(argv) > 2 else os.getppid()
    if os.getppid() != parent:
        return 1
    _procs.become_subreaper()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    saved = (os.dup(1), os.dup(2))
    while True:
        request = read_msg(fd_in)
        if request is None:
            return 0
        response = handle(request, saved)
        _end_strays()
        write_msg(fd_out, response)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
