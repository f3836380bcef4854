"""The conformance catalogue: cases (pipelines + hand-written expectations) and the
per-backend exceptions, as data.

A case is ``cases/<name>.yaml`` with ``expected/<name>.yaml``. The expectation holds
the final ``status``, a subset of the run record's ``steps`` (``status``, ``attempts``,
``outputs``; ``{absent: true}`` for a step that must not be in the record), optional pipeline ``outputs``,
optional ``absent_outputs`` (pipeline outputs that must not be in the record), optional ``secrets`` to provide by name, and
optionally ``runs:`` — several runs with different ``params``. ``exact: true`` compares
values exactly (SPEC §22 "Numbers are exact"): an int is not a float (``2 != 2.0``), numbers
are equal only when identical, and a dict's keys must come in the same order.

Exceptions are markers tied to a :class:`~pipecast.backend.Feature`, turned into strict
xfails: when a backend gains the feature, its marker must go (ibis's habit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pipecast.backend import Feature

CASES_DIR = Path(__file__).parent / "cases"
EXPECTED_DIR = Path(__file__).parent / "expected"
Kind = Literal["notimpl", "notyet", "never"]


@dataclass(frozen=True)
class Expected:
    params: dict[str, Any]
    status: str
    steps: dict[str, dict[str, Any]]
    outputs: dict[str, Any] | None = None
    #: Pipeline outputs that must be missing from the record (not even ``null``).
    absent_outputs: list[str] = field(default_factory=list)
    order: list[list[str]] = field(default_factory=list)
    #: Checks on step-side timing (``cstep.timed``): ``no_start_after_failure`` (SPEC §10) and
    #: ``parallelism: {group: N}`` (SPEC §22), see :func:`timing_problems`.
    timing: dict[str, Any] = field(default_factory=dict)
    #: Compare values exactly (int vs float, no tolerance, dict key order), see :func:`_same`.
    exact: bool = False


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    runs: list[Expected]
    secrets: dict[str, str]


def load_case(name: str) -> Case:
    path = CASES_DIR / f"{name}.yaml"
    data = yaml.safe_load((EXPECTED_DIR / f"{name}.yaml").read_text())
    raw_runs = data.get("runs") or [data]
    runs = [
        Expected(
            params=r.get("params", {}),
            status=r["status"],
            steps=r.get("steps", {}),
            outputs=r.get("outputs"),
            absent_outputs=list(r.get("absent_outputs", [])),
            order=data.get("order", []),
            timing=r.get("timing", data.get("timing", {})),
            exact=bool(data.get("exact", False)),
        )
        for r in raw_runs
    ]
    return Case(name, path, runs, data.get("secrets", {}))


def case_names() -> list[str]:
    return sorted(p.stem for p in EXPECTED_DIR.glob("*.yaml"))


@dataclass(frozen=True)
class Exception_:
    """A known gap of one backend on one case."""

    kind: Kind
    feature: Feature | None
    reason: str
    stage: Literal["compile", "execute"] = "execute"


def notimpl(
    feature: Feature | None, reason: str, stage: Literal["compile", "execute"] = "execute"
) -> Exception_:
    return Exception_("notimpl", feature, reason, stage)


def notyet(reason: str, feature: Feature | None = None) -> Exception_:
    """The target's local executor cannot run this yet (the compiled output is still checked)."""
    return Exception_("notyet", feature, reason, "execute")


def never(feature: Feature, reason: str) -> Exception_:
    return Exception_("never", feature, reason, "compile")


