"""The conformance suite: every case x every installed backend (ibis's backend suite).

Nothing here names a target: each backend is discovered through the registry, and its
conformance hooks (``Backend.conformance``, a :class:`pipecast.conformance.Conformance`; see
docs/CONTRIBUTING.md, "Adding a backend") say how to compile for it, check its output and
execute it. Stages, each its own test so a failure says where it broke:

* ``test_compile``: compiles through :func:`pipecast.api.compile_pipeline`, byte for byte the
  same twice and from another working directory;
* ``test_golden``: equal to ``tests/golden/<backend>/<case>/`` (``--update-golden`` rewrites);
* ``test_validate``: the target's own checker accepts it (``Conformance.validate``);
* ``test_execute``: runs on the target's local engine (``Conformance.execute``) and matches the
  hand-written expectation (``catalogue.compare``) and the simulator's record by
  ``pipecast verify``'s own comparison (:func:`pipecast.verify.run.compare_records`, on the
  same record: one harness); a target without a local engine checks otherwise.

A case that uses a feature the backend declares unsupported (or approximate) is not compiled
by those stages: ``test_unsupported`` proves it fails with the ``unsupported-feature``
diagnostic instead (and, for approximations, compiles with ``--lenient`` and a warning).
Known gaps are :data:`catalogue.EXCEPTIONS` entries, turned into strict xfails plus a
``notimpl``/``notyet``/``never`` marker. Run one backend's part with ``-m <backend>`` (every
installed backend's name is a marker, registered by conftest.py).
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from pipecast import registry
from pipecast.api import compile_pipeline, compiled_form, load_checked
from pipecast.backend import Feature
from pipecast.conformance import Conformance, Job, Record, hooks_for
from pipecast.diagnostics import UserError
from pipecast.loader import Loaded
from pipecast.passes.features import used_features
from pipecast.verify.run import compare_records
from tests.conformance.catalogue import (
    CASES_DIR,
    EXCEPTIONS,
    EXPECTED_DIR,
    UNVERIFIED,
    VERIFY_FOUND,
    Case,
    case_names,
    compare,
    load_case,
    timing_problems,
)
from tests.conformance.records import base_name, complete, restore_inlined_groups

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
BACKENDS = registry.available()
CASES = case_names()

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


# ------------------------------------------------------------------------------ the plan


@cache
def case(name: str) -> Case:
    return load_case(name)


def load(name: str) -> Loaded:
    return load_checked(CASES_DIR / f"{name}.yaml")


@cache
def hooks(backend: str) -> Conformance:
    return hooks_for(registry.get(backend))


def settings_for(name: str, backend: str) -> dict[str, Any]:
    return hooks(backend).settings_for(case(name).secrets)


@cache
def features_of(name: str) -> frozenset[Feature]:
    return frozenset(u.feature for u in used_features(load(name).index))


def declared_gaps(name: str, backend: str) -> dict[Feature, str]:
    """Features the case uses that the backend declares approximate or unsupported."""
    b = registry.get(backend)
    return {f: b.support(f).level for f in features_of(name) if not b.support(f).compiles}


def blocked(name: str, backend: str) -> bool:
    """The case cannot compile for this backend, by the backend's own declaration."""
    return "unsupported" in declared_gaps(name, backend).values()


def lenient(name: str, backend: str) -> bool:
    return bool(declared_gaps(name, backend))


@cache
def compiled_files(name: str, backend: str) -> dict[str, str]:
    """The compile stage's output (cached per worker; callers must not mutate it)."""
    result = compile_pipeline(
        load(name), backend, settings_for(name, backend), lenient=lenient(name, backend)
    )
    return dict(result.files)


def job(name: str, backend: str, work: Path, fixtures: dict[str, Any]) -> Job:
    """What the backend's executor gets for one case."""
    c = case(name)
    return Job(
        name=name,
        source=c.path,
        # What the engine runs: sub-pipelines inlined as the compile does (record readers
        # name the compiled steps; test_execute maps the record back).
        loaded=compiled_form(load(name), backend),
        files=compiled_files(name, backend),
        runs=[run.params for run in c.runs],
        secrets=c.secrets,
        python_path=[CASES_DIR],
        work=work,
        fixtures=fixtures,
    )


