"""``run_pipeline``: the simulator's Python API (what ``pipecast run`` calls).

A run lives in ``<runs root>/<run_id>/``::

    run.json            the run record (SPEC §12), rewritten atomically as the run goes
    journal.jsonl       one line per finished task (what --resume trusts after a SIGKILL)
    logs/<key>.<n>.log  stdout+stderr of attempt n
    artifacts/<key>/<output>   artifact outputs (files or folders)
    steps/<key>/        each step's work folder (container parameter outputs)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets as _random
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipecast.diagnostics import Diagnostic, UserError
from pipecast.io import atomic_write, dump_json
from pipecast.ir.models import ContainerRun
from pipecast.passes.analysis import PipelineIndex, nearest
from pipecast.runtime.spec import definition_data
from pipecast.simulator import secrets as sec
from pipecast.simulator.cache import Cache
from pipecast.simulator.clock import RealClock, VirtualClock
from pipecast.simulator.engine import Engine, Hooks, Inst
from pipecast.simulator.launch import RealLauncher, VirtualLauncher, detect_containers
from pipecast.simulator.values import art_exists, from_record, to_record

DEFAULT_RUNS = Path(".pipecast") / "runs"
RECORD = "run.json"
JOURNAL = "journal.jsonl"
WRITE_EVERY = 0.2  # seconds between record rewrites while running; the journal is per step
#: A rewrite costs O(steps): waiting this many times the last rewrite's duration between
#: rewrites keeps their share of the run bounded, so a large run stays linear (issue 15).
WRITE_BACKOFF = 10


LOCK = ".lock"
#: A run id is a folder name: letters, digits, ``.``, ``_``, ``-``; no ``..``, no ``/``.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def run_folder(root: Path, run_id: str, flag: str = "--run-id") -> Path:
    """``root / run_id`` for a valid run id.

    Raises:
        UserError: the id is not a plain name (``../victim``, ``a/b``, empty, too long).
    """
    if not RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise UserError(
            Diagnostic(
                f"{flag} {run_id!r} is not a run id",
                hint="a run id is a name of at most 200 letters, digits, '.', '_' and '-' that starts "
                "with a letter or digit and has no '..' (list runs with 'pipecast runs')",
                code="usage",
            )
        )
    return root / run_id


def _locked(folder: Path) -> int | None:
    """Take the run folder's exclusive lock; the open descriptor holds it (``None``: no
    locking on this platform). The OS drops the lock when the process dies, even by kill -9.

    Raises:
        UserError: another process holds it (a run with the same id is going on).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise UserError(
            Diagnostic(
                f"run {folder.name!r} in {folder.parent} is being run by another pipecast process",
                hint="wait for it to end, or pick another --run-id",
                code="run-locked",
            )
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def is_live(folder: Path) -> bool:
    """Whether a process is running this run now (it holds the folder's lock)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return True
    try:
        fd = os.open(folder / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _start_folder(folder: Path, root: Path, run_id: str, *, resume: bool) -> int | None:
    """Create and lock the run folder; a second run with the same id gets a clear error."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = _locked(folder)
    except OSError as exc:
        raise UserError(
            Diagnostic(
                f"cannot create the run folder {folder}: {exc.strerror or exc}",
                hint="pass --run-dir a folder you can write to",
                code="run-dir",
            )
        ) from None
    if not resume and (folder / RECORD).exists():
        if lock is not None:
            os.close(lock)
        raise UserError(
            Diagnostic(
                f"run {run_id!r} already exists in {root}", hint="pick another --run-id, or --resume it"
            )
        )
    return lock


def new_run_id(pipeline: str) -> str:
    """``<pipeline>-<UTC yyyymmddThhmmssZ>-<6 hex>``: sortable by time, unique."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{pipeline}-{stamp}-{_random.token_hex(3)}"


def parse_fail(
    specs: Iterable[str] | Mapping[str, int | None] | None, index: PipelineIndex
) -> dict[str, int | None]:
    """``--fail STEP[:N]`` → ``{step or run key: N or None (all attempts)}``."""
    if not specs:
        return {}
    out: dict[str, int | None] = {}
    items = specs.items() if isinstance(specs, Mapping) else (_split_fail(s) for s in specs)
    names = [*index.nodes, *(["finally"] if index.finally_node else [])]
    for name, n in items:
        base = name.split("[", 1)[0]
        if base not in names:
            hint = nearest(base, names)
            raise UserError(
                Diagnostic(
                    f"--fail {name}: the pipeline has no step {base!r}",
                    hint=f"did you mean {hint!r}?" if hint else f"steps: {', '.join(names)}",
                )
            )
        if base in index.nodes and index.nodes[base].is_group:
            raise UserError(Diagnostic(f"--fail {name}: {base!r} is a group; name a task step inside it"))
        out[name] = n
    return out


def _split_fail(text: str) -> tuple[str, int | None]:
    name, sep, count = text.rpartition(":")
    if not sep:
        return text, None
    if not count.isdigit() or int(count) < 1:
        raise UserError(Diagnostic(f"--fail {text}: N must be a positive number of attempts (STEP[:N])"))
    return name, int(count)


def read_record(folder: Path) -> dict[str, Any]:
    """The run record of a run folder, with finished tasks from the journal laid over it."""
    path = folder / RECORD
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        raise UserError(
            Diagnostic(
                f"no run record at {path}",
                hint="check the run id with 'pipecast runs' (and --run-dir if the runs are elsewhere)",
                file=str(folder),
            )
        ) from None
    try:
        record = json.loads(text)
        if not isinstance(record, dict) or not isinstance(record.get("steps"), dict):
            raise ValueError("not a run record")
    except ValueError as exc:
        raise UserError(
            Diagnostic(
                f"the run record {path} is damaged ({exc})",
                hint="it was cut short or edited; start a new run (its journal.jsonl lists the "
                "steps that finished)",
                file=str(path),
            )
        ) from None
    journal = folder / JOURNAL
    if journal.exists():
        for line in journal.read_text().splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue  # a line cut short by a kill
            record["steps"][item["key"]] = item["entry"]
    if record.get("status") == "running" and not is_live(folder):
        # Nothing holds the lock: the process died (kill -9, power loss) mid-run.
        record["status"] = "interrupted"
    return record


class _Recorder(Hooks):
    """Keeps the run record on disk: the journal per finished task, the record throttled."""

    def __init__(self, folder: Path | None, base: dict[str, Any], masker: sec.Masker) -> None:
        self.folder = folder
        self.base = base
        self.masker = masker
        self.engine: Engine | None = None
        self.last = 0.0
        self.every = WRITE_EVERY
        self.dirty = False
        self._journal = None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            self._journal = open(folder / JOURNAL, "a", encoding="utf-8")  # noqa: SIM115

    def change(self, inst: Inst) -> None:
        self.dirty = True
        if self._journal is not None and inst.node.is_task and inst.status in ("succeeded", "cached"):
            assert self.engine is not None
            entry = self.stored(self.engine.entry(inst))
            self._journal.write(json.dumps({"key": inst.key, "entry": entry}) + "\n")
            self._journal.flush()  # the OS has it: a SIGKILL of this process cannot lose it
        now = time.monotonic()
        if now - self.last >= self.every:
            self.write()

    def record(self, status: str | None = None) -> dict[str, Any]:
        assert self.engine is not None
        eng = self.engine
        # Writing order (a group, then its steps, iteration by iteration), finally last:
        # instances are created as the run goes, which is no order a reader expects.
        last = len(eng.index.nodes) + 1
        ordered = sorted(
            eng.insts.items(),
            key=lambda kv: (last if kv[1] is eng.finally_inst else kv[1].node.index, kv[1].frame.indices),
        )
        steps = {key: self.stored(eng.entry(inst)) for key, inst in ordered}
        rec = dict(self.base)
        rec["status"] = status or eng.status
        rec["steps"] = steps
        rec["order"] = list(steps)
        return self.masker.mask(rec)

    def stored(self, entry: dict[str, Any]) -> dict[str, Any]:
        """A step entry as the record and journal keep it: secrets masked. Masking is for
        display only, so an entry whose outputs held a secret is marked ``secret_outputs``
        and is never reused by ``--resume`` (the step runs again)."""
        if not self.masker:
            return entry
        masked: dict[str, Any] = self.masker.mask(entry)
        if "outputs" in entry and masked["outputs"] != entry["outputs"]:
            masked["secret_outputs"] = True
        return masked

    def write(self, record: dict[str, Any] | None = None) -> None:
        start = time.monotonic()
        self.dirty = False
        if self.folder is not None:
            atomic_write(self.folder / RECORD, dump_json(record or self.record()))
        self.last = time.monotonic()
        self.every = max(WRITE_EVERY, WRITE_BACKOFF * (self.last - start))

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()


def run_pipeline(
    loaded: Any,
    *,
    params: Mapping[str, Any] | None = None,
    run_dir: str | Path | None = None,
    run_id: str | None = None,
    max_parallel: int | None = None,
    containers: str | None = None,
    fail: Iterable[str] | Mapping[str, int | None] | None = None,
    dry_run: bool = False,
    mock: Mapping[str, Any] | str | Path | None = None,
    profile: str | None = None,
    secrets: Mapping[str, str] | str | Path | None = None,
    no_cache: bool = False,
    resume: str | None = None,
    seed: int | None = None,
    hooks: Sequence[Hooks] | None = None,
) -> dict[str, Any]:
    """Run a pipeline locally with the reference semantics; return the run record (SPEC §12).

    Args:
        loaded: a :class:`pipecast.loader.Loaded`, or a path to a pipeline file (checked).
        params: parameter values (typed values, or strings parsed by the declared type).
        run_dir: the runs root (default ``.pipecast/runs`` in the current directory).
        run_id: fix the run id (default ``<pipeline>-<UTC time>-<random>``).
        max_parallel: concurrent attempts at most (default: CPU count).
        containers: ``docker``, ``podman`` or ``host`` (default: docker/podman if installed).
        fail: fault injection, ``["train:2", "alert"]`` or ``{"train": 2, "alert": None}``.
        dry_run: run nothing; virtual time; outputs from types or ``mock``.
        mock: for dry runs, ``{step or key: {outputs: {...}, duration: "5s", fail: N}}`` or a
            YAML/JSON file holding it.
        profile: also check the run-time limits of a target (one whose backend declares a
            profile: ``Backend.profile()``); violations are in ``record["profile"]``.
        secrets: secret name → value, or a dotenv file; else the environment is used.
        no_cache: ignore ``cache: true``.
        resume: the id of an earlier run (in ``run_dir``) to finish: its succeeded steps
            are reused, the rest run.
        seed: seeds retry jitter.
        hooks: observers (progress display).

    Raises:
        UserError: bad parameters, unknown ``--fail`` steps, missing secrets, no container
            engine, an unknown run to resume.
    """
    # Capture the options first: later locals (imports, helpers) must not leak into them.
    options = {k: v for k, v in locals().items() if k != "loaded"}
    if isinstance(loaded, str | Path):
        from pipecast.api import load_checked

        loaded = load_checked(loaded)
    loaded = loaded.lowered()
    held: list[int | None] = []  # the run folder's lock, held until the run ends
    try:
        return _run(loaded, held=held, **options)
    except UserError as exc:
        # Errors found while starting the run (secrets, --fail, engines) name the file.
        raise UserError([d.located(loaded.source) for d in exc.diagnostics]) from None
    finally:
        for fd in held:
            if fd is not None:
                os.close(fd)


def _run(
    loaded: Any,
    *,
    params: Mapping[str, Any] | None,
    run_dir: str | Path | None,
    run_id: str | None,
    max_parallel: int | None,
    containers: str | None,
    fail: Iterable[str] | Mapping[str, int | None] | None,
    dry_run: bool,
    mock: Mapping[str, Any] | str | Path | None,
    profile: str | None,
    secrets: Mapping[str, str] | str | Path | None,
    no_cache: bool,
    resume: str | None,
    seed: int | None,
    hooks: Sequence[Hooks] | None,
    held: list[int | None],
) -> dict[str, Any]:
    from pipecast.simulator.profiles import Profile, profile_for

    pipeline = loaded.pipeline
    index: PipelineIndex = loaded.index
    root = Path(run_dir).absolute() if run_dir is not None else DEFAULT_RUNS.absolute()
    previous, run_id, params_v = _start(pipeline, root, params, run_id, resume)
    folder = root / run_id
    if not dry_run and not resume and (folder / RECORD).exists():
        raise UserError(
            Diagnostic(
                f"run {run_id!r} already exists in {root}", hint="pick another --run-id, or --resume it"
            )
        )
    fail_map = parse_fail(fail, index)
    checks: list[Profile] = [profile_for(profile)] if profile else []
    python_path = [str(Path(loaded.path).parent.absolute())]
    if max_parallel is None:
        max_parallel = os.cpu_count() or 2

    secret_values = {} if dry_run else _secret_values(index, secrets)
    masker = sec.Masker(secret_values.values())
    base = {
        "pipeline": pipeline.name,
        "run_id": run_id,
        "params": params_v,
        "outputs": {},
        "file": str(Path(loaded.path).absolute()),
    }
    if dry_run:
        base["dry_run"] = True
    else:
        held.append(_start_folder(folder, root, run_id, resume=bool(resume)))
    recorder = _Recorder(None if dry_run else folder, base, masker)
    warnings: list[str] = sec.short_secret_warnings(secret_values)
    if dry_run:
        clock: Any = VirtualClock()
        launcher: Any = VirtualLauncher(index, _read_mock(mock), folder)
    else:
        clock = RealClock()
        launcher = _real_launcher(
            loaded, folder, python_path, max_parallel, containers, secret_values, warnings
        )
    cache = None if (no_cache or dry_run) else Cache(root / ".cache", python_path)
    reuse = _Reuse(index, run_id, cache, _resumable(previous) if previous else {}, masker, recorder)
    engine = Engine(
        index,
        params_v,
        run_id,
        clock,
        launcher,
        max_parallel=max_parallel,
        fail=fail_map,
        seed=seed,
        reuse=reuse.outcome,
        hooks=[*checks, *(hooks or [])],
        on_change=reuse.on_change,
        base_dir=Path(loaded.path).parent.absolute(),
    )
    reuse.engine = recorder.engine = engine
    if not dry_run:
        recorder.write(recorder.record("running"))
    try:
        engine.run()
    except OSError as exc:
        raise _stopped(exc, folder, recorder, run_id) from None
    finally:
        launcher.close()
        recorder.close()
    record = recorder.record()
    record["started"] = engine.wall(engine.started_clock)
    record["ended"] = engine.wall(clock.now())
    if engine.status == "succeeded":
        record["outputs"] = masker.mask({k: to_record(v) for k, v in engine.pipeline_outputs().items()})
    if warnings:
        record["warnings"] = warnings
    for check in checks:
        check.finish()
        record["profile"] = check.report()
    if dry_run:
        from pipecast.simulator.timeline import timeline

        record["timeline"] = timeline(engine)
    else:
        recorder.write(record)
    return record


def _start(
    pipeline: Any, root: Path, params: Mapping[str, Any] | None, run_id: str | None, resume: str | None
) -> tuple[dict[str, Any] | None, str, dict[str, Any]]:
    """The record of the run to resume (``None``: a new run), the run id and the checked
    parameters (a resumed run's own, which the command line may repeat but not change)."""
    from pipecast.passes.validate import check_params

    if run_id is not None:
        run_folder(root, run_id)
    if resume is None:
        return None, run_id or new_run_id(pipeline.name), check_params(pipeline, dict(params or {}))
    previous = read_record(run_folder(root, resume, "--resume"))
    if previous.get("pipeline") != pipeline.name:
        raise UserError(
            Diagnostic(
                f"run {resume!r} is a run of pipeline {previous.get('pipeline')!r}, not {pipeline.name!r}",
                hint="pass the same pipeline file the run was started with",
            )
        )
    given = {**previous.get("params", {}), **dict(params or {})}
    if params and any(
        previous.get("params", {}).get(k) != v
        for k, v in check_params(pipeline, dict(params)).items()
        if k in params
    ):
        raise UserError(Diagnostic("--resume continues a run with its own parameters; do not change them"))
    return previous, resume, check_params(pipeline, given)


def _secret_values(index: PipelineIndex, secrets: Mapping[str, str] | str | Path | None) -> dict[str, str]:
    """The value of every secret a step uses (SPEC §9), from a dotenv file or a mapping."""
    given: Mapping[str, str] = (
        sec.read_dotenv(Path(secrets)) if isinstance(secrets, str | Path) else (secrets or {})
    )
    used = [(n.name, s) for n in index.tasks() for s in index.effective(n).secrets.values()]
    return sec.resolve(used, given)


def _real_launcher(
    loaded: Any,
    folder: Path,
    python_path: list[str],
    max_parallel: int,
    containers: str | None,
    secret_values: dict[str, str],
    warnings: list[str],
) -> RealLauncher:
    """The launcher of a real run; warns (into ``warnings``) when container steps run on the host."""
    index: PipelineIndex = loaded.index
    container_steps = [n for n in index.tasks() if isinstance(n.task.run, ContainerRun)]
    mode = detect_containers(containers, bool(container_steps), str(loaded.path))
    if mode == "host" and container_steps:
        images = sorted({n.task.run.image for n in container_steps if isinstance(n.task.run, ContainerRun)})
        warnings.append(
            "container steps run on this machine (--containers host): their image"
            + ("s " if len(images) > 1 else " ")
            + ", ".join(images)
            + (" are" if len(images) > 1 else " is")
            + " ignored"
        )
    return RealLauncher(index, folder, python_path, max_parallel, mode, secret_values)


def _stopped(exc: OSError, folder: Path, recorder: _Recorder, run_id: str) -> UserError:
    """A full disk or a folder made read-only under the run: record why, if we still can."""
    reason = f"the run stopped: cannot write {exc.filename or 'to ' + str(folder)}: {exc.strerror or exc}"
    with contextlib.suppress(OSError):
        failed = recorder.record("failed")
        failed["error"] = reason
        recorder.write(failed)
    return UserError(
        Diagnostic(
            reason,
            hint="free some disk space (or fix the folder's permissions), then finish the run with "
            f"--resume {run_id}",
            code="run-io",
        )
    )


class _Reuse:
    """Which steps need not run: those a resumed run already finished, and result-cache hits
    (SPEC §20); stores each newly succeeded cacheable step's outputs in the cache."""

    def __init__(
        self,
        index: PipelineIndex,
        run_id: str,
        cache: Cache | None,
        resumed: dict[str, Any],
        masker: sec.Masker,
        recorder: _Recorder,
    ) -> None:
        self.index = index
        self.run_id = run_id
        self.cache = cache
        self.resumed = resumed
        self.masker = masker
        self.recorder = recorder
        self.keys: dict[int, str] = {}
        self.engine: Engine | None = None

    def outcome(self, inst: Inst) -> dict[str, Any] | None:
        assert self.engine is not None
        # finally always runs again: it reads pipeline.status, which the resumed run decides
        # (a group's finally likewise reads group.status).
        rerun = inst is self.engine.finally_inst or inst.node.finally_of is not None
        old = None if rerun else self.resumed.get(inst.key)
        if old is not None:
            done = self._resumed(inst, old)
            if done is not None:
                return done
        eff = self.engine.effective(inst.node)
        if self.cache is None or not eff.cache:
            return None
        types = inst.node.task.outputs
        key = self.cache.key(
            _definition(self.index, inst), inst.inputs or {}, inst.node.task.run, eff.cache_version
        )
        hit = self.cache.get(key, dict(types), eff.cache_max_age)
        if hit is not None:
            return {
                "status": "cached",
                "outputs": hit["outputs"],
                "attempts": 0,
                "extra": {"cached_from": {"run_id": hit["run_id"], "step": hit["step"]}},
            }
        self.keys[id(inst)] = key
        return None

    @staticmethod
    def _resumed(inst: Inst, old: dict[str, Any]) -> dict[str, Any] | None:
        """The outcome of a step the resumed run finished, while its outputs still exist."""
        types = inst.node.task.outputs
        outputs = {n: from_record(v, types.get(n, "any")) for n, v in old.get("outputs", {}).items()}
        if set(outputs) != set(types) or not all(art_exists(v) for v in outputs.values()):
            return None
        extra = {"resumed": True}
        if "cached_from" in old:
            extra["cached_from"] = old["cached_from"]
        return {
            "status": old["status"],
            "outputs": outputs,
            "attempts": old.get("attempts", 1),
            "extra": extra,
        }

    def on_change(self, inst: Inst) -> None:
        if self.cache is not None and inst.status == "succeeded" and id(inst) in self.keys:
            key = self.keys.pop(id(inst))
            # The cache is plain JSON on disk: outputs holding a secret are never stored.
            if not self.masker.holds({n: to_record(v) for n, v in (inst.outputs or {}).items()}):
                self.cache.put(key, self.run_id, inst.key, inst.outputs or {})
        self.recorder.change(inst)


def _definition(index: PipelineIndex, inst: Inst) -> dict[str, Any]:
    """The step's definition after defaults, as SPEC §20 signs it."""
    return definition_data(index, inst.node)


def _resumable(record: dict[str, Any]) -> dict[str, Any]:
    return {
        k: e
        for k, e in record.get("steps", {}).items()
        if e.get("status") in ("succeeded", "cached") and "attempts" in e and not e.get("secret_outputs")
    }


def _read_mock(mock: Mapping[str, Any] | str | Path | None) -> dict[str, Any]:
    if mock is None:
        return {}
    if isinstance(mock, Mapping):
        return _check_mock(dict(mock), "--mock")
    import yaml

    path = Path(mock)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(Diagnostic(f"cannot read mock file {path}: {exc}")) from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise UserError(
            Diagnostic(
                f"mock file {path} must map step names to {{outputs: {{...}}, duration: ..., fail: N}}",
                hint="e.g. 'train: {outputs: {auc: 0.9}, duration: 5m}'",
            )
        )
    return _check_mock(data, str(path))


def _check_mock(data: dict[str, Any], where: str) -> dict[str, Any]:
    from pipecast.ir.values import parse_duration

    for step, entry in data.items():
        if isinstance(entry, Mapping) and "duration" in entry:
            try:
                parse_duration(entry["duration"])
            except ValueError as exc:
                raise UserError(
                    Diagnostic(
                        f"{where}: {step}.duration: {exc}",
                        hint="a duration is a non-negative number of seconds or a string like '5m'",
                        file=where if where != "--mock" else None,
                    )
                ) from None
    return data
