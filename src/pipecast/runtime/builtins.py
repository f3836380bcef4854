"""Python functions the step runtime ships for tasks a compiler adds (no user code).

``identity`` hands its input on as its one output: a KFP compiler uses it to turn a pipeline
parameter that travels as JSON text into the native list a loop iterates (the runtime writes
the ``--items`` companion of a list output, see :mod:`pipecast.runtime.conventions.kfp`).
"""

from __future__ import annotations

from typing import Any


def identity(value: Any) -> Any:
    """Return the input unchanged (one output)."""
    return value