def _compile_xfail(name: str, backend: str) -> bool:
    exc = EXCEPTIONS.get((backend, name))
    return exc is not None and exc.stage == "compile"


def batch_of(name: str, backend: str) -> int | None:
    """The batch a case runs in, for a backend that runs batched (``Conformance.batches``)."""
    runnable = [c for c in CASES if not blocked(c, backend) and not _compile_xfail(c, backend)]
    return runnable.index(name) % hooks(backend).batches if name in runnable else None


def batch_cases(backend: str, batch: int) -> list[str]:
    return [c for c in CASES if batch_of(c, backend) == batch]


def _params(stage: str) -> Iterator[Any]:
    for backend in BACKENDS:
        for name in CASES:
            if blocked(name, backend):
                continue
            marks: list[Any] = [getattr(pytest.mark, backend)]
            exc = EXCEPTIONS.get((backend, name))
            if exc is not None and (exc.stage == "compile" or stage == "execute"):
                marks += [
                    pytest.mark.xfail(strict=True, reason=f"{exc.kind}: {exc.reason}"),
                    getattr(pytest.mark, exc.kind),
                ]
            yield pytest.param(name, backend, id=f"{name}-{backend}", marks=marks)


def _gap_params() -> Iterator[Any]:
    for backend in BACKENDS:
        for name in CASES:
            if declared_gaps(name, backend):
                yield pytest.param(
                    name, backend, id=f"{name}-{backend}", marks=[getattr(pytest.mark, backend)]
                )


