"""The runtime's one flow, identical on every target (what ``python -m pipecast.runtime run`` does).

1. resolve the step's secrets by name from ``spec.secret_store`` (values masked in logs);
2. stage the inputs through the target's convention (download artifacts when they are URIs);
3. run attempts with :func:`pipecast.runtime.executor.run_attempt`: one attempt, or
   ``spec.retry.attempts`` with :func:`pipecast.runtime.retry.retry_delay` between them when
   the target cannot retry natively; each attempt limited to ``spec.timeout`` if set;
4. publish the outputs through the convention, or report the failure.

The simulator runs steps with the same executor and the same ``retry_delay``, so retries,
timeouts, outputs and failures behave the same locally and in the cloud.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from pipecast.runtime.conventions.base import Convention, ConventionError
from pipecast.runtime.executor import AttemptResult, ContainerMode, run_attempt
from pipecast.runtime.faults import MESSAGE as FAULT
from pipecast.runtime.faults import injected
from pipecast.runtime.retry import retry_delay
from pipecast.runtime.secrets import SecretError, mask_text, resolve
from pipecast.runtime.spec import StepSpec

#: Exit codes of ``python -m pipecast.runtime run``.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 124


class StepFailed(Exception):
    """The step failed its last attempt (or could not start). ``str()`` is the one-line summary."""

    def __init__(self, summary: str, *, timed_out: bool = False, attempts: int = 0) -> None:
        super().__init__(summary)
        self.summary = summary
        self.timed_out = timed_out
        self.attempts = attempts

    @property
    def error_name(self) -> str:
        """A short error name for targets that show one (``States.TaskFailed``-like)."""
        return "pipecast.Timeout" if self.timed_out else "pipecast.StepFailed"


@dataclass
class StepOutcome:
    """A successful step: its outputs (local) and what the convention published."""

    outputs: dict[str, Any]
    published: Any
    attempts: int
    #: Restored from the runtime's result cache (SPEC §20): the step did not run.
    cached: bool = False
    #: Skipped by the convention (a gated-off branch or a skipped producer): markers were written.
    skipped: bool = False
    #: The numbers of each ``Metrics`` output (SPEC §15), read while its file still exists,
    #: for targets that publish them beside the outputs (Step Functions).
    metrics: dict[str, dict[str, float]] | None = None


def _skipped(spec: StepSpec, convention: Convention, workdir: Path, note: str, err: TextIO) -> StepOutcome:
    """Publish a skipped step's markers (SPEC: readers of a skipped step are skipped too)."""
    try:
        convention.write_skipped(spec, workdir)
    except ConventionError as exc:
        raise StepFailed(f"step {spec.step} could not publish its skipped markers: {exc}") from None
    print(f"pipecast: {note}", file=err, flush=True)
    return StepOutcome(outputs={}, published=None, attempts=0, skipped=True)


def _attempts(
    spec: StepSpec,
    inputs: dict[str, Any],
    workdir: Path,
    attempts: int,
    *,
    log_path: Path | None,
    env: dict[str, str],
    python_path: Sequence[str],
    containers: ContainerMode,
    paths: Mapping[str, Path] | None,
    mask: list[str],
    err: TextIO,
    rng: random.Random | None,
    sleep: Callable[[float], None],
) -> tuple[AttemptResult, int]:
    """Run the attempts of a step until one succeeds or the retries run out: the last
    result and its attempt number."""
    label = f"step {spec.step}"
    result: AttemptResult | None = None
    attempt = 0
    for attempt in range(1, attempts + 1):
        if injected(spec, inputs):  # pipecast verify --fail (unset on real targets)
            result = AttemptResult(False, {}, FAULT, 1, False, 0.0)
        else:
            result = run_attempt(
                spec, inputs, workdir, timeout=spec.timeout, log_path=log_path, env=env,
                python_path=python_path, containers=containers, output_paths=paths, mask=mask,
            )  # fmt: skip
        if result.ok:
            break
        if attempt < attempts:
            assert spec.retry is not None
            wait = retry_delay(spec.retry, attempt, rng)
            note = f"pipecast: {label} attempt {attempt}/{attempts} failed: {result.error}; retrying in {wait:g}s"
            print(mask_text(note, mask), file=err, flush=True)
            sleep(wait)
    assert result is not None
    return result, attempt


