"""The Azure ML "local engine" of ``pipecast verify``: Azure ML has no local executor, so the
command does what can be done on this host and says plainly that the scheduler was not run:

1. the target's own checker (``load_job`` + ``_validate()`` through ``validate_output``);
2. the graph-equivalence check (:func:`check_graph`): every job, binding, condition and loop
   maps one to one onto the IR;
3. each task job of the pipeline's top level runs its generated command line in a local shell,
   in dependency order, with ``${{inputs.X}}``/``${{outputs.Y}}`` replaced the way Azure ML
   does (parameter values as text, upstream outputs as their mounted folders), and its
   outputs are compared with the simulator's. Jobs inside ``parallel_for``/``if_else`` nodes,
   and steps that read secrets (Key Vault), are not executed; the comparison names them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from pipecast import stock
from pipecast.passes.analysis import PipelineIndex, Scope, is_artifact_type
from pipecast.runtime.faults import fail_env
from pipecast.verify.engine import Engine, EngineJob, EngineResult, EngineSession, compile_job, timed_out
from pipecast_azureml.compiler import is_empty_loop, runtime_items, uses_component_file

_JOBS = re.compile(r"\$\{\{parent\.jobs\.([A-Za-z0-9_]+)")


def docs(files: dict[str, str]) -> dict[str, Any]:
    """The compiled files, loaded; a command job using a command component file (SPEC §16)
    gets the file's content as its ``component`` (what Azure ML's ``load_job`` does) and the
    file's path as ``component_file``."""
    import posixpath

    loaded = {rel: yaml.safe_load(text) for rel, text in files.items()}
    for rel, doc in loaded.items():
        for job in ((doc or {}).get("jobs") or {}).values() if isinstance(doc, dict) else ():
            ref = job.get("component") if isinstance(job, dict) else None
            if job.get("type") == "command" and isinstance(ref, str):
                target = posixpath.normpath(posixpath.join(posixpath.dirname(rel), ref))
                job["component"] = loaded[target]
                job["component_file"] = target
    return loaded


def owner(job: str, siblings: set[str]) -> str:
    """The IR sibling a compiled job belongs to (``g__cond`` → ``g``)."""
    if job in siblings:
        return job
    base = job.rsplit("__", 1)[0]
    assert base in siblings, f"job {job!r} belongs to no step of this scope ({sorted(siblings)})"
    return base


def scope_file(index: PipelineIndex, scope: Scope, job_file: str) -> str:
    if scope.owner is None:
        return job_file
    return f"components/{scope.owner}{'__else' if scope.branch == 'else' else ''}.yml"


def compiled_edges(jobs: dict[str, Any], siblings: set[str]) -> dict[str, set[str]]:
    """Sibling → siblings it binds to (data or control), read from the compiled jobs."""
    edges: dict[str, set[str]] = {s: set() for s in siblings}
    for name, job in jobs.items():
        if name == "finally":
            continue
        user = owner(name, siblings)
        text = yaml.safe_dump({k: v for k, v in job.items() if k != "component"})
        if job.get("type") == "command":
            text += yaml.safe_dump(job["component"].get("inputs") or {})
        for target in _JOBS.findall(text):
            producer = owner(target, siblings)
            if producer != user:
                edges[user].add(producer)
    return edges


def _check_task_job(jobs: dict[str, Any], name: str, node: Any) -> None:
    """A task's command job: its spec (or stock image and slots), outputs and condition."""
    job = jobs[name]
    assert job["type"] == "command"
    command = job["component"]["command"]
    component = node.task.component if uses_component_file(node.task) else None
    # SPEC §16: every use of a component file names a command component file of that
    # component, and passes its step name (the spec names the component).
    assert ("component_file" in job) == (component is not None), name
    if component is not None:
        assert job["component_file"].startswith(f"components/{component.name}")
        assert job["component"]["name"] == component.name
    if "pipecast.runtime run" in command:
        spec = json.loads(_spec_arg(command))
        if component is not None:
            assert spec["step"] == component.name and job["inputs"]["pipecast_step"] == name
        else:
            assert spec["step"] == name
        assert spec["run"] == node.task.run.to_data()
    else:  # a stock container step (SPEC §21): its image, and Azure ML fills every slot
        assert job["component"]["environment"] == {"image": node.task.run.image}
        for slot in stock.slots(node.task.run):
            expr = f"${{{{{slot.kind}.{slot.name}}}}}"
            assert expr in command or slot.name not in job["component"].get(slot.kind, {})
    outs = set(job["component"].get("outputs") or {}) - {"pipecast_done"}
    # SPEC §15: a metric read elsewhere is a number output <Metrics output>__<metric>
    metric_outs = {o for o in outs if node.task.outputs.get(o.split("__", 1)[0]) == "Metrics" and "__" in o}
    assert outs - metric_outs == set(node.task.outputs)
    if node.task.when is not None and f"{name}__if" not in jobs:
        _check_gated(jobs, name, node.task.when, [(name, "result")])
    elif node.task.when is not None:
        _check_condition(jobs, name, name, node.task.when)


