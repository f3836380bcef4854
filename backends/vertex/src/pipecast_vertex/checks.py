"""Reference checks of a compiled PipelineSpec, for what a protobuf parse cannot see.

``json_format.ParseDict(spec, PipelineSpec())`` checks field names and enums, but names
are plain strings to it: a ``componentRef`` to a missing component, a ``dependentTasks``
entry naming no task, an executor label with no executor, or an input bound to an output
that its producer does not declare all parse fine and fail only on Vertex. This module
checks every such name, on the JSON form of the spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Spec = dict[str, Any]


def check_references(spec: Spec) -> list[str]:
    """Every dangling or inconsistent name in the spec, as readable problems (empty: fine)."""
    problems: list[str] = []
    components: dict[str, Any] = spec.get("components", {})
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    used: set[str] = set()
    for name, comp in components.items():
        label = comp.get("executorLabel")
        if label is not None and label not in executors:
            problems.append(f"component {name!r}: executor {label!r} does not exist")
        if label is None and "dag" not in comp:
            problems.append(f"component {name!r} has neither an executor nor a DAG")
        if "dag" in comp:
            _check_dag(f"component {name!r}", comp, components, problems, used)
    _check_dag("root", spec.get("root", {}), components, problems, used)
    for name in sorted(set(components) - used):
        problems.append(f"component {name!r} is not used by any task")
    labels = {c.get("executorLabel") for c in components.values()}
    for label in sorted(set(executors) - labels):
        problems.append(f"executor {label!r} is not used by any component")
    return problems


def _io(comp: dict[str, Any], side: str, kind: str) -> dict[str, Any]:
    return comp.get(side, {}).get(kind, {})


@dataclass
class _Dag:
    """One DAG being checked: where it is (for messages), its component, its tasks."""

    where: str
    comp: dict[str, Any]
    components: dict[str, Any]
    problems: list[str]

    @property
    def tasks(self) -> dict[str, Any]:
        tasks: dict[str, Any] = self.comp.get("dag", {}).get("tasks", {})
        return tasks

    def reads(self, at: str, reader: str, name: str, producer: Any, key: Any, kind: str) -> None:
        _check_reads(at, reader, name, producer, key, kind, self.tasks, self.components, self.problems)


def _check_dag(
    where: str, comp: dict[str, Any], components: dict[str, Any], problems: list[str], used: set[str]
) -> None:
    dag = _Dag(where, comp, components, problems)
    for tname, task in dag.tasks.items():
        at = f"{where}, task {tname!r}"
        ref = task.get("componentRef", {}).get("name")
        target = components.get(ref or "")
        if target is None:
            problems.append(f"{at}: componentRef {ref!r} does not exist")
            continue
        used.add(ref or "")
        for dep in task.get("dependentTasks", []):
            if dep not in dag.tasks:
                problems.append(f"{at}: dependentTasks entry {dep!r} is not a task of this DAG")
            elif dep == tname:
                problems.append(f"{at}: depends on itself")
        _check_parameter_inputs(dag, at, task, ref, target)
        _check_artifact_inputs(dag, at, task, ref, target)
        _check_unbound(dag, at, task, ref, target)
    _check_outputs(dag)


def _check_parameter_inputs(
    dag: _Dag, at: str, task: dict[str, Any], ref: str, target: dict[str, Any]
) -> None:
    """Each input parameter binding: declared by the component, and its source exists."""
    own_params = _io(dag.comp, "inputDefinitions", "parameters")
    t_params = _io(target, "inputDefinitions", "parameters")
    for name, binding in task.get("inputs", {}).get("parameters", {}).items():
        if name not in t_params:
            dag.problems.append(f"{at}: input parameter {name!r} is not declared by {ref!r}")
        if "componentInputParameter" in binding:
            source = binding["componentInputParameter"]
            if source not in own_params:
                dag.problems.append(f"{at}: input {name!r} reads {source!r}, not an input of {dag.where}")
        elif "taskOutputParameter" in binding:
            out = binding["taskOutputParameter"]
            dag.reads(at, "input", name, out.get("producerTask"), out.get("outputParameterKey"), "parameters")
        elif "taskFinalStatus" in binding:
            if binding["taskFinalStatus"].get("producerTask") not in dag.tasks:
                dag.problems.append(f"{at}: taskFinalStatus of {name!r} names no task of this DAG")
        elif "runtimeValue" not in binding:
            dag.problems.append(f"{at}: input parameter {name!r} has no source")


def _check_artifact_inputs(
    dag: _Dag, at: str, task: dict[str, Any], ref: str, target: dict[str, Any]
) -> None:
    """Each input artifact binding: declared by the component, and its source exists."""
    own_artifacts = _io(dag.comp, "inputDefinitions", "artifacts")
    t_arts = _io(target, "inputDefinitions", "artifacts")
    for name, binding in task.get("inputs", {}).get("artifacts", {}).items():
        if name not in t_arts:
            dag.problems.append(f"{at}: input artifact {name!r} is not declared by {ref!r}")
        if "componentInputArtifact" in binding:
            source = binding["componentInputArtifact"]
            if source not in own_artifacts:
                dag.problems.append(
                    f"{at}: input {name!r} reads {source!r}, not an input artifact of {dag.where}"
                )
        elif "taskOutputArtifact" in binding:
            out = binding["taskOutputArtifact"]
            dag.reads(at, "input", name, out.get("producerTask"), out.get("outputArtifactKey"), "artifacts")
        else:
            dag.problems.append(f"{at}: input artifact {name!r} has no source")


def _check_unbound(dag: _Dag, at: str, task: dict[str, Any], ref: str, target: dict[str, Any]) -> None:
    """The iterator's inputs exist, and every required input of the component is bound."""
    params = task.get("inputs", {}).get("parameters", {})
    arts = task.get("inputs", {}).get("artifacts", {})
    t_params = _io(target, "inputDefinitions", "parameters")
    item = task.get("parameterIterator", {}).get("itemInput")
    if "parameterIterator" in task:
        items = task["parameterIterator"].get("items", {})
        if "inputParameter" in items and items["inputParameter"] not in params:
            dag.problems.append(
                f"{at}: iterator items {items['inputParameter']!r} is not an input of the task"
            )
        if item not in t_params:
            dag.problems.append(f"{at}: iterator itemInput {item!r} is not declared by {ref!r}")
    for name, definition in t_params.items():
        bound = name in params or name == item
        if not bound and not definition.get("isOptional") and "defaultValue" not in definition:
            dag.problems.append(f"{at}: required input parameter {name!r} of {ref!r} is not bound")
    for name in _io(target, "inputDefinitions", "artifacts"):
        if name not in arts:
            dag.problems.append(f"{at}: input artifact {name!r} of {ref!r} is not bound")


