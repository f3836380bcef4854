"""``pipecast verify``: run the compiled pipeline on the target's own local engine and
compare what it did with the simulator (the reference semantics).

* :mod:`pipecast.verify.engine`: the engine interface every backend implements
  (:meth:`pipecast.backend.Backend.local_engine`) and its discovery;
* :mod:`pipecast.verify.records`: completing and comparing two run records;
* :mod:`pipecast.verify.run`: :func:`verify`, what the command does;
* :mod:`pipecast.verify.report`: the ``--report`` HTML page.
"""

from __future__ import annotations

from typing import Any


def verify(loaded: Any, target: str, **options: Any) -> Any:
    """See :func:`pipecast.verify.run.verify`."""
    from pipecast.verify.run import verify as _verify

    return _verify(loaded, target, **options)


__all__ = ["verify"]