def _check_loop_job(jobs: dict[str, Any], files: dict[str, Any], name: str, node: Any) -> None:
    """A for_each's parallel_for job: its body, concurrency, outputs and items."""
    from pipecast.passes.resolve import RefNode

    loop = jobs[name]
    assert loop["type"] == "parallel_for"
    assert loop["body"] == f"${{{{parent.jobs.{name}__body}}}}"
    assert jobs[f"{name}__body"]["component"].endswith(f"{name}.yml")
    assert loop.get("max_concurrency") == node.group.parallelism
    body = files[f"components/{name}.yml"]
    # completion outputs (pipecast_done__<job>) are what `after` binds to
    outs = {o for o in body.get("outputs") or {} if not o.startswith("pipecast_done__")}
    assert outs == set(node.group.outputs)
    var = f"item__{node.group.as_}"
    if not runtime_items(node):
        items = json.loads(loop["items"])
        # Every item travels as one line of JSON without '$' (see item_text).
        assert [json.loads(i[var]) for i in items] == node.group.for_each
        assert "$" not in loop["items"] and "\n" not in loop["items"]
    else:
        assert loop["items"] == f"${{{{parent.jobs.{name}__items.outputs.items}}}}"
        items = node.resolved.for_each
        ref = items.ref if isinstance(items, RefNode) else None
        items_job = jobs[f"{name}__items"]
        if ref is None:  # a list literal holding references: built at run time
            assert " --template " in items_job["component"]["command"]
        else:
            bound = items_job["inputs"]["values"]
            assert (ref.name in bound) and (ref.kind != "step" or ref.key in bound)
        # An empty list at run time: one sentinel item, every body job gated off.
        gate = jobs[f"{name}__body"]["inputs"]["pipecast_gate"]
        assert gate == f"${{{{parent.jobs.{name}__items.outputs.nonempty}}}}"
        _check_gate_inside(files, f"components/{name}.yml")


