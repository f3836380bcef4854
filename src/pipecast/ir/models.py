"""Pydantic models of the pipecast pipeline format (docs/spec.md, version 1).

The models are small, frozen and reject unknown keys. They check what a single node
can check on its own (name patterns, value grammars, exclusive fields); everything
that needs the whole pipeline (references, scope, types along edges, cycles) is in
:mod:`pipecast.passes.validate`.

Durations are normalised to seconds (``float``) when loaded, so ``"1h30m"`` and
``5400`` give equal IRs.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from pipecast.ir import values

JsonValue = Any
ParamType = Literal["str", "int", "float", "bool", "list", "dict", "Dataset", "Model", "Metrics", "Artifact"]
ArtifactType = Literal["Dataset", "Model", "Metrics", "Artifact"]
OutputType = Literal["str", "int", "float", "bool", "list", "dict", "Dataset", "Model", "Metrics", "Artifact"]
Duration = Annotated[
    float,
    BeforeValidator(values.parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": values.DURATION_PATTERN},
            ],
            "description": "seconds, or <int><unit> parts with units ms s m h d (e.g. '1h30m')",
        }
    ),
]


class Node(BaseModel):
    """Base of every IR node: immutable, no unknown keys, aliases accepted by name too."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def to_data(self) -> dict[str, Any]:
        """The node as plain JSON data, in the file format (aliases, unset fields left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class Param(Node):
    """A typed run-time parameter (SPEC §2). A parameter without ``default`` is required."""

    type: ParamType
    default: JsonValue = None
    description: str | None = None

    @property
    def has_default(self) -> bool:
        return "default" in self.model_fields_set

    @model_validator(mode="after")
    def _default_matches_type(self) -> Param:
        if self.has_default and values.is_artifact(self.type):
            # SPEC §14: an artifact parameter's value is a URI or a path.
            if not isinstance(self.default, str) or not self.default:
                raise ValueError(
                    f"default {self.default!r} of a {self.type} parameter must be a URI or a path"
                )
        elif self.has_default:
            actual = values.json_type_of(self.default)
            if actual is None or not values.type_accepts(self.type, actual):
                shown = repr(self.default)
                if len(shown) > 80:  # a 5,000-digit number written in the file
                    shown = f"{shown[:60]}... ({len(shown)} characters)"
                raise ValueError(
                    f"default {shown} is not {'an' if self.type == 'int' else 'a'} {self.type}"
                    + (f" (it is a {actual})" if actual else "")
                )
        return self


class Retry(Node):
    """Retry policy (SPEC §6). ``attempts`` counts every try, the first included."""

    attempts: int = Field(1, ge=1, le=100)
    delay: Duration = 1.0
    backoff: float = Field(2.0, ge=1.0, le=100.0)
    max_delay: Duration = 3600.0
    jitter: bool = False


class CacheSpec(Node):
    """``cache: {version, max_age}`` (SPEC §20): the mapping means ``true``; ``version`` enters
    the signature, and a cached result older than ``max_age`` is not reused."""

    version: str | None = None
    max_age: Duration | None = None


def _cache_kind(v: Any) -> str:
    return "mapping" if isinstance(v, dict | CacheSpec) else "flag"


#: ``cache: true | false | {version, max_age}`` (SPEC §20).
Cache = Annotated[
    Annotated[bool, Tag("flag")] | Annotated[CacheSpec, Tag("mapping")],
    Discriminator(_cache_kind),
]


class Resources(Node):
    """Compute resources (SPEC §8). Memory keeps its written form; see ``memory_bytes``."""

    cpu: float | None = Field(None, gt=0)
    memory: str | int | None = None
    gpu: int | None = Field(None, ge=0)
    accelerator: str | None = None

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str | int | None) -> str | int | None:
        if v is not None:
            values.parse_memory(v)
        return v

    @field_validator("accelerator")
    @classmethod
    def _accelerator(cls, v: str | None) -> str | None:
        if v is not None and v not in values.ACCELERATORS:
            best = difflib.get_close_matches(v, values.ACCELERATORS, n=1)
            tip = f" (did you mean {best[0]!r}?)" if best else ""
            raise ValueError(f"unknown accelerator {v!r}{tip}; use one of: " + ", ".join(values.ACCELERATORS))
        return v

    @property
    def memory_bytes(self) -> int | None:
        return None if self.memory is None else values.parse_memory(self.memory)


class PythonRun(Node):
    """Run a python function ``module.path:function`` (SPEC §3.1)."""

    python: str

    @field_validator("python")
    @classmethod
    def _target(cls, v: str) -> str:
        if not values.PYTHON_TARGET_RE.match(v):
            raise ValueError(f"{v!r} is not 'module.path:function'")
        return v

    @property
    def module(self) -> str:
        return self.python.split(":", 1)[0]

    @property
    def function(self) -> str:
        return self.python.split(":", 1)[1]


class ContainerRun(Node):
    """Run a container command (SPEC §3.1). ``command``/``args`` may hold ``{{ inputs.X }}``
    and ``{{ outputs.Y }}`` placeholders."""

    image: str = Field(min_length=1)
    command: list[str] = Field(min_length=1)
    args: list[str] = Field(default_factory=list)


def _run_kind(v: Any) -> str | None:
    if isinstance(v, dict):
        return "python" if "python" in v else "container"
    if isinstance(v, PythonRun):
        return "python"
    if isinstance(v, ContainerRun):
        return "container"
    return None


Run = Annotated[
    Annotated[PythonRun, Tag("python")] | Annotated[ContainerRun, Tag("container")],
    Discriminator(_run_kind),
]


class ImportSpec(Node):
    """``import: {uri, type, metadata}`` (SPEC §14): an artifact from outside the pipeline.

    ``uri`` may hold references to params; a relative path or ``file://`` URI is relative to
    the pipeline file's folder. ``metadata`` travels with the artifact (SPEC §15).
    """

    uri: str = Field(min_length=1)
    type: ArtifactType = "Artifact"
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


#: The one output of an import step (SPEC §14).
IMPORT_OUTPUT = "artifact"
#: Task-step fields that make no sense on an import step (it runs no code).
_RUN_ONLY = ("inputs", "image", "retry", "timeout", "resources", "env", "secrets", "cache")


class Defaults(Node):
    """Task-step fields inherited by every task step (SPEC §2).

    Inheritance is field by field for ``retry`` and ``resources`` and key by key for
    ``env`` (see docs/semantics.md); a step's own value wins.
    """

    image: str | None = None
    retry: Retry | None = None
    timeout: Duration | None = None
    resources: Resources | None = None
    env: dict[str, str] = Field(default_factory=dict)
    cache: Cache | None = None


class ComponentInput(Node):
    """A declared input of a component (SPEC §16): ``{type, default?, description?}``; a bare
    type name in the file means ``{type: <name>}``."""

    type: ParamType
    default: JsonValue = None
    description: str | None = None

    @property
    def has_default(self) -> bool:
        return "default" in self.model_fields_set


class ComponentRef(Node):
    """Where an inlined component step came from (SPEC §16), set by the loader, never written
    by users: targets with a component concept emit one component per ``path`` (KFP
    ComponentSpec, Azure ML component file) and reuse it.

    Attributes:
        name: the component's ``component:`` name.
        path: the component file, relative to the top-level pipeline file's folder (POSIX).
        inputs: the declared input types, after which the step's input values are checked.
        outputs: the declared outputs.
        description: the component's description.
    """

    name: str
    path: str
    inputs: dict[str, str] = Field(default_factory=dict)
    outputs: dict[str, str] = Field(default_factory=dict)
    description: str | None = None


class SubPipelineRef(Node):
    """The pipeline a plain group was lowered from (SPEC §17), set by the loader, never written
    by users. ``bindings`` are the ``uses:`` step's inputs (defaults applied), checked against
    ``params`` (name → declared type); the group's inner steps already read them."""

    name: str
    path: str
    params: dict[str, str] = Field(default_factory=dict)
    bindings: dict[str, JsonValue] = Field(default_factory=dict)


