""":func:`verify`: compile, run the simulator, run the target's local engine, compare."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipecast.api import compiled_form
from pipecast.verify.engine import EngineJob, engine_for, given_params
from pipecast.verify.records import (
    Difference,
    Fetch,
    complete,
    differences,
    digest_artifacts,
    restore_inlined_groups,
)


@dataclass
class Side:
    """One run: its record (completed, artifacts as digests) and how long it took."""

    name: str
    record: dict[str, Any]
    seconds: float


@dataclass
class Verification:
    """The outcome of ``pipecast verify``."""

    pipeline: str
    target: str
    engine: str
    simulator: Side
    local: Side
    differences: list[Difference]
    notes: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    fail: dict[str, int | None] = field(default_factory=dict)

    @property
    def agree(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "target": self.target,
            "engine": self.engine,
            "agree": self.agree,
            "params": self.params,
            "fail": self.fail,
            "notes": self.notes,
            "differences": [d.to_dict() for d in self.differences],
            "simulator": {"seconds": round(self.simulator.seconds, 2), "record": self.simulator.record},
            self.target: {"seconds": round(self.local.seconds, 2), "record": self.local.record},
        }


def verify(
    loaded: Any,
    target: str,
    *,
    params: Mapping[str, Any] | None = None,
    fail: Iterable[str] | Mapping[str, int | None] | None = None,
    settings: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    timeout: float = 600.0,
    lenient: bool = False,
    patch: Callable[[dict[str, str]], dict[str, str]] | None = None,
    workdir: Path | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
) -> Verification:
    """Run ``loaded`` in the simulator and on ``target``'s local engine and compare the runs.

    Args:
        loaded: the checked pipeline (:func:`pipecast.api.load_checked`).
        target: a backend with a local engine (:func:`pipecast.verify.engine.supported`).
        params: parameter values (strings are parsed by the declared types).
        fail: fault injection for both runs, ``["train:2"]`` or ``{"train": 2}``.
        settings: the user's target settings (the engine overrides its local stand-ins).
        secrets: secret name → value for both runs (default: the environment).
        timeout: seconds the engine's run may take.
        patch: rewrites the compiled files before they run (tests break an output on purpose).
        workdir: where temporary state goes (default: a temporary folder, removed after).

    Raises:
        UserError: bad parameters or ``--fail`` steps, a missing engine extra, a run that
            did not finish within ``timeout``.
    """
    from pipecast.simulator import run_pipeline
    from pipecast.simulator.run import parse_fail

    engine = engine_for(target)
    engine.require()
    lowered = loaded.lowered()
    index = lowered.index
    values = given_params(loaded.pipeline, params or {})
    fail_map = parse_fail(fail, index) if fail else {}
    secret_values = dict(secrets) if secrets is not None else _env_secrets(index)
    own = workdir is None
    root = Path(tempfile.mkdtemp(prefix="pipecast-verify-")) if own else Path(workdir or ".")
    try:
        source_dir = Path(loaded.path).resolve().parent
        progress("running the simulator")
        started = time.monotonic()
        sim_record = run_pipeline(
            loaded,
            params=values,
            run_dir=root / "simulator",
            containers="host",
            fail=fail_map or None,
            secrets=secret_values,
            seed=1,
        )
        sim_seconds = time.monotonic() - started
        progress(f"running on {engine.title or target}")
        job = EngineJob(
            # Sub-pipelines inlined as the compile does: the engine's record names those steps
            # (compare_records maps them back).
            loaded=compiled_form(loaded, target),
            params=values,
            workdir=root / target,
            settings=dict(settings or {}),
            fail=fail_map,
            secrets=secret_values,
            python_path=[source_dir],
            timeout=timeout,
            lenient=lenient,
            patch=patch,
            progress=progress,
        )
        job.workdir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with engine.session(root / "engine") as session:
            result = session.run(job)
            local_seconds = time.monotonic() - started
            sim, local_record, diffs = compare_records(
                sim_record,
                result.record,
                index,
                root / "fetched",
                result.fetch,
                result.compared,
                base_dir=source_dir,
            )
        diffs += [Difference("compiled output", "check", "accepted", p) for p in result.problems]
        return Verification(
            pipeline=loaded.pipeline.name,
            target=target,
            engine=engine.title or target,
            simulator=Side("simulator", sim, sim_seconds),
            local=Side(target, local_record, local_seconds),
            differences=diffs,
            notes=list(result.notes),
            params={k: v for k, v in sorted(values.items())},
            fail=dict(fail_map),
        )
    finally:
        if own:
            shutil.rmtree(root, ignore_errors=True)


def compare_records(
    sim_record: Mapping[str, Any],
    target_record: Mapping[str, Any],
    index: Any,
    scratch: Path,
    fetch: Fetch | None = None,
    compared: list[str] | None = None,
    base_dir: Path | None = None,
) -> tuple[dict[str, Any], dict[str, Any], list[Difference]]:
    """Verify's verdict on two run records of one run: the simulator's and the target's.

    The target's record is completed (:func:`complete`: entries it cannot report) unless
    ``compared`` names the only steps it ran, artifacts on both sides become content digests
    (``fetch`` reads the target's URIs; call this while the engine is open), and the
    differences are listed; a relative local path (an import URI a target passed through) is
    read from ``base_dir``, the pipeline file's folder. The conformance suite calls this on
    every case and target too.

    Returns:
        the simulator's and the target's compared records, and their differences.
    """
    keys = list((sim_record.get("steps") or {}).keys())
    # A target that inlined sub-pipelines reports their steps under compile's names.
    local_record = restore_inlined_groups(_plain(target_record), index)
    if compared is None:
        local_record = complete(local_record, keys, index)
    local_record = digest_artifacts(local_record, index, scratch, fetch, base_dir)
    sim = digest_artifacts(_plain(sim_record), index, scratch, base_dir=base_dir)
    if compared is not None:
        # Only what the engine ran: the simulator's view of those steps, nothing else (under
        # SPEC §17's names too, when the target ran an inlined sub-pipeline's steps).
        ran = [*compared, *(k for k in local_record["steps"] if k not in compared)]
        sim = {
            "status": None,
            "outputs": {},
            "steps": {k: sim["steps"][k] for k in ran if k in sim["steps"]},
        }
        local_record = {**local_record, "status": None, "outputs": {}}
    return sim, local_record, differences(sim, local_record)


def _plain(record: Mapping[str, Any]) -> dict[str, Any]:
    """The compared part of a run record (status, outputs, steps with their times)."""
    keep = ("status", "attempts", "outputs", "started", "ended", "derived")
    return {
        "status": record.get("status"),
        "_held": list(record.get("_held") or ()),  # when groups the engine saw run (complete)
        "outputs": dict(record.get("outputs") or {}),
        "steps": {
            k: {f: v for f, v in e.items() if f in keep}
            for k, e in (record.get("steps") or {}).items()
            if isinstance(e, dict)
        },
    }


def _env_secrets(index: Any) -> dict[str, str]:
    """The secrets the pipeline names, from the environment (as ``pipecast run`` reads them)."""
    import os

    from pipecast.runtime.secrets import env_names

    out: dict[str, str] = {}
    for node in index.tasks():
        for name in index.effective(node).secrets.values():
            for var in env_names(name):
                if var in os.environ:
                    out[name] = os.environ[var]
                    break
    return out