def check_graph(loaded: Any, compiled: dict[str, str]) -> None:
    """Assert that jobs, bindings, conditions and loops map one to one onto the pipeline's IR.

    Azure ML has no local executor: this equivalence check is what stands in for running
    the job (the conformance suite's stage (c) for this target).
    """

    loaded = loaded.lowered()  # compile_pipeline compiles the lowered IR
    index = loaded.index
    files = docs(compiled)
    job_file = f"{loaded.pipeline.name}.yml"
    for scope in index.scopes():
        owner_node = index.nodes[scope.owner] if scope.owner is not None else None
        if owner_node is not None and any(
            is_empty_loop(g) for g in [owner_node, *index.ancestors(owner_node)]
        ):
            continue  # the body of a `for_each: []` is not compiled (one command job instead)
        doc = files[scope_file(index, scope, job_file)]
        jobs = doc["jobs"]
        imports = _imports(scope, files[job_file])
        siblings = set(scope.steps) - imports
        # Every job belongs to one step of this scope, and every step has its jobs.
        owners = {name for name in jobs if name != "finally"}
        assert {n.rsplit("__", 1)[0] if n not in siblings else n for n in owners} == siblings
        for name, node in scope.steps.items():
            if name in imports:
                continue
            if node.is_task:
                _check_task_job(jobs, name, node)
            elif is_empty_loop(node):
                # No parallel_for (it rejects empty items): one job giving the empty outputs.
                job = jobs[name]
                assert job["type"] == "command" and " empty --outputs " in job["component"]["command"]
                outs = set(job["component"].get("outputs") or {}) - {"pipecast_done"}
                assert outs == set(node.group.outputs)
                assert f"components/{name}.yml" not in files
            elif node.group.is_loop:
                _check_loop_job(jobs, files, name, node)
            elif f"{name}__if" not in jobs:
                # Gated: both branches start with the condition as their gate; a select job
                # publishes the outputs of the branch that ran (docs/targets/azureml.md).
                branches = [(name, "result")]
                if node.group.else_ is not None:
                    branches.append((f"{name}__else", "otherwise"))
                _check_gated(jobs, name, node.group.when or "", branches)
                select = jobs[f"{name}__select"]
                outs = set(node.group.outputs) | set(node.group.else_.outputs if node.group.else_ else {})
                assert set(select["component"].get("outputs") or {}) - {"pipecast_done"} == outs
                for out in node.group.outputs:
                    assert select["inputs"][f"then__{out}"] == f"${{{{parent.jobs.{name}.outputs.{out}}}}}"
                for branch_job, _ in branches:
                    _check_gate_inside(files, jobs[branch_job]["component"].removeprefix("./"))
            else:
                _check_condition(jobs, name, name, node.group.when)
                if_job = jobs[f"{name}__if"]
                assert if_job["true_block"] == f"${{{{parent.jobs.{name}}}}}"
                assert ("false_block" in if_job) == (node.group.else_ is not None)
        # Dependencies: exactly the IR's (data and `after`), no more, no less.
        expected = {k: set(v) - imports for k, v in index.deps(scope).items() if k not in imports}
        got = compiled_edges(jobs, siblings)
        wrong = sorted(k for k in expected if got.get(k) != expected[k])
        assert not wrong, "; ".join(
            f"job {k!r} depends on {sorted(got.get(k, set()))}, the pipeline on {sorted(expected[k])}"
            for k in wrong
        )
    root = files[job_file]
    assert ("on_finalize" in root["settings"]) == (index.finally_node is not None)
    imported = {f"{n.name}__artifact" for n in index.tasks() if n.task.is_import}
    assert set(root.get("inputs") or {}) - imported == set(loaded.pipeline.params)


def _imports(scope: Scope, job: dict[str, Any]) -> set[str]:
    """The import steps of ``scope`` (SPEC §14): each is a pipeline input ``<step>__artifact``
    with its URI as path (or the artifact parameter it imports), not a job."""
    imports = {n for n, node in scope.steps.items() if node.is_task and node.task.is_import}
    for name in sorted(imports):
        uri = scope.steps[name].task.import_.uri  # type: ignore[union-attr]
        declared = (job.get("inputs") or {}).get(f"{name}__artifact")
        assert declared is None or declared["path"] == uri, name
    return imports


def _spec_arg(command: str) -> str:
    import shlex

    words = shlex.split(command)
    return words[words.index("--spec") + 1]


def _check_gated(jobs: dict[str, Any], owner_name: str, when: str, gated: list[tuple[str, str]]) -> None:
    """A gated when: the condition job's outputs are the gates of the jobs it guards."""
    cond = jobs[f"{owner_name}__cond"]
    spec = json.loads(_spec_arg(cond["component"]["command"]))
    assert spec["inputs"]["when"]["value"] == when
    for job, output in gated:
        assert cond["component"]["outputs"][output] == {"type": "boolean", "is_control": True}
        assert (
            jobs[job]["inputs"]["pipecast_gate"]
            == f"${{{{parent.jobs.{owner_name}__cond.outputs.{output}}}}}"
        )


def _check_gate_inside(files: dict[str, Any], rel: str) -> None:
    """Every job of a gated branch takes the branch's gate (nested components pass it on)."""
    doc = files["components/" + rel.removeprefix("components/")]
    assert doc["inputs"]["pipecast_gate"] == {"type": "boolean"}
    for name, job in doc["jobs"].items():
        gate = (job.get("inputs") or {}).get("pipecast_gate")
        if job["type"] == "command" and not name.endswith("__select"):
            assert gate is not None, f"{rel}: job {name!r} has no gate"
        if gate == "${{parent.inputs.pipecast_gate}}" and job["type"] == "pipeline":
            _check_gate_inside(files, job["component"].removeprefix("./"))


def _check_condition(jobs, owner_name, then_block, when):
    cond = jobs[f"{owner_name}__cond"]
    spec = json.loads(_spec_arg(cond["component"]["command"]))
    assert spec["inputs"]["when"]["value"] == when
    assert cond["component"]["outputs"]["result"] == {"type": "boolean", "is_control": True}
    if_job = jobs[f"{owner_name}__if"]
    assert if_job["condition"] == f"${{{{parent.jobs.{owner_name}__cond.outputs.result}}}}"
    assert if_job["true_block"] == f"${{{{parent.jobs.{then_block}}}}}"