class TaskStep(Node):
    """A task step (SPEC §3.1): has ``run``, or ``import`` (SPEC §14), which runs no code and
    has the one output ``artifact``. For an import step ``run`` is ``None``. ``component`` is
    set on a step inlined from a component file (SPEC §16)."""

    run: Run = Field(None)  # type: ignore[assignment]  # None only on import steps (is_import)
    import_: ImportSpec | None = Field(None, alias="import")
    inputs: dict[str, JsonValue] = Field(default_factory=dict)
    outputs: dict[str, OutputType] = Field(default_factory=dict)
    after: list[str] = Field(default_factory=list)
    when: str | None = None
    image: str | None = None
    retry: Retry | None = None
    timeout: Duration | None = None
    resources: Resources | None = None
    env: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict)
    cache: Cache | None = None
    description: str | None = None
    component: SkipJsonSchema[ComponentRef | None] = None

    @property
    def is_import(self) -> bool:
        return self.import_ is not None

    @model_validator(mode="before")
    @classmethod
    def _import_output(cls, data: Any) -> Any:
        # An import step's output is implied; writing it (as to_data does) is allowed if equal.
        if isinstance(data, dict) and isinstance(data.get("import"), dict) and "outputs" not in data:
            kind = data["import"].get("type", "Artifact")
            if isinstance(kind, str):
                data = {**data, "outputs": {IMPORT_OUTPUT: kind}}
        return data

    @model_validator(mode="after")
    def _run_or_import(self) -> TaskStep:
        if self.run is None and self.import_ is None:
            raise ValueError(
                "this step needs 'run' (a task step), 'import' (an artifact from outside the pipeline, "
                "SPEC §14) or 'steps' (a group)"
            )
        if self.run is not None and self.import_ is not None:
            raise ValueError("a task step has either 'run' (code to run) or 'import' (an artifact), not both")
        if self.import_ is not None:
            wrong = [k for k in _RUN_ONLY if k in self.model_fields_set]
            if wrong:
                raise ValueError(
                    f"an import step runs no code: {', '.join(repr(k) for k in wrong)} do not apply "
                    "(put references to params in import.uri)"
                )
            if self.outputs != {IMPORT_OUTPUT: self.import_.type}:
                raise ValueError(
                    f"an import step has exactly one output, 'artifact' of its type; remove 'outputs' "
                    f"(read it as steps.<name>.outputs.{IMPORT_OUTPUT})"
                )
        return self

    @field_validator("env", "secrets")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not values.ENV_NAME_RE.match(name):
                raise ValueError(f"{name!r} is not a valid environment variable name")
        return v

    @field_validator("inputs", "outputs")
    @classmethod
    def _io_names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if not values.IDENT_RE.match(name):
                raise ValueError(f"{name!r} is not a valid input/output name (use a Python identifier)")
            if name.startswith("__pipecast_"):
                raise ValueError(f"{name!r}: names starting with '__pipecast_' are reserved for pipecast")
        return v


