"""Run a compiled KFP v2 PipelineSpec in ``kfp.local`` with the subprocess runner: the local
engine of the KFP-based targets (Vertex AI Pipelines, Kubeflow Pipelines), used by ``pipecast
verify`` and the test suite alike.

kfp.local (https://www.kubeflow.org/docs/components/pipelines/user-guides/core-functions/execute-kfp-pipelines-locally/)
runs each task's command on this host. Its subprocess runner refuses container components, so
that one check is switched off while a run lasts (as kfp's own tests do); every step then runs
its command here: python steps ``python -m pipecast.runtime run --convention kfp``, container
steps on stock images their own command (SPEC §21). ``python`` on the PATH is a shim that hands
``-m pipecast.runtime`` to this interpreter and everything else to a bare venv where pipecast
is NOT importable, so a stock step that secretly needed pipecast fails here. Each runtime
attempt appends a line to ``PIPECAST_KFP_TRACE``, and so does each stock task (from
kfp.local's own task result); a step's run-record key is its name plus the
``-iteration-<i>`` folders kfp.local creates for each enclosing loop. A step whose condition
kfp.local finds false is traced ``skipped`` (kfp.local itself reports nothing for it).

:func:`run_local` runs in this process and restores what it changes (working directory,
environment, the two kfp functions); ``python -m pipecast.verify.kfp_local JOB_JSON`` runs it
in a child process, which ``pipecast verify`` uses to bound the run's time.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from pipecast.diagnostics import Diagnostic, UserError
from pipecast.passes.analysis import PipelineIndex
from pipecast.passes.inline import flat_names
from pipecast.runtime.conventions.kfp import SKIPPED, coerce, decode, textual, unmarked, wire_params
from pipecast.runtime.faults import fail_env
from pipecast.verify.engine import (
    Engine,
    EngineJob,
    EngineResult,
    EngineSession,
    compile_job,
    environ,
    timed_out,
)
from pipecast.verify.records import output_types

_ITER = re.compile(r"-iteration-(\d+)")
TRACE_ENV = "PIPECAST_KFP_TRACE"


@contextmanager
def _patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    """Replace ``owner.name`` for the block (``owner.__dict__`` entry restored after)."""
    had = name in vars(owner)
    original = vars(owner).get(name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        if had:
            setattr(owner, name, original)
        else:
            delattr(owner, name)


class _Quoted(str):
    """A string value as kfp.local's condition evaluator writes it into the expression it
    evaluates (``f"'{value}'"``): formatted as the inside of a Python single-quoted literal, so
    a quote, backslash or newline in the value stays text instead of breaking the expression."""

    def __format__(self, spec: str) -> str:
        return json.dumps(str(self), ensure_ascii=False)[1:-1].replace("'", "\\'")


def _cel_shims() -> Any:
    """Make kfp.local's condition evaluator read conditions as CEL does on the service.

    kfp.local (``ConditionEvaluator.evaluate_condition`` in
    kfp/local/orchestrator/enhanced_dag_orchestrator.py) turns a CEL condition into Python by
    pasting values into the text and ``eval``-ing it with a few names; two gaps make a valid
    condition read as false there although Vertex/KFP evaluate it (https://github.com/google/cel-spec/blob/master/doc/langdef.md):
    a string value holding a quote or a newline is pasted unescaped (a syntax error), a channel
    whose task or output name holds ``--`` is not found (:func:`_split_anywhere`), nor is a key
    of a loop item that the task selects from the item (:func:`_item_key`), and CEL's
    ``double()`` conversion (which kfp's own compiler emits to compare an int with a double) is
    not among the names. The value is pasted escaped (:class:`_Quoted`) and ``double``/``string``
    are CEL's conversions. The compiled spec is not changed; only the engine's reading of it.
    """
    import builtins

    from kfp.local.orchestrator import enhanced_dag_orchestrator as orchestrator

    evaluator = orchestrator.ConditionEvaluator
    resolve = evaluator._resolve_pipeline_channel

    def resolved(channel_ref: str, io_store: Any) -> Any:
        value = resolve(channel_ref, io_store)
        if value is None:
            value = _split_anywhere(channel_ref, io_store)
        if value is None:
            value = _item_key(channel_ref, io_store)
        return _Quoted(value) if isinstance(value, str) else value

    def cel_eval(source: str, names: dict[str, Any], local: dict[str, Any]) -> Any:
        return builtins.eval(source, {**names, "double": float, "string": str}, local)

    stack = ExitStack()
    stack.enter_context(_patched(evaluator, "_resolve_pipeline_channel", staticmethod(resolved)))
    stack.enter_context(_patched(orchestrator, "eval", cel_eval))
    return stack


def _split_anywhere(channel_ref: str, io_store: Any) -> Any:
    """The value of ``pipelinechannel--<task>--<output>`` when the task or output name holds
    ``--`` itself (an inlined sub-pipeline's ``prep--sq``, an ``output--items`` view):
    kfp.local splits at the first ``--`` only; on the service the condition reads the task's
    input by its whole name. Each split point is tried, the first that names a value wins."""
    name = channel_ref.removeprefix("pipelinechannel--")
    parts = name.split("--")
    for cut in range(1, len(parts)):
        task, key = "--".join(parts[:cut]), "--".join(parts[cut:])
        try:
            return io_store.get_task_output(task, key)
        except (ValueError, KeyError):
            continue
    return None


_SUBVAR = re.compile(r"pipelinechannel--(.+-item)-subvar-(.+)")


def _item_key(channel_ref: str, io_store: Any) -> Any:
    """The value of ``pipelinechannel--<loop>-item-subvar-<key>``: a task input that kfp's
    compiler (``ParallelFor`` over dicts, ``item.key`` in a ``dsl.If``) binds to the loop item
    with ``parameterExpressionSelector: parseJson(string_value)["<key>"]``, which kfp.local never
    applies to a condition (it looks for a parent input of that name). Read from the item."""
    match = _SUBVAR.fullmatch(channel_ref)
    if match is None:
        return None
    for name in (f"pipelinechannel--{match[1]}", match[1]):
        try:
            item = io_store.get_parent_input(name)
        except (ValueError, KeyError):
            continue
        if isinstance(item, str):
            try:
                item = json.loads(item)
            except ValueError:
                return None
        if isinstance(item, dict) and match[2] in item:
            return item[match[2]]
    return None


@contextmanager
def _unindented(num_spaces: int = 4) -> Iterator[None]:
    """kfp.local's ``indented_print``, leaving ``builtins.print`` alone (thread-safe)."""
    yield


@contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def run_local(
    spec_path: Path,
    params: Mapping[str, Any],
    work: Path,
    python_path: Sequence[Path],
    env: Mapping[str, str] | None = None,
    index: PipelineIndex | None = None,
) -> dict[str, Any]:
    """Execute the spec; return ``{"status", "steps", "outputs"}``.

    ``index`` (the compiled pipeline's) lets the record decode the JSON text a stock step's
    list/dict outputs travel as, as the runtime of the step that reads them does.
    """
    import kfp.local
    from kfp import components
    from kfp.local import logging_utils, subprocess_task_handler

    trace = work / "trace.jsonl"
    bin_dir = str(Path(sys.executable).parent)
    variables: dict[str, str | None] = {
        "PATH": os.pathsep.join([str(shim_dir()), bin_dir, os.environ.get("PATH", "")]),
        TRACE_ENV: str(trace),
        "PIPECAST_PYTHON_PATH": os.pathsep.join(str(p) for p in python_path),
        **(env or {}),
    }
    status, outputs = "succeeded", {}
    with ExitStack() as stack:
        stack.enter_context(
            _patched(
                subprocess_task_handler.SubprocessTaskHandler,
                "validate_not_container_component",
                lambda self, full_command: None,
            )
        )
        # kfp.local indents a task's log by replacing builtins.print for the task
        # (logging_utils.indented_print), from each ParallelFor thread at once: restored out of
        # order, the wrappers pile up for the rest of the process, every line printed through
        # all of them; after a few hundred runs in one process a run seemed to hang. The log
        # keeps its lines, unindented.
        stack.enter_context(_patched(logging_utils, "indented_print", _unindented))
        stack.enter_context(_trace_stock_tasks(trace, index))
        stack.enter_context(_trace_importers(trace))
        stack.enter_context(_trace_false_conditions(trace, index))
        stack.enter_context(_trace_held_conditions(trace))
        stack.enter_context(_cel_shims())
        stack.enter_context(environ(variables))
        stack.enter_context(_cwd(work))
        kfp.local.init(
            runner=kfp.local.SubprocessRunner(use_venv=False),
            pipeline_root=str(work / "local_outputs"),
            raise_on_error=True,
        )
        component = components.load_component_from_file(str(spec_path))
        logging.getLogger().setLevel(logging.WARNING)
        try:
            if index is not None:  # ints, lists and dicts travel as JSON text (SPEC §22)
                params = wire_params({k: p.type for k, p in index.pipeline.params.items()}, params)
            task = component(**params)
            # A collected output leaves out the items of skipped steps, as a reader's runtime does;
            # an output of a skipped step is absent (docs/semantics.md, "Skipped producers").
            plain = {k: _plain(v) for k, v in (task.outputs or {}).items()}
            outputs = {k: unmarked(v) for k, v in plain.items() if v != SKIPPED}
            if index is not None:  # values that travel as JSON text (ints, lists, dicts), decoded
                types = output_types(index)[""]
                outputs = {
                    k: decode(types[k], v)
                    if textual(types.get(k, "str")) or types.get(k) in ("float", "bool")
                    else v
                    for k, v in outputs.items()
                }
        except RuntimeError as exc:
            if "finished with status" not in str(exc):
                raise
            status = "failed"
    return {"status": status, "steps": _steps(trace), "outputs": outputs, "_held": _held(trace)}


@functools.cache
def bare_python() -> Path:
    """A venv of the base interpreter with nothing installed: pipecast is not importable."""
    root = Path(tempfile.mkdtemp(prefix="pipecast-bare-venv-"))
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import pipecast"], capture_output=True, check=False)
    assert probe.returncode != 0, "the bare venv can import pipecast"
    return python


@functools.cache
def shim_dir() -> Path:
    """A folder whose ``python`` runs ``-m pipecast.runtime`` with this interpreter (python
    steps) and anything else (stock container commands) with :func:`bare_python`."""
    folder = Path(tempfile.mkdtemp(prefix="pipecast-python-shim-"))
    shim = folder / "python"
    shim.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "-m" ] && [ "$2" = "pipecast.runtime" ]; then exec {sys.executable} "$@"; fi\n'
        f'exec {bare_python()} "$@"\n'
    )
    shim.chmod(0o755)
    return folder


def _trace_stock_tasks(trace: Path, index: PipelineIndex | None) -> Any:
    """Append a trace line for each task kfp.local runs that is not the pipecast runtime."""
    from kfp.local import executor_input_utils, status, task_dispatcher

    original = task_dispatcher.run_single_task_implementation

    def traced(*args: Any, **kwargs: Any) -> Any:
        bound = dict(
            zip(
                [
                    "pipeline_resource_name",
                    "component_name",
                    "component_spec",
                    "executor_spec",
                    "arguments",
                    "pipeline_root",
                ],
                args,
                strict=False,
            )
        )
        bound.update(kwargs)
        container = bound["executor_spec"].container
        if "pipecast.runtime" in [*container.command, *container.args]:
            return original(*args, **kwargs)
        task = executor_input_utils.get_local_task_resource_name(bound["component_name"])
        task_dir = executor_input_utils.construct_local_task_root(
            pipeline_root=bound["pipeline_root"],
            pipeline_resource_name=bound["pipeline_resource_name"],
            task_resource_name=task,
        )
        # The KFP launcher creates the output folders before a container component runs
        # (prepareOutputFolders in backend/src/v2/component/launcher_v2.go); kfp.local's
        # subprocess runner, made for python components, does not.
        os.makedirs(task_dir, exist_ok=True)
        try:
            outputs, state = original(*args, **kwargs)
        except RuntimeError:
            outputs, state = {}, status.Status.FAILURE
            raise_after = True
        else:
            raise_after = False
        if state == status.Status.SUCCESS:
            outputs = {**_declared_artifacts(bound, task_dir), **(outputs or {})}
        step = task.replace("-", "_")  # step names have no '-' (SPEC §3)
        types = index.node(step).task.outputs if index is not None else {}
        line = {
            "step": step,
            "task_dir": task_dir,
            "status": "succeeded" if state == status.Status.SUCCESS else "failed",
            "outputs": {k: _value(types.get(k, "str"), _plain(v)) for k, v in (outputs or {}).items()},
        }
        with open(trace, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")
        if raise_after:
            raise
        return outputs, state

    return _patched(task_dispatcher, "run_single_task_implementation", traced)


@contextmanager
def _trace_false_conditions(trace: Path, index: PipelineIndex | None) -> Iterator[None]:
    """Append a ``skipped`` trace line for each step whose condition kfp.local finds false (it
    reports nothing for such a task, which a failed run's record would otherwise call
    ``not_run``), for the steps inside a skipped group, and for those of an if/else group's
    branch not taken (``<group>--then``/``--else``). The condition tasks are looked up in the
    DAG being run (its ``pipeline_resource_name`` holds the ``-iteration-<i>`` folders)."""
    import contextvars

    from kfp.local.orchestrator import enhanced_dag_orchestrator as orchestrator

    if index is None:  # no way to tell steps from the condition tasks pipecast invents
        yield
        return
    # Trace names are the compiled (flat) step names (``prep__clean``), whichever index.
    flat = flat_names(index.pipeline)
    by_task = {flat.get(name, name): node for name, node in index.nodes.items()}
    running: contextvars.ContextVar[tuple[str, Any]] = contextvars.ContextVar("pipecast_kfp_dag")
    run_dag = orchestrator.run_enhanced_dag
    evaluate = orchestrator.ConditionEvaluator.evaluate_condition

    def traced_run(*args: Any, **kwargs: Any) -> Any:
        bound = dict(zip(["pipeline_resource_name", "dag_component_spec"], args, strict=False))
        bound.update(kwargs)
        token = running.set((bound["pipeline_resource_name"], bound["dag_component_spec"]))
        try:
            return run_dag(*args, **kwargs)
        finally:
            running.reset(token)

    def traced_evaluate(condition: str, io_store: Any) -> bool:
        held: bool = evaluate(condition, io_store)
        current = running.get(None)
        if held or current is None:
            return held
        where, dag = current
        for name, task in dag.dag.tasks.items():
            if task.trigger_policy.condition != condition:
                continue
            node = by_task.get(name.replace("-", "_"))  # step names have no '-' (SPEC §3)
            if node is not None:
                skipped = [node.name, *_skipped_inside(node)]
            else:  # a branch of an if/else group (``<group>--then``/``--else``), or no step
                group, _, branch = name.rpartition("--")
                owner = by_task.get(group.replace("-", "_"))
                if owner is not None and owner.is_group and owner.group.is_loop:
                    continue  # a loop's empty-list guard (<loop>--then/--else): no item, no step
                scope = None if owner is None else {"then": owner.body, "else": owner.else_body}.get(branch)
                if scope is None:
                    continue
                skipped = [s for inner in scope.steps.values() for s in (inner.name, *_skipped_inside(inner))]
            steps = [flat.get(s, s) for s in skipped]
            with open(trace, "a", encoding="utf-8") as fh:
                for name_ in steps:
                    line = {"step": name_, "task_dir": where, "status": "skipped", "outputs": None}
                    fh.write(json.dumps(line) + "\n")
        return held

    with (
        _patched(orchestrator, "run_enhanced_dag", traced_run),
        _patched(orchestrator.ConditionEvaluator, "evaluate_condition", staticmethod(traced_evaluate)),
    ):
        yield


def _skipped_inside(node: Any) -> list[str]:
    """The steps a skipped group skips with it, as the simulator records them: every step of
    its branches, through inner ``when`` groups but not into a ``for_each`` (no item)."""
    if not node.is_group or node.group.is_loop:
        return []
    out: list[str] = []
    for scope in (node.body, node.else_body):
        for inner in scope.steps.values() if scope is not None else ():
            out += [inner.name, *_skipped_inside(inner)]
    return out


def _trace_importers(trace: Path) -> Any:
    """Append a trace line for each import step (SPEC §14) kfp.local runs with its importer
    handler (no command runs, so nothing else reports it); not for the importers pipecast adds
    for artifact parameters (``param--<name>``: no step)."""
    from kfp.local import executor_input_utils, importer_handler, status

    original = importer_handler.run_importer

    def traced(**kwargs: Any) -> Any:
        outputs, state = original(**kwargs)
        task = executor_input_utils.get_local_task_resource_name(kwargs["component_name"])
        if "--" not in task:
            task_dir = executor_input_utils.construct_local_task_root(
                pipeline_root=kwargs["pipeline_root"],
                pipeline_resource_name=kwargs["pipeline_resource_name"],
                task_resource_name=task,
            )
            ok = state == status.Status.SUCCESS
            line = {
                "step": task.replace("-", "_"),
                "task_dir": task_dir,
                "status": "succeeded" if ok else "failed",
                "outputs": {k: _plain(v) for k, v in (outputs or {}).items()} if ok else None,
                "imported": True,  # runs no code: no attempt (SPEC §14, as the simulator records)
            }
            with open(trace, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(line) + "\n")
        return outputs, state

    return _patched(importer_handler, "run_importer", traced)


def _trace_held_conditions(trace: Path) -> Any:
    """Append a trace line for each condition DAG kfp.local enters (its condition held), so
    the record shows a ``when`` group whose steps were all skipped as run
    (:func:`pipecast.verify.records.complete` reads ``_held``)."""
    from kfp.local.orchestrator import enhanced_dag_orchestrator as dags

    original = dags.execute_task

    def traced(**kwargs: Any) -> Any:
        spec = kwargs["task_spec"]
        if spec.trigger_policy.condition:
            name = kwargs["task_name"].removesuffix("--then").removesuffix("--else")
            line = {"held": name.replace("-", "_"), "task_dir": kwargs["pipeline_resource_name"]}
            with open(trace, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(line) + "\n")
        return original(**kwargs)

    return _patched(dags, "execute_task", traced)


def _held(trace: Path) -> list[str]:
    if not trace.exists():
        return []
    held = []
    for line in trace.read_text().splitlines():
        entry = json.loads(line)
        if "held" in entry:
            held.append(entry["held"] + "".join(f"[{i}]" for i in _ITER.findall(entry["task_dir"] or "")))
    return sorted(set(held))


def _declared_artifacts(bound: dict[str, Any], task_dir: str) -> dict[str, Any]:
    """Every declared output artifact of a container task, at its local path: the KFP launcher
    registers them from the executor input (uploadOutputArtifacts in launcher_v2.go), while
    kfp.local only reads the executor_output.json a python component writes."""
    from kfp.local import executor_input_utils, executor_output_utils

    executor_input = executor_input_utils.construct_executor_input(
        component_spec=bound["component_spec"],
        arguments=bound["arguments"],
        task_root=task_dir,
        block_input_artifact=False,
    )
    return {
        name: executor_output_utils.artifact_list_to_dsl_artifact(arts, is_artifact_list=False)
        for name, arts in executor_input.outputs.artifacts.items()
    }


def _value(type_name: str, value: Any) -> Any:
    """A stock task's output as its type: JSON text (ints, lists, dicts) decoded."""
    return decode(type_name, value) if textual(type_name) else coerce(type_name, value)


def _plain(value: Any) -> Any:
    uri = getattr(value, "uri", None)
    return uri if uri is not None else value


def _steps(trace: Path) -> dict[str, dict[str, Any]]:
    steps: dict[str, dict[str, Any]] = {}
    if not trace.exists():
        return steps
    for line in trace.read_text().splitlines():
        entry = json.loads(line)
        if "held" in entry:
            continue
        key = entry["step"] + "".join(f"[{i}]" for i in _ITER.findall(entry["task_dir"] or ""))
        if entry["status"] == "skipped":  # a false condition: never started (no attempt)
            steps.setdefault(key, {"status": "skipped"})
            continue
        record = steps.setdefault(key, {"attempts": 0})
        record["attempts"] += 0 if entry.get("imported") else 1
        record["status"] = entry["status"]
        if entry["outputs"] is not None:
            record["outputs"] = entry["outputs"]
    return steps


# ------------------------------------------------------------------------------ the engine


def spec_file(files: dict[str, str], work: Path) -> Path:
    """Write the PipelineSpec of a compiled output into ``work``; its path."""
    (rel,) = [r for r in files if r.endswith((".yaml", ".json")) and ".schedule" not in r]
    spec = work / Path(rel).name
    spec.write_text(files[rel], encoding="utf-8")
    return spec


def run_child(job: EngineJob, files: dict[str, str], target: str) -> dict[str, object]:
    """Run a compiled spec through ``kfp.local`` in a child process, bounded by ``job.timeout``."""
    from pipecast.conformance import secret_env

    spec = spec_file(files, job.workdir)
    work = job.workdir / "run"
    work.mkdir(parents=True, exist_ok=True)
    env = secret_env(job.secrets)
    if job.fail:
        env.update(fail_env(job.fail, job.workdir / "faults"))
    request = {
        "spec": str(spec),
        "params": job.params,
        "work": str(work),
        "python_path": [str(p) for p in job.python_path],
        "env": env,
        "pipeline": str(job.loaded.path),
    }
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pipecast.verify.kfp_local", json.dumps(request, default=str)],
            capture_output=True,
            text=True,
            timeout=job.timeout,
            env=os.environ.copy(),
        )
    except subprocess.TimeoutExpired:
        raise timed_out(target, job.timeout, "kfp.local") from None
    for line in proc.stdout.splitlines():
        # kfp.local's streamed task logs may leave a line unterminated before ours.
        _, marker, tail = line.partition("PIPECAST-RESULT ")
        if marker:
            result: dict[str, object] = json.loads(tail)
            return result
    raise stopped(target, proc.returncode, proc.stderr)


def stopped(target: str, code: int, stderr: str) -> UserError:
    """kfp.local ended without a run record (it raised on the compiled spec): the engine's
    failure with its reason (the last exception line it printed), not an internal error."""
    errors = [line for line in stderr.splitlines() if "Warning" not in line and "_warn_local" not in line]
    logging.getLogger(__name__).debug("kfp.local stderr:\n%s", "\n".join(errors[-60:]))
    raised = [line.strip() for line in errors if re.match(r"^\w+(\.\w+)*(Error|Exception): ", line)]
    reason = raised[-1] if raised else next((line.strip() for line in reversed(errors) if line.strip()), "")
    return UserError(
        Diagnostic(
            f"verify --target {target}: kfp.local stopped without a result (exit code {code})"
            + (f": {reason}" if reason else ""),
            hint="kfp.local could not run the compiled spec; the simulator's run is the reference "
            "(pipecast run); the message above is kfp.local's own",
            code="engine-failed",
            target=target,
        )
    )


class _Session(EngineSession):
    def __init__(self, engine: KfpEngine) -> None:
        self.engine = engine

    def run(self, job: EngineJob) -> EngineResult:
        from pipecast import registry

        target, title = self.engine.target, self.engine.service
        overrides: dict[str, object] = {}
        notes = [f"kfp.local ran every task on this host (subprocess runner); {title} itself was not run"]
        if job.secrets and "secret_store" in registry.get(target).settings_model.model_fields:
            overrides["secret_store"] = "env"
            notes.append("secrets were read from the environment (secret_store=env) for the run")
        files, _settings = compile_job(job, target, overrides)
        record = run_child(job, files, target)
        return EngineResult(record=dict(record), notes=notes, files=files)


class KfpEngine(Engine):
    """A KFP v2 PipelineSpec in kfp.local (subprocess runner): the engine of every KFP target
    (a backend returns ``KfpEngine(self.name, self.title, extra)`` from ``local_engine``, naming
    the extra of pipecast that installs kfp for it)."""

    modules = ("kfp",)

    def __init__(self, target: str, service: str, extra: str) -> None:
        self.target = target
        self.service = service
        self.extra = extra
        self.title = f"kfp.local with the subprocess runner (the {service} PipelineSpec, steps on this host)"

    @contextmanager
    def session(self, workdir: Path) -> Iterator[EngineSession]:
        yield _Session(self)


def main() -> None:
    """``python -m pipecast.verify.kfp_local JOB_JSON``: print the run record as JSON."""
    from pipecast.api import load_checked

    job = json.loads(sys.argv[1])
    index = load_checked(job["pipeline"]).lowered().index if job.get("pipeline") else None
    record = run_local(
        Path(job["spec"]),
        job["params"],
        Path(job["work"]),
        [Path(p) for p in job["python_path"]],
        job.get("env"),
        index,
    )
    print("PIPECAST-RESULT " + json.dumps(record, default=str), flush=True)


if __name__ == "__main__":
    main()