#: (backend, case) → exception. Filled from what each backend really does; every entry is a
#: strict xfail, so a stale entry fails the suite.
EXCEPTIONS: dict[tuple[str, str], Exception_] = {
    # Every known gap is a feature its backend declares unsupported or approximate,
    # which test_unsupported checks (the case must fail to compile with that diagnostic).
    ("vertex", "cache_hit"): notyet(
        "kfp.local runs every task (it has no execution cache), so no step is reported cached; "
        "Vertex's own cache (cachingOptions.enableCache) reuses it in the cloud",
        Feature.CACHE,
    ),
    ("vertex", "for_each_item_key"): notyet(
        "kfp.local (kfp 2.17) cannot run ParallelFor(item.key), even as kfp compiles it: 'Parent "
        "pipeline input argument ...-subvar-vals not found' (backends/vertex/tests/test_compile.py "
        "checks the output has kfp's own shape)",
    ),
    ("kubeflow", "for_each_item_key"): notyet(
        "kfp.local (kfp 2.17) cannot run ParallelFor(item.key), even as kfp compiles it: 'Parent "
        "pipeline input argument ...-subvar-vals not found'",
    ),
    ("kubeflow", "cache_hit"): notyet(
        "kfp.local runs every task (it has no execution cache), so no step is reported cached; "
        "the KFP backend's cache (cachingOptions.enableCache) reuses it on a cluster",
        Feature.CACHE,
    ),
    ("vertex", "fail_stops_new_steps"): notyet(
        "kfp.local starts the remaining loop items after one failed; on Vertex the fail-fast "
        "run policy (PipelineJob failure_policy, in the deploy request) stops them"
    ),
    ("vertex", "parallelism_nested_group"): notyet(
        "kfp.local starts the remaining loop items after one failed; on Vertex the fail-fast "
        "run policy (PipelineJob failure_policy, in the deploy request) stops them"
    ),
    ("kubeflow", "parallelism_nested_group"): notyet(
        "kfp.local starts the remaining loop items after one failed; on a cluster the fail-fast "
        "run policy stops them"
    ),
    ("kubeflow", "fail_stops_new_steps"): notyet(
        "kfp.local starts the remaining loop items after one failed; on a cluster the fail-fast "
        "run policy stops them"
    ),
    ("stepfunctions", "import_for_each"): notimpl(
        None,
        "the case imports local paths (import_data/...), which a cloud target refuses at compile "
        "time (SPEC §14, 'local-path'); backends/stepfunctions/tests/test_imports_metrics.py runs "
        "the same pipeline with s3:// URIs in moto with the worker",
        stage="compile",
    ),
    ("azureml", "import_for_each"): notimpl(
        None,
        "the case imports local paths (import_data/...), which a cloud target refuses at compile "
        "time (SPEC §14, 'local-path'); backends/azureml/tests/test_azureml_imports.py compiles the "
        "same shapes with azureml:// and https:// URIs and runs them with the inputs mounted locally",
        stage="compile",
    ),
    ("vertex", "metrics_missing"): notyet(
        "kfp.local's condition evaluator turns a value it cannot resolve into false "
        "(ConditionEvaluator.evaluate_condition in kfp/local/orchestrator/enhanced_dag_orchestrator.py), "
        "so the gate reading a missing metric is skipped; the producer publishes no "
        "'scores-metric-f1', and on Vertex the driver fails the task whose input it cannot resolve",
        Feature.METRIC_REFS,
    ),
    ("kubeflow", "metrics_missing"): notyet(
        "kfp.local's condition evaluator turns a value it cannot resolve into false, so the gate "
        "reading a missing metric is skipped; on a cluster the driver fails the task whose input "
        "it cannot resolve",
        Feature.METRIC_REFS,
    ),
    ("vertex", "import_for_each"): notimpl(
        None,
        "the case imports local paths (import_data/...), which a cloud target rejects at compile "
        "time (SPEC §14); artifact params and imports run in kfp.local in "
        "backends/vertex/tests/test_import_metrics.py with the path given at run time",
        stage="compile",
    ),
    ("kubeflow", "import_for_each"): notimpl(
        None,
        "the case imports local paths (import_data/...), which a cloud target rejects at compile "
        "time (SPEC §14)",
        stage="compile",
    ),
}


def compare(expected: Expected, record: dict[str, Any]) -> list[str]:
    """Differences between an expectation and a run record (empty when they agree)."""
    problems: list[str] = []
    if record.get("status") != expected.status:
        problems.append(f"status: expected {expected.status!r}, got {record.get('status')!r}")
    steps = record.get("steps", {})
    for key, want in expected.steps.items():
        got = steps.get(key)
        if want.get("absent"):  # a step that must not appear (e.g. a skipped group's finally)
            if got is not None:
                problems.append(f"step {key!r}: expected no entry, got {got!r}")
            continue
        if got is None:
            problems.append(f"step {key!r}: missing from the record (has {sorted(steps)})")
            continue
        if "status" in want and got.get("status") != want["status"]:
            problems.append(f"step {key!r}: status {got.get('status')!r}, expected {want['status']!r}")
        if "attempts" in want and got.get("attempts") != want["attempts"]:
            problems.append(f"step {key!r}: attempts {got.get('attempts')!r}, expected {want['attempts']!r}")
        for out, value in want.get("outputs", {}).items():
            actual = (got.get("outputs") or {}).get(out, "<missing>")
            if not _same(actual, value, expected.exact):
                problems.append(f"step {key!r}: output {out!r} = {actual!r}, expected {value!r}")
    if expected.outputs is not None:
        for out, value in expected.outputs.items():
            actual = (record.get("outputs") or {}).get(out, "<missing>")
            if not _same(actual, value, expected.exact):
                problems.append(f"pipeline output {out!r} = {actual!r}, expected {value!r}")
    for out in expected.absent_outputs:
        if out in (record.get("outputs") or {}):
            problems.append(f"pipeline output {out!r} = {record['outputs'][out]!r}, expected no entry")
    return problems


