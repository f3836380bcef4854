"""Pausing Python's cyclic garbage collector around work that only builds objects it keeps.

Loading, lowering and compiling a large pipeline allocate hundreds of thousands of small
objects (IR nodes, the resolved form, the output's dicts and lists) that stay alive until the
work ends. CPython's generational collector runs a pass every 700 net allocations and, as the
heap grows, full passes over all of it: on a 10,000-step compile those passes cost 15-25% of
the CPU time and free next to nothing (reference counting frees the temporaries). The pause
costs little memory: the cyclic garbage made meanwhile (a few MB at 10,000 steps) waits for the
first collection after the pause. Nesting is fine: only the outermost pause re-enables it.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector for the ``with`` block; restore its previous state after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
