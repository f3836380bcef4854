"""Names pipecast gives Azure ML jobs, inputs and files (stable: the same pipeline, the same names).

A step keeps its own name as its job name. Groups and control flow add jobs named
``<group>__<role>`` (two underscores), which the IR cannot hold as step names only when a
user writes the same ``__`` name: ``Compiler._check_names`` reports that in ``check``
(pipecast_azureml.compiler, through the dry compile).
"""

from __future__ import annotations

import re

SCHEMA_PIPELINE = "https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json"
SCHEMA_COMPONENT = "https://azuremlschemas.azureedge.net/latest/pipelineComponent.schema.json"
#: https://learn.microsoft.com/azure/machine-learning/reference-yaml-component-command
SCHEMA_COMMAND = "https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json"

COND, IF, ELSE, BODY, ITEMS, SELECT = "cond", "if", "else", "body", "items", "select"
#: The boolean input of a job in a gated ``when`` branch (the runtime's ``gate.`` value file).
GATE = "pipecast_gate"
#: A branch/body component's output carrying the completion of one of its last jobs.
DONE_PREFIX = "pipecast_done__"
#: The output every job that another job waits on (``after``) declares, and the input prefix.
DONE = "pipecast_done"
AFTER_PREFIX = "after__"
LOOP_PREFIX = "item__"
REF_PREFIX = "pipecast_ref"
#: The string input naming the step that uses a shared command component file (SPEC §16).
STEP = "pipecast_step"
#: The string input carrying a shared command component use's ``--templates`` (JSON).
TEMPLATES = "pipecast_templates"


def role(group: str, what: str) -> str:
    """The job that plays ``what`` for ``group`` (``train__cond``)."""
    return f"{group}__{what}"


def step_channel(step: str, output: str) -> str:
    """A component input carrying ``steps.<step>.outputs.<output>`` into a group's component."""
    return f"{step}__{output}"


def loop_channel(var: str) -> str:
    """A component input carrying loop variable ``var`` (the whole item)."""
    return LOOP_PREFIX + var


def component_name(pipeline: str, group: str, branch: str = "") -> str:
    """A pipeline component's name: lower-case letters, digits and ``_`` (Azure ML's rule)."""
    base = f"{pipeline}_{group}" + (f"_{branch}" if branch else "")
    return re.sub(r"[^a-z0-9_]", "_", base.lower())


def component_file(group: str, branch: str = "") -> str:
    """Where a group's (or branch's) pipeline component is written, relative to the job file."""
    return f"components/{group}{'__' + branch if branch else ''}.yml"


def command_component_file(component: str, variant: int) -> str:
    """Where a component file's (SPEC §16) command component is written, relative to the job
    file: ``components/<component>.component.yml``, ``-2``, ``-3``... for uses whose settings
    the job node cannot carry. Step names have no ``.`` or ``-``, so no group file
    (``components/<group>.yml``) is ever named so."""
    return f"components/{component}{f'-{variant}' if variant > 1 else ''}.component.yml"
