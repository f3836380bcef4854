"""The step description every cloud target hands to the pipecast step runtime.

A backend builds one :class:`StepSpec` per task step with :func:`step_spec` and embeds it
(compact JSON, see :meth:`StepSpec.to_arg`) in the container command
``python -m pipecast.runtime run --spec '<json>' --convention <name> ...``. The runtime
then needs nothing else from the pipeline file: it knows each input's type (to tell
artifacts, which arrive as paths or URIs, from values), each output's type, and which
gaps (retries, timeouts) it must fill for this target.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from pipecast.diagnostics import Diagnostic
from pipecast.ir.models import ContainerRun, Node, OutputType, PythonRun, Retry
from pipecast.passes.analysis import ANY, PipelineIndex, StepNode
from pipecast.runtime.cachekey import definition_digest

#: A secret store's name (``pipecast.runtime.secrets``: the built-in ones, or a plugin's).
SecretStore = str


class InputSpec(Node):
    """One input: its static type (``any`` when unknown, ``list[Model]`` for collected
    artifacts) and, for literal inputs, the value itself."""

    type: str = ANY
    value: Any = None
    literal: bool = False


class CacheSpec(Node):
    """SPEC §20 caching done by the runtime (targets without a native cache): the part of the
    signature the compiler knows, and where the entries live (an ``s3://`` prefix or a folder;
    empty: the convention's default)."""

    definition: str
    version: str | None = None
    max_age: float | None = None
    store: str = ""


class StepSpec(Node):
    """What the runtime needs to run one task step (see the module docstring)."""

    pipeline: str
    step: str
    run: PythonRun | ContainerRun
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    outputs: dict[str, OutputType] = Field(default_factory=dict)
    #: Retries the runtime performs itself (``None``: the target retries natively).
    retry: Retry | None = None
    #: Per-attempt timeout the runtime enforces itself (``None``: the target does, or none).
    timeout: float | None = None
    env: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict)
    secret_store: SecretStore = "env"
    #: The runtime's own result cache (``None``: no cache, or the target caches natively).
    cache: CacheSpec | None = None

    def to_arg(self) -> str:
        """Compact, deterministic JSON for a command-line argument."""
        return json.dumps(
            self.model_dump(mode="json", by_alias=True, exclude_defaults=True),
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def from_arg(cls, text: str) -> StepSpec:
        return cls.model_validate_json(text)


def definition_data(index: PipelineIndex, node: StepNode) -> dict[str, Any]:
    """A task's definition after defaults, the part of its SPEC §20 signature the compiler knows
    (:func:`pipecast.runtime.cachekey.definition_digest` hashes it)."""
    eff = index.effective(node)
    task = node.task
    return {
        "run": task.run.to_data(),
        "image": eff.image,
        "env": eff.env,
        "resources": eff.resources.to_data(),
        "retry": eff.retry.model_dump(mode="json"),
        "timeout": eff.timeout,
        "outputs": dict(task.outputs),
    }


def step_spec(
    index: PipelineIndex,
    node: StepNode,
    *,
    retry_in_runtime: bool = False,
    timeout_in_runtime: bool = False,
    secret_store: SecretStore = "env",
    cache_store: str | None = None,
) -> StepSpec:
    """Build the runtime's description of a task step.

    Args:
        index: the pipeline's index.
        node: a task node (``index.finally_node`` included).
        retry_in_runtime: the target cannot retry this step natively, so the runtime does.
        timeout_in_runtime: the target cannot enforce the timeout, so the runtime does.
        secret_store: where the runtime resolves ``secrets`` by name.
        cache_store: where the runtime keeps cached results of ``cache`` steps when the target
            has no native cache (SPEC §20). ``""``: no store in the spec (the Airflow worker
            fills in its default place; elsewhere the runtime caches nothing, and the spec only
            carries the signature's definition digest and ``version`` into a native cache key).
    """
    task = node.task
    eff = node.resolved.effective
    in_finally = node is index.finally_node
    inputs: dict[str, InputSpec] = {}
    for name, value in task.inputs.items():
        type_ = index.value_type(value, node.scope, node.name, in_finally=in_finally) or ANY
        if isinstance(value, str) and "{{" in value:
            inputs[name] = InputSpec(type=type_)
        else:
            inputs[name] = InputSpec(type=type_, value=value, literal=True)
    return StepSpec(
        pipeline=index.pipeline.name,
        step=node.name,
        run=task.run,
        inputs=inputs,
        outputs=dict(task.outputs),
        retry=eff.retry if retry_in_runtime and eff.retry.attempts > 1 else None,
        timeout=eff.timeout if timeout_in_runtime else None,
        env=eff.env,
        secrets=eff.secrets,
        secret_store=secret_store,
        cache=(
            CacheSpec(
                definition=definition_digest(definition_data(index, node)),
                version=eff.cache_version,
                max_age=eff.cache_max_age,
                store=cache_store,
            )
            if cache_store is not None and eff.cache and not in_finally
            else None
        ),
    )


def without_max_age(
    spec: StepSpec, node: StepNode, target: str, reuse: str
) -> tuple[StepSpec, Diagnostic | None]:
    """``spec`` for a target whose own cache has no expiry: ``cache.max_age`` leaves the spec
    (it is not part of the SPEC §20 signature), with a warning that it is not honoured.

    ``reuse`` says how the service reuses results (``"Vertex reuses a cached result"``).
    """
    if spec.cache is None or spec.cache.max_age is None:
        return spec, None
    spec = spec.model_copy(update={"cache": spec.cache.model_copy(update={"max_age": None})})
    return spec, Diagnostic(
        f"{target}: cache max_age of step {node.name!r} is not honoured: {reuse}",
        (*node.yaml_path, "cache"),
        hint="change cache.version to force a rerun",
        severity="warning",
        code="approximated",
    )
