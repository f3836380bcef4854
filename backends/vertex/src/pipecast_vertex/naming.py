"""Names in the compiled PipelineSpec: tasks, components, executors and channels.

pipecast step names (``^[a-z][a-z0-9_]*$``, unique across the pipeline) become KFP task
names by turning ``_`` into ``-`` (KFP's own sanitiser does the same); since step names
never contain ``-``, the mapping is one-to-one. Names that pipecast invents contain
``--``, which no step name can produce, so they never collide with a step.

Channels are the values a sub-DAG receives from outside (KFP calls them pipeline
channels). Their names follow the KFP compiler's ``pipelinechannel--`` prefix, and are
chosen so that ``kfp.local``'s condition evaluator, which parses these names to find the
value, resolves them: ``pipelinechannel--<param>`` (a parent input),
``pipelinechannel--<task>--<output>`` (a task output), ``pipelinechannel--<group>-item``
(a loop item; deliberately not ``-loop-item``, which kfp.local rewrites in nested loops).
"""

from __future__ import annotations

#: The hidden input that names the step a shared component runs for (SPEC §16).
from pipecast.runtime.conventions.kfp import STEP_INPUT as STEP_INPUT

CHANNEL = "pipelinechannel--"
#: The hidden input of the finally step that receives the pipeline's final status.
STATUS_INPUT = "pipecast--status"
#: The hidden input that receives the run id (``{{ pipeline.run_id }}``).
RUN_ID_INPUT = "pipecast--run-id"
#: The exit-handler body task (holds every step when the pipeline has ``finally``).
BODY_TASK = "pipeline--body"
FINALLY_TASK = "finally"


def task_name(step: str) -> str:
    """The KFP task name of a step or group; a group's finally (``<group>.finally``, SPEC §18)
    is ``<group>--finally``."""
    return step.replace("_", "-").replace(".", "--")


def component_name(task: str, suffix: str = "") -> str:
    return f"comp-{task}" + (f"--{suffix}" if suffix else "")


def executor_label(task: str) -> str:
    return f"exec-{task}"


def param_importer(param: str) -> str:
    """The task that imports an artifact parameter's URI (SPEC §14)."""
    return f"param--{task_name(param)}"


def param_channel(param: str) -> str:
    return f"{CHANNEL}{param}"


def output_channel(step: str, output: str) -> str:
    return f"{CHANNEL}{task_name(step)}--{output}"


def item_channel(group: str) -> str:
    return f"{CHANNEL}{task_name(group)}-item"


def items_channel(group: str) -> str:
    """The list a guarded ``for_each`` iterates, as its guard's condition reads it."""
    return f"{CHANNEL}{task_name(group)}-items"


def item_key_channel(group: str, key: str) -> str:
    """A loop item's dict key, selected at the condition task (kfp's ``-subvar-`` form)."""
    return f"{item_channel(group)}-subvar-{key}"
