"""``run_pipeline``: the simulator's Python API (what ``pipecast run`` calls).

A run lives in ``<runs root>/<run_id>/``::

    run.json            the run record (SPEC §12), rewritten atomically as the run goes
    journal.jsonl       one line per finished task (what --resume trusts after a SIGKILL)
    logs/<key>.<n>.log  stdout+stderr of attempt n
    artifacts/<key>/<output>   artifact outputs (files or folders)
    steps/<key>/        each step's work folder (container parameter outputs)
"""

from __future__ import annotations

import json
import os
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
from pipecast.simulator.values import art_exists, from_record

DEFAULT_RUNS = Path(".pipecast") / "runs"
RECORD = "run.json"
JOURNAL = "journal.jsonl"
WRITE_EVERY = 0.2  # seconds between record rewrites while running; the journal is per step


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
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        raise UserError(
            Diagnostic(
                f"no run record at {path}",
                hint="check the run id with 'pipecast runs' (and --run-dir if the runs are elsewhere)",
                file=str(folder),
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
    return record


class _Recorder(Hooks):
    """Keeps the run record on disk: the journal per finished task, the record throttled."""

    def __init__(self, folder: Path | None, base: dict[str, Any], mask: list[str]) -> None:
        self.folder = folder
        self.base = base
        self.mask = mask
        self.engine: Engine | None = None
        self.last = 0.0
        self.dirty = False
        self._journal = None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            self._journal = open(folder / JOURNAL, "a", encoding="utf-8")  # noqa: SIM115

    def change(self, inst: Inst) -> None:
        self.dirty = True
        if self._journal is not None and inst.node.is_task and inst.status in ("succeeded", "cached"):
            assert self.engine is not None
            entry = sec.mask(self.engine.entry(inst), self.mask)
            self._journal.write(json.dumps({"key": inst.key, "entry": entry}) + "\n")
            self._journal.flush()  # the OS has it: a SIGKILL of this process cannot lose it
        now = time.monotonic()
        if now - self.last >= WRITE_EVERY:
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
        steps = {key: eng.entry(inst) for key, inst in ordered}
        rec = dict(self.base)
        rec["status"] = status or eng.status
        rec["steps"] = steps
        rec["order"] = list(steps)
        return sec.mask(rec, self.mask)

    def write(self, record: dict[str, Any] | None = None) -> None:
        self.last = time.monotonic()
        self.dirty = False
        if self.folder is not None:
            atomic_write(self.folder / RECORD, dump_json(record or self.record()))

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
    try:
        return _run(loaded, **options)
    except UserError as exc:
        # Errors found while starting the run (secrets, --fail, engines) name the file.
        raise UserError([d.located(loaded.source) for d in exc.diagnostics]) from None


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
) -> dict[str, Any]:
    from pipecast.passes.validate import check_params
    from pipecast.simulator.profiles import Profile, profile_for

    pipeline = loaded.pipeline
    index: PipelineIndex = loaded.index
    root = Path(run_dir) if run_dir is not None else DEFAULT_RUNS
    root = root.absolute()

    previous: dict[str, Any] | None = None
    if resume:
        previous = read_record(root / resume)
        if previous.get("pipeline") != pipeline.name:
            raise UserError(
                Diagnostic(
                    f"run {resume!r} is a run of pipeline {previous.get('pipeline')!r}, not {pipeline.name!r}",
                    hint="pass the same pipeline file the run was started with",
                )
            )
        run_id = resume
        given = {**previous.get("params", {}), **dict(params or {})}
        if params and any(
            previous.get("params", {}).get(k) != v
            for k, v in check_params(pipeline, dict(params)).items()
            if k in params
        ):
            raise UserError(
                Diagnostic("--resume continues a run with its own parameters; do not change them")
            )
        params_v = check_params(pipeline, given)
    else:
        params_v = check_params(pipeline, dict(params or {}))
    run_id = run_id or new_run_id(pipeline.name)
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

    tasks = list(index.tasks())
    secret_values: dict[str, str] = {}
    if not dry_run:
        given_secrets: Mapping[str, str] = (
            sec.read_dotenv(Path(secrets)) if isinstance(secrets, str | Path) else (secrets or {})
        )
        used = [(n.name, s) for n in tasks for s in index.effective(n).secrets.values()]
        secret_values = sec.resolve(used, given_secrets)
    mask = sorted({v for v in secret_values.values() if v}, key=len, reverse=True)

    base = {
        "pipeline": pipeline.name,
        "run_id": run_id,
        "params": params_v,
        "outputs": {},
        "file": str(Path(loaded.path).absolute()),
    }
    if dry_run:
        base["dry_run"] = True
    recorder = _Recorder(None if dry_run else folder, base, mask)

    warnings: list[str] = []
    if dry_run:
        clock: Any = VirtualClock()
        mock_data = _read_mock(mock)
        launcher: Any = VirtualLauncher(index, mock_data, folder)
    else:
        clock = RealClock()
        needs_containers = any(isinstance(n.task.run, ContainerRun) for n in tasks)
        mode = detect_containers(containers, needs_containers, str(loaded.path))
        launcher = RealLauncher(index, folder, python_path, max_parallel, mode, secret_values)
        if mode == "host" and needs_containers:
            images = sorted({n.task.run.image for n in tasks if isinstance(n.task.run, ContainerRun)})
            warnings.append(
                "container steps run on this machine (--containers host): their image"
                + ("s " if len(images) > 1 else " ")
                + ", ".join(images)
                + (" are" if len(images) > 1 else " is")
                + " ignored"
            )

    cache = None if (no_cache or dry_run) else Cache(root / ".cache", python_path)
    resumed = _resumable(previous) if previous else {}
    cache_keys: dict[int, str] = {}

    def reuse(inst: Inst) -> dict[str, Any] | None:
        types = inst.node.task.outputs
        # finally always runs again: it reads pipeline.status, which the resumed run decides.
        old = None if inst is engine.finally_inst else resumed.get(inst.key)
        if old is not None:
            outputs = {n: from_record(v, types.get(n, "any")) for n, v in old.get("outputs", {}).items()}
            if set(outputs) == set(types) and all(art_exists(v) for v in outputs.values()):
                extra = {"resumed": True}
                if "cached_from" in old:
                    extra["cached_from"] = old["cached_from"]
                return {
                    "status": old["status"],
                    "outputs": outputs,
                    "attempts": old.get("attempts", 1),
                    "extra": extra,
                }
        eff = engine.effective(inst.node)
        if cache is None or not eff.cache:
            return None
        key = cache.key(_definition(index, inst), inst.inputs or {}, inst.node.task.run, eff.cache_version)
        hit = cache.get(key, dict(types), eff.cache_max_age)
        if hit is not None:
            return {
                "status": "cached",
                "outputs": hit["outputs"],
                "attempts": 0,
                "extra": {"cached_from": {"run_id": hit["run_id"], "step": hit["step"]}},
            }
        cache_keys[id(inst)] = key
        return None

    def on_change(inst: Inst) -> None:
        if cache is not None and inst.status == "succeeded" and id(inst) in cache_keys:
            cache.put(cache_keys.pop(id(inst)), run_id, inst.key, inst.outputs or {})
        recorder.change(inst)

    engine = Engine(
        index,
        params_v,
        run_id,
        clock,
        launcher,
        max_parallel=max_parallel,
        fail=fail_map,
        seed=seed,
        reuse=reuse,
        hooks=[*checks, *(hooks or [])],
        on_change=on_change,
    )
    recorder.engine = engine
    if not dry_run:
        recorder.write(recorder.record("running"))
    try:
        engine.run()
    finally:
        launcher.close()
        recorder.close()
    record = recorder.record()
    record["started"] = engine.wall(engine.started_clock)
    record["ended"] = engine.wall(clock.now())
    if engine.status == "succeeded":
        from pipecast.simulator.values import to_record

        record["outputs"] = sec.mask({k: to_record(v) for k, v in engine.pipeline_outputs().items()}, mask)
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


def _definition(index: PipelineIndex, inst: Inst) -> dict[str, Any]:
    """The step's definition after defaults, as SPEC §20 signs it."""
    return definition_data(index, inst.node)


def _resumable(record: dict[str, Any]) -> dict[str, Any]:
    return {
        k: e
        for k, e in record.get("steps", {}).items()
        if e.get("status") in ("succeeded", "cached") and "attempts" in e
    }


def _read_mock(mock: Mapping[str, Any] | str | Path | None) -> dict[str, Any]:
    if mock is None:
        return {}
    if isinstance(mock, Mapping):
        return dict(mock)
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
    return data
