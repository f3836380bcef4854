"""Fault injection for ``pipecast verify --fail STEP[:N]`` on a target's local engine.

The simulator fails a step's first N attempts itself (``pipecast run --fail``). On a
target's local engine the attempts are made by the target (a Step Functions ``Retry``, an
Airflow task retry, kfp.local) and each one reaches the step runtime, possibly in a fresh
process; so the runtime counts them in a folder shared by every attempt of the run:

* ``PIPECAST_FAIL``: JSON ``{"step": N}`` (``null``: every attempt fails);
* ``PIPECAST_FAIL_STATE``: the folder holding one counter file per step instance.

An instance is the step name plus its non-artifact input values (a ``for_each`` item
differs per instance; a retry repeats the same values), so ``train:1`` fails the first
attempt of every ``train[i]``, as the simulator does. Both variables unset (every real
deployment): nothing happens.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipecast.passes.analysis import is_artifact_type
from pipecast.runtime.spec import StepSpec

FAIL_ENV = "PIPECAST_FAIL"
STATE_ENV = "PIPECAST_FAIL_STATE"
MESSAGE = "pipecast: injected failure (--fail)"


def fail_env(fail: Mapping[str, int | None], state: Path) -> dict[str, str]:
    """The environment that makes the runtime inject ``fail`` (``{step: N or None}``)."""
    return {FAIL_ENV: json.dumps(dict(sorted(fail.items()))), STATE_ENV: str(state)}


def injected(spec: StepSpec, inputs: Mapping[str, Any]) -> bool:
    """Count this attempt; whether it is one of the first N of its step instance to fail."""
    raw = os.environ.get(FAIL_ENV)
    state = os.environ.get(STATE_ENV)
    if not raw or not state:
        return False
    try:
        table = json.loads(raw)
    except ValueError:
        return False
    if not isinstance(table, dict) or spec.step not in table:
        return False
    limit = table[spec.step]
    values = {
        k: v
        for k, v in sorted(inputs.items())
        if k in spec.inputs and not is_artifact_type(spec.inputs[k].type)
    }
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]
    counter = Path(state) / f"{spec.step}.{digest}"
    counter.parent.mkdir(parents=True, exist_ok=True)
    # One byte per attempt, appended atomically (O_APPEND): attempts of one instance are
    # sequential, different instances use different files.
    fd = os.open(counter, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, b".")
    finally:
        os.close(fd)
    attempt = counter.stat().st_size
    return limit is None or attempt <= int(limit)
