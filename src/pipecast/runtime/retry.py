"""Retry timing (SPEC §6), shared by the simulator and the in-container runtime so both
wait exactly the same way."""

from __future__ import annotations

import random

from pipecast.ir.models import Retry


def backoff_delay(retry: Retry, failed_attempt: int) -> float:
    """The wait before try ``failed_attempt + 1``, without jitter: ``min(delay * backoff^(n-1), max_delay)``.

    Args:
        retry: the effective retry policy.
        failed_attempt: the 1-based number of the try that just failed (``n`` in SPEC §6).
    """
    if failed_attempt < 1:
        raise ValueError("attempts are numbered from 1")
    # Cap the exponent's result early so huge attempt counts cannot overflow.
    delay = retry.delay
    for _ in range(failed_attempt - 1):
        delay *= retry.backoff
        if delay >= retry.max_delay:
            return retry.max_delay
    return min(delay, retry.max_delay)


def retry_delay(retry: Retry, failed_attempt: int, rng: random.Random | None = None) -> float:
    """The wait before the next try; with ``jitter`` a uniform time in ``[0, backoff_delay]``.

    Args:
        rng: the random source for jitter; pass a seeded one for reproducible runs.
    """
    base = backoff_delay(retry, failed_attempt)
    if retry.jitter:
        return (rng or random.Random()).uniform(0.0, base)
    return base