def _check_outputs(dag: _Dag) -> None:
    """DAG outputs: declared, selected from a task that produces them, and every one produced."""
    where, comp = dag.where, dag.comp
    outputs = comp.get("dag", {}).get("outputs", {})
    out_params = _io(comp, "outputDefinitions", "parameters")
    out_arts = _io(comp, "outputDefinitions", "artifacts")
    for name, spec in outputs.get("parameters", {}).items():
        if name not in out_params:
            dag.problems.append(f"{where}: DAG output {name!r} is not in outputDefinitions")
        selectors = (
            [spec["valueFromParameter"]]
            if "valueFromParameter" in spec
            else spec.get("valueFromOneof", {}).get("parameterSelectors", [])
        )
        if not selectors:
            dag.problems.append(f"{where}: DAG output {name!r} has no source")
        for sel in selectors:
            dag.reads(
                where, "output", name, sel.get("producerSubtask"), sel.get("outputParameterKey"), "parameters"
            )
    for name, spec in outputs.get("artifacts", {}).items():
        if name not in out_arts:
            dag.problems.append(f"{where}: DAG output artifact {name!r} is not in outputDefinitions")
        for sel in spec.get("artifactSelectors", []):
            dag.reads(
                where, "output", name, sel.get("producerSubtask"), sel.get("outputArtifactKey"), "artifacts"
            )
    if "dag" in comp:
        for name in out_params:
            if name not in outputs.get("parameters", {}):
                dag.problems.append(f"{where}: output {name!r} is declared but never produced")
        for name in out_arts:
            if name not in outputs.get("artifacts", {}):
                dag.problems.append(f"{where}: output artifact {name!r} is declared but never produced")


def _check_reads(
    where: str,
    reader: str,
    name: str,
    producer: Any,
    key: Any,
    kind: str,
    tasks: dict[str, Any],
    components: dict[str, Any],
    problems: list[str],
) -> None:
    """A binding that reads ``key`` from task ``producer``: the task exists and declares it.

    ``reader`` is ``"input"`` (a task input bound to a sibling's output) or ``"output"`` (a DAG
    output selected from one of its tasks).
    """
    if producer not in tasks:
        problems.append(f"{where}: {reader} {name!r} reads task {producer!r}, not a task of this DAG")
        return
    comp = components.get(tasks[producer].get("componentRef", {}).get("name", ""), {})
    if key not in _io(comp, "outputDefinitions", kind):
        problems.append(
            f"{where}: {reader} {name!r} reads output {key!r}, which task {producer!r} does not declare"
        )