def _component_input(v: Any) -> Any:
    return {"type": v} if isinstance(v, str) else v


class ComponentFile(Node):
    """A component file (SPEC §16): one task step's definition with typed inputs. It may not
    have ``after``, ``when`` or ``uses`` (the loader says so before this model sees them)."""

    pipecast: Literal[1]
    component: str
    description: str | None = None
    run: Run
    inputs: dict[str, Annotated[ComponentInput, BeforeValidator(_component_input)]] = Field(
        default_factory=dict
    )
    outputs: dict[str, OutputType] = Field(default_factory=dict)
    image: str | None = None
    retry: Retry | None = None
    timeout: Duration | None = None
    resources: Resources | None = None
    env: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict)
    cache: Cache | None = None

    @field_validator("component")
    @classmethod
    def _name(cls, v: str) -> str:
        if not values.STEP_NAME_RE.match(v):
            raise ValueError(f"component name {v!r} must match ^[a-z][a-z0-9_]{{0,62}}$")
        return v

    @field_validator("inputs", "outputs")
    @classmethod
    def _io_names(cls, v: dict[str, Any]) -> dict[str, Any]:
        return TaskStep._io_names(v)

    @model_validator(mode="after")
    def _defaults_match(self) -> ComponentFile:
        for name, spec in self.inputs.items():
            if spec.has_default and not values.is_artifact(spec.type):
                actual = values.json_type_of(spec.default)
                if actual is None or not values.type_accepts(spec.type, actual):
                    raise ValueError(f"input {name!r}: default {spec.default!r} is not {spec.type}")
        return self


class UsesStep(Node):
    """A step that ``uses:`` a component file (SPEC §16) or a pipeline file (SPEC §17). Only in
    files: the loader replaces it by a task step or a plain group before the IR is built."""

    uses: str = Field(min_length=1)
    inputs: dict[str, JsonValue] = Field(default_factory=dict)
    outputs: dict[str, OutputType] = Field(default_factory=dict)
    after: list[str] = Field(default_factory=list)
    when: str | None = None
    image: str | None = None
    retry: Retry | None = None
    timeout: Duration | None = None
    resources: Resources | None = None
    env: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict)
    cache: Cache | None = None
    description: str | None = None


class ElseBranch(Node):
    """The ``else`` branch of a ``when`` group (SPEC §3.2)."""

    steps: dict[str, Step]
    outputs: dict[str, str] = Field(default_factory=dict)