def run_step(
    spec: StepSpec,
    convention: Convention,
    *,
    workdir: Path | None = None,
    python_path: Sequence[str] = (),
    containers: ContainerMode = "host",
    log_path: Path | None = None,
    stderr: TextIO | None = None,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> StepOutcome:
    """Run a step to completion on this machine (see the module docstring).

    Args:
        workdir: scratch folder for staged inputs and outputs (a temporary one if ``None``).
        log_path: where the step's stdout/stderr go (``None``: this process's own).
        stderr: where progress notes (retries) go; ``sys.stderr`` by default.

    Raises:
        StepFailed: with the one-line summary (secret values masked).
    """
    err = stderr or sys.stderr
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix=f"pipecast-{spec.step}-") as tmp:
            return run_step(
                spec, convention, workdir=Path(tmp), python_path=python_path, containers=containers,
                log_path=log_path, stderr=stderr, rng=rng, sleep=sleep,
            )  # fmt: skip
    workdir.mkdir(parents=True, exist_ok=True)
    label = f"step {spec.step}"
    skip = convention.skip_reason(spec)
    if skip is not None:
        return _skipped(spec, convention, workdir, f"{label} skipped: {skip}", err)
    try:
        secret_env = resolve(spec.secrets, spec.secret_store)
    except SecretError as exc:
        raise StepFailed(f"{label} could not start: {exc}") from None
    mask = sorted(set(secret_env.values()))
    env = {**spec.env, **secret_env}
    try:
        inputs = convention.stage_inputs(spec, workdir)
        paths = convention.output_paths(spec, workdir)
    except ConventionError as exc:
        raise StepFailed(mask_text(f"{label} could not start: {exc}", mask)) from None

    cache = _cache_lookup(spec, inputs, paths, workdir, python_path, err)
    if cache is not None and cache.hit is not None:
        hit = AttemptResult(
            ok=True, outputs=cache.hit, error=None, exit_code=0, timed_out=False, duration=0.0
        )
        try:
            published = convention.write_outputs(spec, hit, workdir)
        except ConventionError as exc:
            raise StepFailed(mask_text(f"{label} could not publish its outputs: {exc}", mask)) from None
        return StepOutcome(
            outputs=hit.outputs,
            published=published,
            attempts=0,
            cached=True,
            metrics=_metrics(spec, hit.outputs),
        )

    attempts = spec.retry.attempts if spec.retry is not None else 1
    result, attempt = _attempts(
        spec, inputs, workdir, attempts, log_path=log_path, env=env, python_path=python_path,
        containers=containers, paths=paths, mask=mask, err=err, rng=rng, sleep=sleep,
    )  # fmt: skip
    if not result.ok:
        summary = f"{label} failed: {result.error}"
        if attempts > 1:
            summary += f" (attempt {attempts}/{attempts})"
        summary = mask_text(summary, mask)
        convention.write_failure(spec, summary, workdir)
        raise StepFailed(summary, timed_out=result.timed_out, attempts=attempts)
    try:
        published = convention.write_outputs(spec, result, workdir)
    except ConventionError as exc:
        raise StepFailed(mask_text(f"{label} could not publish its outputs: {exc}", mask)) from None
    if cache is not None:
        try:
            cache.store.put(cache.key, spec, result.outputs)
        except Exception as exc:  # a cache that cannot be written never fails the step
            print(f"pipecast: {label}: could not store the result in the cache: {exc}", file=err, flush=True)
    return StepOutcome(
        outputs=result.outputs, published=published, attempts=attempt, metrics=_metrics(spec, result.outputs)
    )


def _metrics(spec: StepSpec, outputs: dict[str, Any]) -> dict[str, dict[str, float]] | None:
    """Each ``Metrics`` output's numbers (:func:`pipecast.metrics.numbers_of`)."""
    from pipecast.metrics import numbers_of

    return numbers_of(spec.outputs, outputs)


@dataclass
class _CacheUse:
    store: Any
    key: str
    hit: dict[str, Any] | None


def _cache_lookup(
    spec: StepSpec,
    inputs: dict[str, Any],
    paths: Any,
    workdir: Path,
    python_path: Sequence[str],
    err: TextIO,
) -> _CacheUse | None:
    """SPEC §20 through the runtime's result cache: the signature, and the restored outputs of
    a hit (see :mod:`pipecast.runtime.resultcache`). ``None`` when the step is not cached here."""
    if spec.cache is None or not spec.cache.store:
        return None
    import os

    from pipecast.runtime.executor import output_locations
    from pipecast.runtime.resultcache import ResultStore, step_key

    roots = [*python_path, *[p for p in os.environ.get("PIPECAST_PYTHON_PATH", "").split(os.pathsep) if p]]
    key = step_key(spec, inputs, [*roots, os.getcwd()])
    store = ResultStore(spec.cache.store)
    entry = store.get(key, spec.cache.max_age)
    hit = None
    if entry is not None:
        hit = store.restore(entry, spec, output_locations(spec, workdir, paths), workdir)
        if hit is not None:
            print(f"pipecast: step {spec.step}: cached result {key[:12]} reused", file=err, flush=True)
    return _CacheUse(store, key, hit)