def _same(a: Any, b: Any, exact: bool = False) -> bool:
    """Whether two values agree: numbers within 1e-9 of each other, or, when ``exact``, of
    the same type (``2`` is not ``2.0``) and equal, and dict keys in the same order."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (a == b and type(a) is type(b))
    if isinstance(a, int | float) and isinstance(b, int | float):
        if exact:
            return type(a) is type(b) and a == b
        return abs(float(a) - float(b)) < 1e-9
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y, exact) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        keys_agree = list(a) == list(b) if exact else a.keys() == b.keys()
        return keys_agree and all(_same(a[k], b[k], exact) for k in a)
    return bool(a == b)


def _timing_lines(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The lines ``cstep.timed`` wrote for this run (found through the run id its steps report)."""
    import json
    import tempfile

    run_ids = set()
    for entry in (record.get("steps") or {}).values():
        out = (entry.get("outputs") or {}).get("output")
        if isinstance(out, dict) and isinstance(out.get("run_id"), str):
            run_ids.add(out["run_id"])
    lines: list[dict[str, Any]] = []
    for run_id in sorted(run_ids):
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_id)
        path = Path(tempfile.gettempdir(), "pipecast-timing", f"{safe}.jsonl")
        if path.exists():
            lines += [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln]
    return lines


def timing_problems(expected: Expected, record: dict[str, Any]) -> list[str]:
    """Check SPEC §10 and ``parallelism`` from when the steps themselves started and ended.

    ``no_start_after_failure``: no step started after the first failing step had ended.
    ``parallelism: {group: N}``: at no moment are more than N items of the group in progress
    (an item spans its steps' lines keyed ``<group>-<item>...``).
    """
    if not expected.timing:
        return []
    lines = _timing_lines(record)
    if not lines:
        return ["timing: no step-side timing found (no timed step reported its run id)"]
    problems: list[str] = []
    if expected.timing.get("no_start_after_failure"):
        failed = [ln["ended"] for ln in lines if ln["failed"]]
        if not failed:
            problems.append("timing: no step recorded a failure")
        else:
            first = min(failed)
            late = sorted(ln["key"] for ln in lines if ln["started"] > first)
            if late:
                problems.append(f"timing: started after the first failure (SPEC §10): {late}")
    for group, bound in (expected.timing.get("parallelism") or {}).items():
        spans: dict[str, list[float]] = {}
        for ln in lines:
            parts = ln["key"].split("-")
            if parts[0] == group and len(parts) > 1:
                span = spans.setdefault(parts[1], [ln["started"], ln["ended"]])
                span[0], span[1] = min(span[0], ln["started"]), max(span[1], ln["ended"])
        events = sorted([(a, 1) for a, _ in spans.values()] + [(b, -1) for _, b in spans.values()])
        running = peak = 0
        for _, delta in events:  # an end sorts before a start at the same instant
            running += delta
            peak = max(peak, running)
        if peak > bound:
            problems.append(f"timing: {peak} items of {group!r} in progress at once, parallelism is {bound}")
    return problems


@dataclass(frozen=True)
class Unverified:
    """Steps of a case that ``pipecast verify``'s comparison with the simulator leaves out in
    the suite (every other step, the pipeline's status and outputs are still compared).

    Attributes:
        steps: step names (every item of a loop step) whose entries are not compared.
        reason: why they legitimately differ between two correct runs.
    """

    steps: tuple[str, ...]
    reason: str


#: case → the steps verify's comparison leaves out, for every backend. Only where two correct
#: runs differ: a step racing a failure (SPEC §10 lets it finish or be cancelled) or an output
#: that is the step's own clock and run id (``cstep.timed``, read by the timing checks).
UNVERIFIED: dict[str, Unverified] = {
    "fail_stops_new_steps": Unverified(
        ("slow", "task"),
        "'slow' races the failure of task[1] (it may finish or be cancelled) and 'task' items "
        "output their start/end times and run id (cstep.timed)",
    ),
    "group_finally_in_for_each_failure": Unverified(
        ("train", "boom"),
        "its outputs are its start/end times and run id (cstep.timed)",
    ),
    "parallelism_nested_group": Unverified(
        ("mul", "inner"),
        "their outputs are their start/end times and run id (cstep.timed)",
    ),
    "parallelism_bound": Unverified(
        ("first", "second", "task"),
        "their outputs are their start/end times and run id (cstep.timed)",
    ),
}


#: (backend, case) → a disagreement verify's comparison finds and is not fixed yet. Strict: the
#: suite fails once the two runs agree (remove the entry then); the expectation still applies.
VERIFY_FOUND: dict[tuple[str, str], str] = {}
