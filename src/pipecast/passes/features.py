"""Which IR features a pipeline uses, and where (SPEC §13).

Backends declare what they support per :class:`~pipecast.backend.Feature`;
:func:`used_features` lists each use with the step and YAML path so that an unsupported
feature can be reported precisely.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from pipecast.backend import Feature
from pipecast.diagnostics import YamlPath
from pipecast.ir import condition as cond
from pipecast.ir import values
from pipecast.ir.models import ContainerRun, PythonRun
from pipecast.ir.refs import RefSyntaxError
from pipecast.passes.analysis import PipelineIndex, StepNode
from pipecast.passes.parse import is_structured_template, parse_condition, parse_template


@dataclass(frozen=True)
class FeatureUse:
    feature: Feature
    step: str | None  # None: the pipeline itself
    path: YamlPath


def used_features(index: PipelineIndex) -> Iterator[FeatureUse]:
    """Every use of every feature, in writing order."""
    yield from _pipeline_features(index)
    for node in [
        *index.walk(),
        *index.finals.values(),
        *([index.finally_node] if index.finally_node else []),
    ]:
        yield from _ordering_features(index, node)
        yield from _metric_ref_features(node)
        if node.is_group:
            yield from _group_features(index, node)
        else:
            yield from _task_features(index, node)


#: A cheap pre-check for a metric path (five parts) before parsing.
_METRIC_PATH = re.compile(r"steps\.[\w.]+\.outputs\.\w+\.\w")


def _metric_ref_features(node: StepNode) -> Iterator[FeatureUse]:
    """``steps.S.outputs.O.NAME`` (one metric, SPEC §15) in a condition or an input."""
    step = node.step
    if step.when is not None and _METRIC_PATH.search(step.when):
        try:
            refs = list(cond.paths(parse_condition(step.when)))
        except (cond.ConditionSyntaxError, RefSyntaxError):
            refs = []
        if any(r.metric is not None for r in refs):
            yield FeatureUse(Feature.METRIC_REFS, node.name, (*node.yaml_path, "when"))
    if node.is_task:
        for name, value in node.task.inputs.items():
            if not (isinstance(value, str) and _METRIC_PATH.search(value)):
                continue
            try:
                parts = parse_template(value)
            except RefSyntaxError:
                continue
            if any(not isinstance(p, str) and p.metric is not None for p in parts):
                yield FeatureUse(Feature.METRIC_REFS, node.name, (*node.yaml_path, "inputs", name))


def _pipeline_features(index: PipelineIndex) -> Iterator[FeatureUse]:
    p = index.pipeline
    if p.params:
        yield FeatureUse(Feature.PARAMS, None, ("params",))
    for name, param in p.params.items():
        if values.is_artifact(param.type):
            yield FeatureUse(Feature.ARTIFACT_PARAMS, None, ("params", name, "type"))
    if p.schedule is not None:
        yield FeatureUse(Feature.SCHEDULE, None, ("schedule",))
        if p.schedule.timezone != "UTC":
            yield FeatureUse(Feature.SCHEDULE_TIMEZONE, None, ("schedule", "timezone"))
    if p.outputs:
        yield FeatureUse(Feature.PIPELINE_OUTPUTS, None, ("outputs",))
    if index.finally_node is not None:
        yield FeatureUse(Feature.FINALLY, FINALLY_NAME, ("finally",))


def _ordering_features(index: PipelineIndex, node: StepNode) -> Iterator[FeatureUse]:
    """``after`` and ``when`` (any step or group)."""
    path, step = node.yaml_path, node.step
    if step.after:
        yield FeatureUse(Feature.AFTER, node.name, (*path, "after"))
        if any(_waits_on_outputless_group(index, node, target) for target in step.after):
            yield FeatureUse(Feature.AFTER_GROUP, node.name, (*path, "after"))
    if step.when is not None:
        yield FeatureUse(Feature.WHEN, node.name, (*path, "when"))


def _group_features(index: PipelineIndex, node: StepNode) -> Iterator[FeatureUse]:
    path, group = node.yaml_path, node.group
    if group.subpipeline is not None:
        yield FeatureUse(Feature.SUBPIPELINES, node.name, path)
    if group.is_loop:
        yield FeatureUse(Feature.FOR_EACH, node.name, (*path, "for_each"))
        if is_structured_template(group.for_each):
            yield FeatureUse(Feature.STRUCTURED_VALUES, node.name, (*path, "for_each"))
        if group.parallelism is not None:
            yield FeatureUse(Feature.PARALLELISM, node.name, (*path, "parallelism"))
        if any(g.group.is_loop for g in index.ancestors(node)):
            yield FeatureUse(Feature.NESTED_FOR_EACH, node.name, path)
    if group.else_ is not None:
        yield FeatureUse(Feature.ELSE, node.name, (*path, "else"))
    if node.finally_node is not None:
        yield FeatureUse(Feature.GROUP_FINALLY, node.name, (*path, "finally"))
    if group.outputs:
        yield FeatureUse(Feature.GROUP_OUTPUTS, node.name, (*path, "outputs"))
        if group.is_condition:
            yield FeatureUse(Feature.WHEN_OUTPUTS, node.name, (*path, "outputs"))


def _task_features(index: PipelineIndex, node: StepNode) -> Iterator[FeatureUse]:
    """What a task runs and produces, then its effective settings."""
    path, task = node.yaml_path, node.task
    if task.component is not None:
        yield FeatureUse(Feature.COMPONENTS, node.name, path)
    if task.import_ is not None:
        yield FeatureUse(Feature.IMPORT, node.name, (*path, "import"))
        return
    for name, value in task.inputs.items():
        if is_structured_template(value):
            yield FeatureUse(Feature.STRUCTURED_VALUES, node.name, (*path, "inputs", name))
    if isinstance(task.run, PythonRun):
        yield FeatureUse(Feature.PYTHON_STEP, node.name, (*path, "run"))
    elif isinstance(task.run, ContainerRun):
        yield FeatureUse(Feature.CONTAINER_STEP, node.name, (*path, "run"))
        yield FeatureUse(Feature.STOCK_IMAGES, node.name, (*path, "run", "image"))
    if any(values.is_artifact(t) for t in task.outputs.values()):
        yield FeatureUse(Feature.ARTIFACTS, node.name, (*path, "outputs"))
    if any(not values.is_artifact(t) for t in task.outputs.values()):
        yield FeatureUse(Feature.PARAM_OUTPUTS, node.name, (*path, "outputs"))
    yield from _settings_features(index, node)


def _settings_features(index: PipelineIndex, node: StepNode) -> Iterator[FeatureUse]:
    """Retry, timeout, resources, env, secrets and cache after defaults (each use points at
    the step's own setting, or at ``defaults`` when it comes from there)."""
    path, task = node.yaml_path, node.task
    eff = index.effective(node)
    retry = eff.retry
    retry_path = (*path, "retry") if task.retry is not None else ("defaults", "retry")
    if retry.attempts > 1:
        yield FeatureUse(Feature.RETRY, node.name, retry_path)
        if retry.backoff not in (1.0, 2.0):
            yield FeatureUse(Feature.RETRY_BACKOFF, node.name, retry_path)
        if retry.jitter:
            yield FeatureUse(Feature.RETRY_JITTER, node.name, retry_path)
    if eff.timeout is not None:
        yield FeatureUse(Feature.TIMEOUT, node.name, _own_or_default(task, "timeout", path))
    res = eff.resources
    if res.cpu is not None or res.memory is not None:
        yield FeatureUse(Feature.RESOURCES, node.name, _own_or_default(task, "resources", path))
    if res.gpu or res.accelerator:
        yield FeatureUse(Feature.ACCELERATORS, node.name, _own_or_default(task, "resources", path))
    if eff.env:
        yield FeatureUse(Feature.ENV, node.name, _own_or_default(task, "env", path))
    if eff.secrets:
        yield FeatureUse(Feature.SECRETS, node.name, (*path, "secrets"))
    if eff.cache:
        yield FeatureUse(Feature.CACHE, node.name, _own_or_default(task, "cache", path))


FINALLY_NAME = "finally"


def _waits_on_outputless_group(index: PipelineIndex, node: StepNode, target: str) -> bool:
    """Whether an ``after`` entry makes a step wait on a group that exposes no output.

    Targets that order jobs only through data (Azure ML) have nothing to bind such a wait
    to: a ``when`` group never has a single output to wait on (its outputs come from
    whichever branch ran), a ``for_each`` group only when it declares outputs.
    """
    lifted = index.lift_after(node, target)
    if lifted is None:
        return False
    producer = index.nodes[lifted[2]]
    if not producer.is_group:
        return False
    group = producer.group
    return group.is_condition or not group.outputs


def _own_or_default(task: object, field: str, path: YamlPath) -> YamlPath:
    own = field in getattr(task, "model_fields_set", set())
    return (*path, field) if own else ("defaults", field)