class GroupStep(Node):
    """A group step (SPEC §3.2): has ``steps`` and exactly one of ``for_each`` or ``when``.

    A *plain* group (neither) exists only in lowered IR: a sub-pipeline ``uses:`` (SPEC §17)
    becomes one, with ``subpipeline`` naming the called pipeline and inner step names dotted
    (``<step>.<inner>``). A sub-pipeline step with ``when`` is a ``when`` group with the marker.
    ``finally`` is the group's own final step (SPEC §18).
    """

    steps: dict[str, Step]
    for_each: JsonValue = None
    as_: str = Field("item", alias="as")
    parallelism: int | None = Field(None, ge=1)
    when: str | None = None
    else_: ElseBranch | None = Field(None, alias="else")
    outputs: dict[str, str] = Field(default_factory=dict)
    after: list[str] = Field(default_factory=list)
    finally_: TaskStep | None = Field(None, alias="finally")
    description: str | None = None
    subpipeline: SkipJsonSchema[SubPipelineRef | None] = None

    @property
    def is_loop(self) -> bool:
        return "for_each" in self.model_fields_set

    @property
    def is_plain(self) -> bool:
        """Neither ``for_each`` nor ``when``: a lowered sub-pipeline (SPEC §17)."""
        return not self.is_loop and self.when is None

    @property
    def is_condition(self) -> bool:
        return self.when is not None

    @field_validator("finally_", mode="before")
    @classmethod
    def _one_finally_step(cls, fin: Any) -> Any:
        # SPEC §18: ``finally`` holds one task step; a map of named steps is the common slip.
        if (
            isinstance(fin, dict)
            and fin
            and "run" not in fin
            and "import" not in fin
            and ("steps" in fin or all(isinstance(v, dict) for v in fin.values()))
        ):
            raise ValueError(
                "a group's 'finally' is one task step (SPEC §18), not a map of steps; write its "
                "'run' and 'inputs' directly under 'finally', and move other steps into the group"
            )
        return fin

    @model_validator(mode="after")
    def _one_kind(self) -> GroupStep:
        if self.is_loop == self.is_condition and not (self.subpipeline is not None and not self.is_loop):
            raise ValueError(
                "a group needs exactly one of 'for_each' (fan-out) or 'when' (condition)"
                + (
                    ""
                    if self.is_loop
                    else "; a plain group of steps is not a thing: list the steps at this level"
                )
            )
        if self.is_loop:
            for key in ("else_",):
                if getattr(self, key) is not None:
                    raise ValueError("'else' belongs to a 'when' group, not to a 'for_each' group")
        else:
            extra = {"as_": "as", "parallelism": "parallelism"}
            for field, alias in extra.items():
                if field in self.model_fields_set:
                    raise ValueError(f"'{alias}' belongs to a 'for_each' group, not to a 'when' group")
        if not values.IDENT_RE.match(self.as_):
            raise ValueError(f"'as: {self.as_}' is not a valid loop variable name")
        return self


def _step_kind(v: Any) -> str | None:
    if isinstance(v, dict):
        return "group" if "steps" in v and "run" not in v and "import" not in v else "task"
    if isinstance(v, TaskStep):
        return "task"
    if isinstance(v, GroupStep):
        return "group"
    return None


Step = Annotated[
    Annotated[TaskStep, Tag("task")] | Annotated[GroupStep, Tag("group")],
    Discriminator(_step_kind),
]


class Schedule(Node):
    """``{cron, timezone}`` (SPEC §2); checked in :mod:`pipecast.passes.validate`."""

    cron: str
    timezone: str = "UTC"


class Pipeline(Node):
    """A whole pipeline (SPEC §2)."""

    pipecast: Literal[1]
    name: str
    description: str | None = None
    params: dict[str, Param] = Field(default_factory=dict)
    schedule: Schedule | None = None
    defaults: Defaults = Field(default_factory=Defaults)
    steps: dict[str, Step]
    finally_: TaskStep | None = Field(None, alias="finally")
    outputs: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not values.PIPELINE_NAME_RE.match(v):
            raise ValueError(
                f"pipeline name {v!r} must match ^[a-z][a-z0-9-]{{0,62}}$ "
                "(lower-case letters, digits and '-', starting with a letter)"
            )
        return v

    @field_validator("params")
    @classmethod
    def _param_names(cls, v: dict[str, Param]) -> dict[str, Param]:
        for name in v:
            if not values.PARAM_NAME_RE.match(name):
                raise ValueError(f"parameter name {name!r} must match ^[a-z_][a-z0-9_]{{0,62}}$")
        return v

    @field_validator("steps")
    @classmethod
    def _not_empty(cls, v: dict[str, Any]) -> dict[str, Any]:
        if not v:
            raise ValueError("a pipeline needs at least one step")
        return v

    def to_data(self) -> dict[str, Any]:
        data = super().to_data()
        data["pipecast"] = 1
        return data


ElseBranch.model_rebuild()
GroupStep.model_rebuild()
TaskStep.model_rebuild()
Pipeline.model_rebuild()

AnyStep = TaskStep | GroupStep
