"""``python _guard.py PARENT_PID CMD...``: run a host command step so that its processes end
with it (issue 15).

The guard is the command's parent and a child subreaper (Linux): when the command exits, the
processes it left behind (a background job, a daemon that called ``setsid``) are killed; when
the process that started the guard dies (``kill -9`` of ``pipecast run``), the whole tree is
killed within 0.25 s. ``--container ENGINE NAME`` before the command (a docker/podman step): the
container is not a descendant of the engine's client, so the guard also removes it
(``ENGINE rm -f NAME``) when its parent dies. Started as a script (not ``-m``) so it needs only the standard library
and :mod:`_procs` beside it, whatever the step's environment. Exit status: the command's
(a command killed by a signal makes the guard die of the same signal).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

import _procs  # type: ignore[import-not-found]  # the file beside this one (run as a script)


def _remove_container(engine: str, name: str) -> None:
    """Kill and remove the step's container (the engine's daemon runs it, not this tree)."""
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(
            [engine, "rm", "-f", name],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
            check=False,
        )


def main(argv: list[str]) -> int:
    parent, cmd = int(argv[0]), argv[1:]
    container: list[str] = []
    if cmd[:1] == ["--container"]:
        container, cmd = cmd[1:3], cmd[3:]
    if os.getppid() != parent:
        return 1
    _procs.become_subreaper()
    proc = subprocess.Popen(cmd)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda n, _f: proc.send_signal(n))
    while True:
        try:
            code = proc.wait(timeout=0.25)
            break
        except subprocess.TimeoutExpired:
            if os.getppid() != parent:
                if container:
                    _remove_container(*container)
                _procs.kill_tree(os.getpid(), include_root=False)
                os._exit(137)
    if _procs.has_children():
        _procs.kill_tree(os.getpid(), include_root=False)
        _procs.has_children()
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
