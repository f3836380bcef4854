"""The local simulator (``pipecast run``): the reference semantics of the pipeline format.

Public API: :func:`run_pipeline` (returns the SPEC §12 run record as a dict). Imports are
lazy so ``import pipecast.simulator`` stays cheap for the CLI.
"""

from __future__ import annotations

from typing import Any


def run_pipeline(loaded: Any, **options: Any) -> dict[str, Any]:
    """See :func:`pipecast.simulator.run.run_pipeline`."""
    from pipecast.simulator.run import run_pipeline as _run

    return _run(loaded, **options)


__all__ = ["run_pipeline"]
