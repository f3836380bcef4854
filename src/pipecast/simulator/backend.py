"""The ``local`` target: the simulator as a backend. It supports every feature natively
(it *is* the reference semantics); ``emit`` writes the resolved plan: every step with its
effective settings and dependencies, which is what ``pipecast run`` executes."""

from __future__ import annotations

from typing import Any, ClassVar

from pipecast.backend import NATIVE, Backend, CompileResult, Feature, Support
from pipecast.io import dump_json


class LocalBackend(Backend):
    """Runs pipelines on this machine with ``pipecast run``."""

    name: ClassVar[str] = "local"
    title: ClassVar[str] = "Local simulator"
    features: ClassVar[dict[Feature, Support]] = {f: NATIVE for f in Feature}
    reads_local_files: ClassVar[bool] = True
    inlines_plain_groups: ClassVar[bool] = False  # the simulator runs plain groups itself
    docs_url: ClassVar[str] = "docs/simulator.md"
    conformance: ClassVar[str] = "pipecast.simulator.conformance:LocalConformance"

    def emit(self, pipeline: Any, index: Any, settings: Any) -> CompileResult:
        steps: dict[str, Any] = {}
        for scope in index.scopes():
            deps = index.deps(scope)
            for name, node in scope.steps.items():
                entry: dict[str, Any] = {
                    "kind": "task"
                    if node.is_task
                    else (
                        "for_each"
                        if node.group.is_loop
                        else "when"
                        if node.group.when is not None
                        else "group"
                    ),
                    "parent": node.parent,
                    "branch": scope.branch,
                    "depends_on": deps[name],
                }
                if node.is_task:
                    entry.update(_task(index, node))
                steps[name] = entry
        if index.finally_node is not None:
            steps["finally"] = {"kind": "finally", **_task(index, index.finally_node)}
        plan = {
            "pipeline": pipeline.name,
            "params": {k: v.to_data() for k, v in pipeline.params.items()},
            "steps": steps,
            "order": {scope.owner or "": index.toposort(scope) for scope in index.scopes()},
        }
        files = {f"{pipeline.name}.plan.json": dump_json(plan)}
        return CompileResult(files, [], {"steps": len(steps)})

    def default_filename(self, pipeline: Any) -> str:
        return f"{pipeline.name}.plan.json"


def _task(index: Any, node: Any) -> dict[str, Any]:
    if node.task.import_ is not None:
        return {"import": node.task.import_.to_data(), "outputs": node.task.outputs}
    eff = index.effective(node)
    return {
        "run": node.task.run.to_data(),
        "inputs": node.task.inputs,
        "outputs": node.task.outputs,
        "retry": eff.retry.model_dump(mode="json"),
        "timeout": eff.timeout,
        "resources": eff.resources.model_dump(mode="json", exclude_none=True),
        "env": eff.env,
        "secrets": eff.secrets,
        "cache": eff.cache,
        "image": eff.image,
    }
