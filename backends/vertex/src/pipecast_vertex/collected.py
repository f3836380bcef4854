"""A collected artifact list read inside a condition: the shape kfp itself emits (issue 20).

A ``for_each`` group output of artifacts is a list (``isArtifactList``) that the loop task
outputs. Bound straight into a condition task (a DAG task with ``triggerPolicy.condition``)
through ``taskOutputArtifact``, it would make a shape kfp 2.17 never writes: its compiler
declares every ``dsl.Collected`` entering a condition group as a *parameter*
(``build_component_spec_for_group`` in ``kfp/compiler/pipeline_spec_builder.py``), so
``dsl.If`` over ``dsl.Collected(<artifact>)`` fails to compile there, and whether Vertex
resolves such an input cannot be checked offline.

kfp does write the same data flow for a nested pipeline that takes ``Input[List[Dataset]]``
and holds the ``dsl.If``: the parent binds the collected list into a plain DAG task
(``taskOutputArtifact`` of the loop task, ``isArtifactList`` input), and inside it the
condition task reads it as ``componentInputArtifact``. This pass rewrites each such condition
task into that shape: the task keeps its name, inputs and dependencies but no condition, and
runs a wrapper DAG (``comp-<...>--collected``) holding the condition task, which reads every
input from the wrapper. A step whose outputs something reads keeps the direct shape: the
wrapper always runs, so it could not hand on the outputs of a step whose condition was false.
See docs/targets/vertex.md.
"""

from __future__ import annotations

from kfp.pipeline_spec import pipeline_spec_pb2 as pb

SUFFIX = "--collected"


def _reads_collected_artifacts(task: pb.PipelineTaskSpec, comp: pb.ComponentSpec) -> bool:
    return any(
        binding.HasField("task_output_artifact") and comp.input_definitions.artifacts[name].is_artifact_list
        for name, binding in task.inputs.artifacts.items()
        if name in comp.input_definitions.artifacts
    )


def _wrappable(task: pb.PipelineTaskSpec, comp: pb.ComponentSpec) -> bool:
    """A plain condition DAG task whose inputs all are inputs of its component."""
    defs = comp.input_definitions
    return (
        comp.HasField("dag")
        and not task.HasField("parameter_iterator")
        and not task.HasField("artifact_iterator")
        and not task.trigger_policy.strategy
        and all(name in defs.parameters for name in task.inputs.parameters)
        and all(name in defs.artifacts for name in task.inputs.artifacts)
        and not any(b.HasField("task_final_status") for b in task.inputs.parameters.values())
    )


def _read_outputs(dag: pb.DagSpec, tname: str) -> set[str]:
    """The outputs of task ``tname`` that its DAG's other tasks or the DAG's outputs read
    (``""`` for a task that only waits for it)."""
    keys = set()
    for other in dag.tasks.values():
        if tname in other.dependent_tasks:
            keys.add("")
        for b in other.inputs.parameters.values():
            if b.HasField("task_output_parameter") and b.task_output_parameter.producer_task == tname:
                keys.add(b.task_output_parameter.output_parameter_key)
        for a in other.inputs.artifacts.values():
            if a.HasField("task_output_artifact") and a.task_output_artifact.producer_task == tname:
                keys.add(a.task_output_artifact.output_artifact_key)
    for sel in dag.outputs.parameters.values():
        if sel.value_from_parameter.producer_subtask == tname:
            keys.add(sel.value_from_parameter.output_parameter_key)
        keys.update(
            s.output_parameter_key
            for s in sel.value_from_oneof.parameter_selectors
            if s.producer_subtask == tname
        )
    for art in dag.outputs.artifacts.values():
        keys.update(s.output_artifact_key for s in art.artifact_selectors if s.producer_subtask == tname)
    return keys


def wrap_collected_conditions(spec: pb.PipelineSpec) -> None:
    """Rewrite every condition task that binds a collected artifact list from a sibling."""
    dags = [spec.root.dag, *(spec.components[c].dag for c in sorted(spec.components))]
    for dag in dags:
        for tname in sorted(dag.tasks):
            task = dag.tasks[tname]
            if not task.trigger_policy.condition:
                continue
            comp = spec.components[task.component_ref.name]
            if not (_reads_collected_artifacts(task, comp) and _wrappable(task, comp)):
                continue
            if _read_outputs(dag, tname):
                # A DAG output of a task whose condition was false has no value, and the
                # wrapper (which always runs) would hand it on: readers of such a step keep
                # the direct shape (docs/targets/vertex.md).
                continue
            wrapper = pb.ComponentSpec()
            for name in task.inputs.parameters:
                wrapper.input_definitions.parameters[name].CopyFrom(comp.input_definitions.parameters[name])
            for name in task.inputs.artifacts:
                wrapper.input_definitions.artifacts[name].CopyFrom(comp.input_definitions.artifacts[name])
            inner = wrapper.dag.tasks[tname]
            inner.CopyFrom(task)
            inner.ClearField("dependent_tasks")  # the wrapper task waits for them
            for name in task.inputs.parameters:
                inner.inputs.parameters[name].Clear()
                inner.inputs.parameters[name].component_input_parameter = name
            for name in task.inputs.artifacts:
                inner.inputs.artifacts[name].Clear()
                inner.inputs.artifacts[name].component_input_artifact = name
            name = task.component_ref.name + SUFFIX
            spec.components[name].CopyFrom(wrapper)
            task.component_ref.name = name
            task.ClearField("trigger_policy")