# ------------------------------------------------------------------------------ execution

_PLACEHOLDER = re.compile(r"\$\{\{(inputs|outputs)\.([A-Za-z0-9_]+)\}\}")
_PARENT_INPUT = re.compile(r"^\$\{\{parent\.inputs\.([A-Za-z0-9_]+)\}\}$")
_PARENT_JOB = re.compile(r"^\$\{\{parent\.jobs\.([A-Za-z0-9_]+)\.outputs\.([A-Za-z0-9_]+)\}\}$")


def _text(value: Any, type_name: str = "any") -> str:
    """A primitive value as Azure ML passes it: a ``str`` raw, anything else as JSON."""
    return value if isinstance(value, str) and type_name in ("str", "any") else json.dumps(value)


class _Skip(Exception):
    """This job cannot run here (an input no local job produced)."""


def run_top_level(job: EngineJob, files: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """Run the top-level task jobs' command lines; a run record of them and the keys run."""
    loaded = job.loaded.lowered()
    index = loaded.index
    root_doc = docs(files)[f"{loaded.pipeline.name}.yml"]
    jobs = root_doc["jobs"]
    params = {**{k: p.default for k, p in loaded.pipeline.params.items() if p.has_default}, **job.params}
    env = {**os.environ, "PIPECAST_PYTHON_PATH": os.pathsep.join(str(p) for p in job.python_path)}
    env.pop("MLFLOW_TRACKING_URI", None)  # no run history here: outputs are files only
    # Each run has its own id, as on Azure ML (pipeline.run_id: the root run's id).
    env["AZUREML_ROOT_RUN_ID"] = f"local-{uuid.uuid4().hex}"
    if job.fail:
        env.update(fail_env(job.fail, job.workdir / "faults"))
    mounts = job.workdir / "mounts"
    steps: dict[str, dict[str, Any]] = {}
    produced: dict[tuple[str, str], str] = {}  # (job, output) -> mounted path
    ran: list[str] = []
    failed = False
    order = [n for n in index.toposort(index.root) if index.root.steps[n].is_task]
    if index.finally_node is not None and "finally" in jobs:
        order.append("finally")
    for name in order:
        node = index.finally_node if name == "finally" else index.root.steps[name]
        assert node is not None
        spec = jobs.get(name)
        if spec is None or spec.get("type") != "command" or node.task.when is not None:
            continue  # a conditional task runs inside an if_else node
        if index.effective(node).secrets:
            continue  # Key Vault is not reachable from here
        if failed and name != "finally":
            continue
        try:
            values = _values(name, spec, params, produced, mounts, loaded.pipeline.params)
        except _Skip:
            continue
        command = _PLACEHOLDER.sub(
            lambda m, v=values: v[f"{m.group(1)}.{m.group(2)}"],  # type: ignore[misc]
            spec["component"]["command"],
        )
        command = command.replace(
            "python -m pipecast.runtime", f"{shlex.quote(sys.executable)} -m pipecast.runtime"
        )
        # What Azure ML sets in the job's container (a component use's env travels only so).
        run_env = {**env, **(spec.get("environment_variables") or {})}
        if name == "finally":
            run_env["PIPECAST_PIPELINE_STATUS"] = "failed" if failed else "succeeded"
        try:
            done = subprocess.run(
                ["bash", "-c", command],
                cwd=job.python_path[0] if job.python_path else None,
                env=run_env,
                capture_output=True,
                text=True,
                timeout=job.timeout,
            )
        except subprocess.TimeoutExpired:
            raise timed_out("azureml", job.timeout, f"the command line of job {name!r}") from None
        ran.append(name)
        if done.returncode != 0:
            steps[name] = {"status": "failed", "_stderr": done.stderr[-2000:]}
            failed = failed or name != "finally"
            continue
        outputs: dict[str, Any] = {}
        for out, type_name in node.task.outputs.items():
            path = Path(values[f"outputs.{out}"])
            produced[(name, out)] = str(path)
            if is_artifact_type(type_name):
                outputs[out] = str(path)
            else:
                file = path
                if path.is_dir():
                    # A stock step's folder holds the value's file beside the artifact marker;
                    # the runtime writes a folder's value as "output".
                    from pipecast.runtime.conventions.base import locate_in_folder

                    located = locate_in_folder(path)
                    file = located if located != path else path / "output"
                text = file.read_text(encoding="utf-8")
                outputs[out] = text if type_name == "str" else json.loads(text)
        steps[name] = {"status": "succeeded", "outputs": outputs}
    return {"status": "failed" if failed else "succeeded", "steps": steps, "outputs": {}}, ran


def _values(
    name: str,
    spec: dict[str, Any],
    params: dict[str, Any],
    produced: dict[tuple[str, str], str],
    mounts: Path,
    declared: Any,
) -> dict[str, str]:
    values: dict[str, str] = {}
    component = spec["component"]
    for kind, key in _PLACEHOLDER.findall(component["command"]):
        if kind == "outputs":
            out_type = ((component.get("outputs") or {}).get(key) or {}).get("type", "")
            path = mounts / name / key
            if out_type.startswith("uri_folder") or out_type in (
                "mltable",
                "uri_file",
                "custom_model",
                "mlflow_model",
            ):
                path.mkdir(parents=True, exist_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
            values[f"outputs.{key}"] = str(path)
            continue
        binding = (spec.get("inputs") or {}).get(key)
        if isinstance(binding, dict):
            binding = binding.get("path", binding.get("value"))
        if binding is None:
            binding = ((component.get("inputs") or {}).get(key) or {}).get("default")
        if isinstance(binding, str) and (m := _PARENT_INPUT.match(binding)):
            param = m.group(1)
            if param not in params:
                raise _Skip
            values[f"inputs.{key}"] = _text(
                params[param], declared[param].type if param in declared else "any"
            )
        elif isinstance(binding, str) and (m := _PARENT_JOB.match(binding)):
            path = produced.get((m.group(1), m.group(2)))
            if path is None:
                raise _Skip
            if Path(path).is_dir():
                values[f"inputs.{key}"] = path
            else:
                values[f"inputs.{key}"] = Path(path).read_text(encoding="utf-8")
        elif binding is None:
            raise _Skip
        else:
            values[f"inputs.{key}"] = _text(binding)
    return values


def fetch_mounted(uri: str, scratch: Path) -> Path | None:
    """An artifact output folder as Azure ML mounts it: the stored file, or the folder."""
    from pipecast.runtime.conventions.base import locate_in_folder

    path = Path(uri)
    return locate_in_folder(path) if path.is_dir() else (path if path.exists() else None)


class _Session(EngineSession):
    def run(self, job: EngineJob) -> EngineResult:
        from pipecast import registry

        files, _settings = compile_job(job, "azureml", {})
        problems = [
            d.render() for d in registry.get("azureml").validate_output(files) if d.severity == "error"
        ]
        if problems:
            return EngineResult(
                record={"status": None, "steps": {}, "outputs": {}},
                notes=["Azure ML's load_job/_validate() rejected the output"],
                files=files,
                compared=[],
                problems=problems,
            )
        notes = ["Azure ML's scheduler was not run: it has no local executor"]
        try:
            check_graph(job.loaded, files)
            notes.append(
                "load_job + _validate() accept the output; the job graph maps one to one onto the pipeline"
            )
        except (AssertionError, KeyError) as exc:
            return EngineResult(
                record={"status": None, "steps": {}, "outputs": {}},
                notes=notes,
                files=files,
                compared=[],
                problems=[f"the job graph differs from the pipeline: {_first_line(exc)}"],
            )
        record, ran = run_top_level(job, files)
        skipped = sorted(set(job.loaded.lowered().index.root.steps) - set(ran))
        notes.append(
            f"ran the command lines of {len(ran)} top-level job(s) locally"
            + (
                f"; not run here (inside if_else/parallel_for, secrets, or after a failure): {', '.join(skipped)}"
                if skipped
                else ""
            )
        )
        return EngineResult(record=record, notes=notes, files=files, fetch=fetch_mounted, compared=ran)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class AzureMLEngine(Engine):
    """Azure ML: the SDK's checks, the graph check, and the jobs' command lines run locally."""

    target = "azureml"
    title = "Azure ML checks (load_job + _validate(), graph equivalence) and job command lines run locally"
    extra = "verify-azureml"
    modules = ("azure.ai.ml",)

    @contextmanager
    def session(self, workdir: Path) -> Iterator[EngineSession]:
        yield _Session()
