"""Process trees: find every descendant of a process and kill them all (standard library
only; :mod:`pipecast.runtime._child` imports it).

A step's processes can leave its process group (``setsid``) or be orphaned (a double fork);
killing the group is not enough. On Linux the worker process is made a *child subreaper*
(``PR_SET_CHILD_SUBREAPER``), so orphans of a step are re-parented to the worker instead of
init, and the parent-pid links from ``/proc`` reach every descendant. Elsewhere the process
group is what can be killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux); ``False`` elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _parents() -> dict[int, int]:
    """pid → parent pid of every process (from ``/proc``; empty where there is none)."""
    out: dict[int, int] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1:
            out[int(name)] = int(fields[1])
    return out


def descendants(root: int) -> list[int]:
    """Every live descendant of ``root`` (children first)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parents().items():
        children.setdefault(ppid, []).append(pid)
    out: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def kill_tree(root: int, *, include_root: bool = True) -> None:
    """SIGKILL ``root``'s process group and every descendant of ``root``.

    Descendants are stopped first (SIGSTOP) and the tree is walked again until no new
    process appears, so a process that forks while being killed cannot slip out.
    """
    seen: set[int] = set()
    for _ in range(20):
        new = [p for p in descendants(root) if p not in seen]
        if not new:
            break
        for pid in new:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGSTOP)
        seen.update(new)
    if include_root:
        with contextlib.suppress(OSError):
            os.killpg(root, signal.SIGKILL)
    for pid in seen:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def has_children() -> bool:
    """Whether this process has live children (reaping finished ones as it looks)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True