def _records(
    name: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> tuple[Job, list[Record] | None]:
    """Execute one case on the backend's engine (or read its batch's results)."""
    conf = hooks(backend)
    fixtures = {f: request.getfixturevalue(f) for f in conf.fixtures}
    this = job(name, backend, tmp_path, fixtures)
    if conf.batches:
        batch = batch_of(name, backend)
        assert batch is not None
        return this, request.getfixturevalue("batched_records")(backend, batch, name)
    return this, conf.execute(this)


@pytest.fixture(scope="session")
def simulated_records(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``get(case)``: the simulator's record of each of the case's runs, as ``pipecast verify``
    makes it (host processes, seed 1, the case's secrets), once per session and worker."""
    from pipecast.simulator import run_pipeline
    from pipecast.verify.engine import given_params

    done: dict[str, list[Record]] = {}

    def get(name: str) -> list[Record]:
        if name not in done:
            c, loaded = case(name), load(name)
            root = tmp_path_factory.mktemp(f"simulated-{name}")
            with contextlib.chdir(root):
                done[name] = [
                    run_pipeline(
                        loaded,
                        params=given_params(loaded.pipeline, run.params),
                        run_dir=root / f"run{i}",
                        containers="host",
                        secrets=dict(c.secrets),
                        seed=1,
                    )
                    for i, run in enumerate(c.runs)
                ]
        return done[name]

    return get


# ------------------------------------------------------------------------------ stages


@pytest.mark.parametrize(("name", "backend"), list(_params("compile")))
def test_compile(name: str, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiles, with only the declared approximations as warnings, byte-deterministically."""
    settings = settings_for(name, backend)
    first = compile_pipeline(load(name), backend, settings, lenient=lenient(name, backend))
    second = compile_pipeline(load(name), backend, settings, lenient=lenient(name, backend))
    assert first.files, "no files"
    _same_files(first.files, second.files, "compiled twice")
    approximated = {d.message for d in first.diagnostics if d.code == "approximated"}
    for feature in declared_gaps(name, backend):
        assert any(feature.value in m for m in approximated), f"no 'approximated' warning for {feature}"
    # Another working directory and a relative path: the output must not depend on either.
    monkeypatch.chdir(tmp_path)
    relative = os.path.relpath(CASES_DIR / f"{name}.yaml", tmp_path)
    third = compile_pipeline(load_checked(relative), backend, settings, lenient=lenient(name, backend))
    _same_files(first.files, third.files, f"compiled from {tmp_path}")


@pytest.mark.parametrize(("name", "backend"), list(_params("golden")))
def test_golden(name: str, backend: str, update_golden: bool) -> None:
    """Equal to the reviewed golden files (``pytest tests/conformance --update-golden``)."""
    files = compiled_files(name, backend)
    folder = GOLDEN / backend / name
    if update_golden:
        if folder.exists():
            for old in sorted(folder.rglob("*"), reverse=True):
                old.unlink() if old.is_file() else old.rmdir()
        for rel, text in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text, encoding="utf-8", newline="")
        return
    assert folder.is_dir(), f"no golden files in {folder}: run pytest tests/conformance --update-golden"
    stored = {
        p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
    _same_files(stored, files, "golden (refresh with: pytest tests/conformance --update-golden)")


@pytest.mark.parametrize(("name", "backend"), list(_params("validate")))
def test_validate(name: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The target's own checker accepts the output (no tool may be missing)."""
    conf = hooks(backend)
    if conf.batches:
        this, records = _records(name, backend, tmp_path, request)
        problems = conf.validate(this, records)
    else:
        problems = conf.validate(job(name, backend, tmp_path, {}))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("name", "backend"), list(_params("execute")))
def test_execute(
    name: str,
    backend: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """Runs on the target's local engine with the expected results (or its own check)."""
    c = case(name)
    monkeypatch.chdir(tmp_path)
    _, records = _records(name, backend, tmp_path, request)
    if records is None:
        return  # no local engine: Conformance.execute checked the output another way
    simulated = request.getfixturevalue("simulated_records")
    problems, found = [], []
    for i, (run, record) in enumerate(zip(c.runs, records, strict=True)):
        # Sub-pipelines the compile inlined: their dotted keys and the uses: step's own entry.
        restore_inlined_groups(record, load(name).index)
        if hooks(backend).reports_tasks_only:
            # The engine reports tasks only; groups and never-started steps are derived.
            complete(record, list(run.steps), load(name).index)
        problems += [f"run {i} (params {run.params}): {p}" for p in compare(run, record)]
        problems += [f"run {i} (params {run.params}): {p}" for p in timing_problems(run, record)]
        # One harness: verify's own verdict on the same record (no second engine run).
        _, _, diffs = compare_records(
            simulated(name)[i], record, load(name).lowered().index, tmp_path / "verify", hooks(backend).fetch
        )
        left_out = UNVERIFIED[name].steps if name in UNVERIFIED else ()
        diffs = [d for d in diffs if not (d.where.startswith("step ") and base_name(d.where[5:]) in left_out)]
        found += [f"run {i} (params {run.params}): verify: {d.render(backend)}" for d in diffs]
    known = VERIFY_FOUND.get((backend, name))
    if known is None:
        problems += found
    elif not found:
        problems.append(f"verify agrees now: remove VERIFY_FOUND[{(backend, name)!r}] ({known})")
    detail = json.dumps(
        [{k: v for k, v in r.items() if k in ("status", "steps", "outputs")} for r in records],
        indent=1,
        sort_keys=True,
        default=str,
    )
    assert not problems, "\n".join(problems) + "\nrecords:\n" + detail[-6000:]


# ------------------------------------------------------------------------------ declarations


@pytest.mark.parametrize(("name", "backend"), list(_gap_params()))
def test_unsupported(name: str, backend: str) -> None:
    """A declared-unsupported (or approximate) feature fails to compile, naming target and feature;
    an approximation compiles with ``lenient`` and says so."""
    gaps = declared_gaps(name, backend)
    settings = settings_for(name, backend)
    with pytest.raises(UserError) as err:
        compile_pipeline(load(name), backend, settings)
    diags = [d for d in err.value.diagnostics if d.code == "unsupported-feature"]
    assert diags, [d.render() for d in err.value.diagnostics]
    for feature in gaps:
        hits = [d for d in diags if feature.value in d.message and repr(backend) in d.message]
        assert hits, f"no unsupported-feature diagnostic names {feature.value!r}"
        assert all(d.line is not None for d in hits), "the diagnostic must point into the pipeline file"
    if "unsupported" not in gaps.values():
        assert all("--lenient" in (d.hint or "") for d in diags)
        compile_pipeline(load(name), backend, settings, lenient=True)


def test_exception_markers_match_declarations() -> None:
    """Every marker names a real case and backend; a ``notimpl``/``never`` marker tied to a
    feature must be on a feature the backend does not declare as supported, and no marker may
    duplicate a declared-unsupported feature (that case is already proven by test_unsupported)."""
    problems = []
    for (backend, name), exc in sorted(EXCEPTIONS.items()):
        if name not in CASES:
            problems.append(f"{backend}/{name}: no such case")
            continue
        if backend not in BACKENDS:
            continue  # a backend that is not installed here
        if not exc.reason:
            problems.append(f"{backend}/{name}: a marker needs a reason")
        if blocked(name, backend):
            problems.append(f"{backend}/{name}: redundant: the backend declares a used feature unsupported")
        if exc.kind in ("notimpl", "never") and exc.feature is not None:
            level = registry.get(backend).support(exc.feature).level
            if level in ("native", "runtime"):
                problems.append(
                    f"{backend}/{name}: {exc.kind} marker on {exc.feature.value!r}, which {backend} "
                    f"declares {level}: fix the backend or its declaration, not the suite"
                )
            if exc.feature not in features_of(name):
                problems.append(f"{backend}/{name}: the case does not use {exc.feature.value!r}")
    assert not problems, "\n".join(problems)


def test_unverified_entries_name_real_steps() -> None:
    """Every step verify's comparison leaves out exists in its case, with a reason; every
    VERIFY_FOUND entry names a real case."""
    problems = [
        f"{name}: {step!r}"
        for name, entry in sorted(UNVERIFIED.items())
        for step in entry.steps
        if name not in CASES or not entry.reason or step not in load(name).index.nodes
    ]
    problems += [f"VERIFY_FOUND {key}" for key in VERIFY_FOUND if key[1] not in CASES]
    assert not problems, f"stale UNVERIFIED entries: {problems}"


def test_catalogue_is_complete() -> None:
    """Every case has an expectation and vice versa, and every case loads and validates."""
    cases = sorted(p.stem for p in CASES_DIR.glob("*.yaml"))
    expected = sorted(p.stem for p in EXPECTED_DIR.glob("*.yaml"))
    assert cases == expected
    for name in cases:
        c = case(name)
        assert c.runs and all(r.status in ("succeeded", "failed") for r in c.runs), name
        load(name)


def test_goldens_have_no_orphans() -> None:
    """Golden folders exist only for (backend, case) pairs the suite compiles."""
    live = {(b, n) for b in BACKENDS for n in CASES if not blocked(n, b)}
    found = {(p.parent.name, p.name) for p in GOLDEN.glob("*/*") if p.is_dir()}
    orphans = sorted(f"{b}/{n}" for b, n in found - live if b in BACKENDS)
    assert not orphans, f"stale golden folders (delete them): {orphans}"


# ------------------------------------------------------------------------------ helpers


def _same_files(want: dict[str, str], got: dict[str, str], what: str) -> None:
    if want == got:
        return
    lines = [f"output differs from {what}"]
    if set(want) != set(got):
        lines.append(f"files: expected {sorted(want)}, got {sorted(got)}")
    for rel in sorted(set(want) & set(got)):
        if want[rel] != got[rel]:
            diff = difflib.unified_diff(
                want[rel].splitlines(), got[rel].splitlines(), f"expected/{rel}", f"got/{rel}", lineterm=""
            )
            lines.extend(list(diff)[:80])
    pytest.fail("\n".join(lines), pytrace=False)
