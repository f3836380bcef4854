"""Where the scheduler's events come from: real time (threads post results) or a virtual
clock (dry runs: every event is a timer, time jumps to the next one)."""

from __future__ import annotations

import heapq
import itertools
import queue
import time
from typing import Any


class RealClock:
    """Wall-clock time; worker threads :meth:`post` events, the scheduler :meth:`next` them."""

    virtual = False

    def __init__(self) -> None:
        self._events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._timers: list[tuple[float, int, Any]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return time.monotonic()

    def post(self, event: Any) -> None:
        """Thread-safe: deliver an event as soon as possible."""
        self._events.put(event)

    def at(self, when: float, event: Any) -> None:
        """Deliver an event at a time (scheduler thread only)."""
        heapq.heappush(self._timers, (when, next(self._seq), event))

    def next(self) -> Any:
        """Block until the next event (a posted one or a due timer)."""
        while True:
            timeout = None
            if self._timers:
                timeout = self._timers[0][0] - time.monotonic()
                if timeout <= 0:
                    return heapq.heappop(self._timers)[2]
            try:
                return self._events.get(timeout=timeout)
            except queue.Empty:
                continue

    def pending(self) -> bool:
        return not self._events.empty()

    def poll(self) -> Any | None:
        """A posted event if one is waiting, else ``None`` (never blocks)."""
        try:
            return self._events.get_nowait()
        except queue.Empty:
            return None


class VirtualClock:
    """Simulated time for dry runs: nothing sleeps, time jumps from event to event."""

    virtual = True

    def __init__(self) -> None:
        self._now = 0.0
        self._timers: list[tuple[float, int, Any]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def post(self, event: Any) -> None:
        self.at(self._now, event)

    def at(self, when: float, event: Any) -> None:
        heapq.heappush(self._timers, (when, next(self._seq), event))

    def next(self) -> Any:
        when, _, event = heapq.heappop(self._timers)
        self._now = max(self._now, when)
        return event

    def poll(self) -> Any | None:
        if self._timers and self._timers[0][0] <= self._now:
            return heapq.heappop(self._timers)[2]
        return None
