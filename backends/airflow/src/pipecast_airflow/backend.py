"""The Airflow backend: one DAG file per pipeline, rendered from ``pipecast_airflow/templates/dag.py.j2``.

Mapping (Airflow docs: https://airflow.apache.org/docs/apache-airflow/stable/core-concepts/dags.html)
is in :mod:`pipecast_airflow.lowering`; docs/targets/airflow.md has the full table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pipecast import stock
from pipecast.backend import (
    INLINED_SUBPIPELINES,
    Backend,
    CompileResult,
    Feature,
    Report,
    Support,
    native,
    runtime,
)
from pipecast.diagnostics import Diagnostic, UserError
from pipecast.ir.models import ContainerRun, Pipeline
from pipecast.passes.analysis import PipelineIndex
from pipecast_airflow.lowering import Lowering, stages
from pipecast_airflow.settings import AirflowSettings

if TYPE_CHECKING:
    from pipecast.simulator.profiles import Profile

#: Imports per operator class, for Airflow 3 and Airflow 2.7+.
IMPORTS = {
    "3": {
        "PythonOperator": "airflow.providers.standard.operators.python",
        "BranchPythonOperator": "airflow.providers.standard.operators.python",
        "EmptyOperator": "airflow.providers.standard.operators.empty",
        "KubernetesPodOperator": "airflow.providers.cncf.kubernetes.operators.pod",
        "DockerOperator": "airflow.providers.docker.operators.docker",
    },
    "2": {
        "PythonOperator": "airflow.operators.python",
        "BranchPythonOperator": "airflow.operators.python",
        "EmptyOperator": "airflow.operators.empty",
        "KubernetesPodOperator": "airflow.providers.cncf.kubernetes.operators.pod",
        "DockerOperator": "airflow.providers.docker.operators.docker",
    },
}
PARAM_TYPES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "list": "array",
    "dict": "object",
}
#: An artifact parameter's value is a URI or a path (SPEC §14).
ARTIFACT_PARAM_TYPE = "string"


#: Tasks above which compile warns about DagBag import time (docs/targets/airflow.md).
LARGE_DAG_TASKS = 5_000


class AirflowBackend(Backend):
    """Apache Airflow DAG files (Airflow 3 by default, Airflow 2.7+ with ``airflow_version: "2"``)."""

    name = "airflow"
    title = "Apache Airflow"
    docs_url = "https://airflow.apache.org/docs/apache-airflow/stable/"
    #: Executed by the suite with dag.test() (backends/airflow/tests/af_helpers.py).
    conformance = "af_helpers:AirflowConformance"
    settings_model = AirflowSettings
    #: Airflow is self-hosted: a local path (an import or an artifact parameter) is read on the
    #: worker, relative paths from the project folder (docs/semantics.md, SPEC §14).
    reads_local_files: ClassVar[bool] = True
    #: A sub-pipeline with a finally is a plain group lowered to its steps, a join and the
    #: group finally's tasks (Lowering.plain); the others are inlined.
    emits_plain_groups_with_finally = True
    features: ClassVar[dict[Feature, Support]] = {
        Feature.PYTHON_STEP: native(
            "PythonOperator runs the step through the pipecast runtime on the worker"
        ),
        Feature.CONTAINER_STEP: native(
            "KubernetesPodOperator/DockerOperator; with operator 'python' the command runs on the "
            "worker host (a warning; container_steps_on_host: false makes it an error)"
        ),
        Feature.STOCK_IMAGES: native(
            "kubernetes/docker operators run the command in the image with templated arguments; a "
            "thin sh wrapper (sh, base64) hands outputs to the operator's XCom; artifacts on "
            "artifact_root (a PVC / a mounted host folder); steps with secrets, cache or a backoff "
            "other than 1 or 2 keep the runtime; operator 'python' runs the command on the worker"
        ),
        Feature.PARAMS: native("DAG params with typed Param; dag_run.conf overrides"),
        Feature.PARAM_OUTPUTS: native("XCom (return_value of each task)"),
        Feature.ARTIFACTS: runtime("files under artifact_root, paths passed through XCom"),
        Feature.AFTER: native("task dependencies"),
        Feature.WHEN: native("branch task + join with trigger rule none_failed_min_one_success"),
        Feature.ELSE: native("the branch task picks the else branch"),
        Feature.GROUP_OUTPUTS: native("resolved from XCom by the consumer (collected for for_each)"),
        Feature.WHEN_OUTPUTS: native("the consumer reads the XCom of whichever branch ran"),
        Feature.AFTER_GROUP: native(
            "a dependency on the group's join task (trigger rule none_failed_min_one_success)"
        ),
        Feature.FOR_EACH: native("mapped task group (dynamic task mapping), max_map_length 1024"),
        Feature.PARALLELISM: runtime(
            "each first task of an item waits (up_for_reschedule) until fewer than N earlier items "
            "are unfinished; a python or when step must start the body"
        ),
        Feature.NESTED_FOR_EACH: native(
            "lowered to one level: the inner loop's items task flattens its item paths at run "
            "time, one mapped task group runs over them, its -done task regroups the outputs per "
            "outer item; outer steps after it run in a later mapped task group"
        ),
        Feature.RETRY: runtime("the runtime retries inside the task (retries=0), so SPEC §6 timing is exact"),
        Feature.RETRY_BACKOFF: runtime("the runtime waits min(delay * backoff^(n-1), max_delay)"),
        Feature.RETRY_JITTER: runtime("the runtime draws the jitter"),
        Feature.TIMEOUT: runtime(
            "the runtime kills the step at the timeout; execution_timeout is a backstop"
        ),
        Feature.RESOURCES: native(
            "kubernetes: container resources; docker: cpus/mem_limit; python: not enforced"
        ),
        Feature.ACCELERATORS: native(
            "kubernetes: nvidia.com/gpu limit + node selector; docker: device_requests"
        ),
        Feature.ENV: runtime("set by the runtime for the step's process"),
        Feature.SECRETS: runtime("Airflow Variables read by the runtime (kubernetes: Kubernetes secrets)"),
        Feature.CACHE: runtime(
            "the runtime keeps a result cache under artifact_root (.pipecast-cache/<dag>), keyed by "
            "the SPEC §20 signature; a hit restores the outputs without running the step"
        ),
        Feature.COMPONENTS: native("inlined: an ordinary task per step"),
        Feature.SUBPIPELINES: native(
            f"{INLINED_SUBPIPELINES.note}; one with its own finally keeps its tasks in the caller's "
            "DAG, with a <step>-join task its finally follows"
        ),
        Feature.STRUCTURED_VALUES: runtime(
            "the runtime builds the value from the binding document (XCom values, paths)"
        ),
        Feature.GROUP_FINALLY: native(
            "<group>-finally with trigger rule all_done (a sub-pipeline's finally too); group.status "
            "from the group's task states"
        ),
        Feature.FINALLY: native("trigger rule all_done; pipeline.status from the run's task states"),
        Feature.SCHEDULE: native("cron schedule, catchup=False"),
        Feature.SCHEDULE_TIMEZONE: native("time-zone-aware start_date (pendulum)"),
        Feature.PIPELINE_OUTPUTS: native("a pipeline-outputs task returns them as its XCom"),
        Feature.ARTIFACT_PARAMS: runtime(
            "the URI or path through XCom; a local path is read on the worker, a relative one from "
            "the project folder (project_dir, then PIPECAST_PYTHON_PATH)"
        ),
        Feature.IMPORT: runtime(
            "a worker task resolves the URI (params, loop items) and returns it as the artifact's "
            "XCom; a local path must exist on the worker; metadata in the run record"
        ),
        Feature.METRIC_REFS: runtime(
            "the runtime publishes each Metrics output's numbers to XCom (key pipecast); conditions "
            "and inputs read them there (else from the file under artifact_root)"
        ),
    }

    def profile(self) -> Profile:
        from pipecast_airflow.profile import AirflowProfile

        return AirflowProfile(self.name)

    def check_target(self, index: PipelineIndex, settings: Any, report: Report) -> None:
        """Nesting shapes Airflow cannot map (a for_each inside a ``when`` group of a loop;
        ``parallelism`` over several stages, see :meth:`pipecast_airflow.lowering.Lowering.loop`),
        (kubernetes operator) accelerators the ``gpu_cluster`` kind does not offer, then what the
        lowering with the user's settings refuses (operators, map lengths, parallelism): it is
        built here once and ``emit`` renders it."""
        self._check_shapes(index, settings, report)
        if not report.errors:
            self.build_for_emit(index, settings, report, Lowering(index, settings).lower)

    def _check_shapes(self, index: PipelineIndex, settings: AirflowSettings, report: Report) -> None:
        s = settings
        if s.operator == "kubernetes":
            from pipecast.gpu_nodes import UnsupportedAccelerator, gpu_placement

            for task in index.tasks():
                res = index.effective(task).resources
                try:
                    gpu_placement(s.gpu_cluster, res.accelerator, res.gpu)
                except UnsupportedAccelerator as exc:
                    report.add(
                        Diagnostic(
                            f"target 'airflow' (gpu_cluster {s.gpu_cluster}): step {task.name!r}: {exc}",
                            (*task.yaml_path, "resources")
                            if task.task.resources is not None
                            else ("defaults", "resources"),
                            hint=f"use one of: {', '.join(exc.available)}, or set gpu_cluster to the kind "
                            "of cluster the pods run on (gke, eks, aks, plain)",
                            code="unsupported-accelerator",
                        )
                    )
        for node in index.walk():
            if not (node.is_group and node.group.is_loop) or node.body is None:
                continue
            owner = index.nodes[node.scope.owner] if node.scope.owner is not None else None
            if owner is not None and index.loops(node) and not owner.group.is_loop:
                if owner.group.is_condition:
                    what = f"for_each {node.name!r} is inside the 'when' group {owner.name!r}"
                    hint = "and give it the condition as a 'when' of its own steps"
                else:  # a sub-pipeline keeping its finally; its steps are named <step>__<inner>
                    called = node.name.removeprefix(f"{owner.name}__")
                    what = f"for_each {called!r} of the pipeline that step {owner.name!r} uses is inside it"
                    hint = "or drop the called pipeline's 'finally' (then its steps join the caller's)"
                report.add(
                    Diagnostic(
                        f"target 'airflow': {what}, "
                        "inside a for_each; Airflow cannot map inside a mapped task group, "
                        "and pipecast lowers a nested for_each only when it is a step of the outer "
                        "for_each's body",
                        node.yaml_path,
                        hint=f"move {node.name!r} out of {owner.name!r} {hint}",
                        code="unsupported-feature",
                    )
                )
            if index.loops(node) and node.finally_node is not None:
                report.add(
                    Diagnostic(
                        f"target 'airflow': for_each {node.name!r} inside a for_each has its own "
                        "'finally' (SPEC §18), which the nested lowering (one mapped task group over "
                        "the flattened items) does not run per outer item yet",
                        (*node.yaml_path, "finally"),
                        hint="move the cleanup into a step after the inner for_each, or give the outer "
                        "for_each the 'finally'",
                        code="unsupported-feature",
                    )
                )
            if node.group.parallelism is None:
                continue
            # A loop's bound passes down a chain of loops whose bodies are one loop each; below,
            # the body must be one mapped task group (items in progress are counted there).
            inner = node
            while True:
                assert inner.body is not None
                only = list(inner.body.steps.values())
                if len(only) == 1 and only[0].is_group and only[0].group.is_loop:
                    inner = only[0]
                    continue
                break
            assert inner.body is not None
            if any(n.is_group and n.group.is_loop for n in inner.body.steps.values()) or (
                len(set(stages(index, inner).values())) > 1
            ):
                report.add(
                    Diagnostic(
                        f"target 'airflow': 'parallelism' of {node.name!r}: the body of "
                        f"{inner.name!r} holds a nested for_each next to other steps, so its items run "
                        "in several mapped task groups one after the other, and an item is in "
                        "progress from the first to the last of them",
                        (*node.yaml_path, "parallelism"),
                        hint="drop 'parallelism', or move the inner for_each out of the loop",
                        code="unsupported-feature",
                    )
                )

    def default_filename(self, pipeline: Pipeline) -> str:
        return f"{pipeline.name.replace('-', '_')}.py"

    def validate_output(self, files: Mapping[str, str]) -> list[Diagnostic]:
        """Load the DAG files with Airflow's ``DagBag`` (in a child process, throwaway home)."""
        from pipecast_airflow.check import validate_files

        return validate_files(files)

    def deploy(self, pipeline: Pipeline, files: Mapping[str, str], settings: Any, **options: Any) -> Any:
        """Write the DAG file into the ``dags_folder`` setting, atomically."""
        from pipecast_airflow.check import deploy_files

        s: AirflowSettings = self.settings_of(settings)
        if options.get("run"):
            raise UserError(
                Diagnostic(
                    "target 'airflow': --run is not supported; the scheduler picks the DAG up from the dags folder",
                    hint=f"trigger it with: airflow dags trigger {pipeline.name.replace('-', '_')}",
                )
            )
        return deploy_files(files, s.dags_folder)

    def local_engine(self) -> Any:
        from pipecast_airflow.local import AirflowEngine

        return AirflowEngine()

    def emit(self, pipeline: Pipeline, index: PipelineIndex, settings: Any) -> CompileResult:
        from pipecast.templating import render_package

        s: AirflowSettings = self.settings_of(settings)
        lowered = self.built(index, s) or Lowering(index, s).lower()
        warnings = [*self._warnings(index, s), *lowered.warnings]
        if len(lowered.task_ids) > LARGE_DAG_TASKS:
            warnings.append(
                Diagnostic(
                    f"airflow: this DAG has {len(lowered.task_ids):,} tasks; Airflow's DagBag imports DAGs of "
                    f"more than {LARGE_DAG_TASKS:,} tasks slowly (each dependency it sets rehashes the whole "
                    "DAG), close to its default dagbag_import_timeout of 30 s at 8,000 tasks on a busy machine",
                    ("steps",),
                    hint="split the pipeline, use for_each for repeated steps (one mapped task), or raise "
                    "[core] dagbag_import_timeout",
                    severity="warning",
                    code="limit",
                )
            )
        # Operator 'python' runs every step on the worker: no step image at all.
        images = {} if s.operator == "python" else stock.runtime_images(index, lowered.plans)
        imports = self._imports(lowered, s, bool(pipeline.params))
        params = [
            (
                name,
                p.default if p.has_default else None,
                p.has_default,
                PARAM_TYPES.get(p.type, ARTIFACT_PARAM_TYPE),
                p.description,
            )
            for name, p in pipeline.params.items()
        ]
        year, month, day = (int(x) for x in s.start_date.split("-"))
        text = render_package(
            __file__,
            "dag.py.j2",
            pipeline=pipeline,
            version=s.airflow_version,
            imports=imports,
            params=params,
            docs=[
                (tid, json.dumps(doc, sort_keys=True, separators=(",", ":")))
                for tid, doc in lowered.docs.items()
            ],
            body=lowered.body,
            has_groups=any(type(b).__name__ == "Group" for b in _walk(lowered.body)),
            has_imports=any(node.task.import_ is not None for node in index.tasks()),
            containers=bool({"KubernetesPodOperator", "DockerOperator"} & lowered.operators),
            kubernetes="KubernetesPodOperator" in lowered.operators,
            docker="DockerOperator" in lowered.operators,
            start=(year, month, day),
            timezone=pipeline.schedule.timezone if pipeline.schedule else "UTC",
            cron=pipeline.schedule.cron if pipeline.schedule else None,
            tags=s.tags,
            has_outputs=bool(pipeline.outputs),
            has_finally=pipeline.finally_ is not None,
            used={v for item in _walk(lowered.body) if hasattr(item, "up") for v in (item.up, item.down)}
            | {item.items_var for item in _walk(lowered.body) if hasattr(item, "items_var")},
            timedeltas=any(
                kind == "seconds"
                for item in _walk(lowered.body)
                for _n, kind, _v in getattr(item, "kwargs", [])
            ),
        )
        return CompileResult(
            files={self.default_filename(pipeline): text},
            diagnostics=warnings,
            summary={"tasks": len(lowered.task_ids), "dag_id": pipeline.name, "runtime_images": images},
        )

    @staticmethod
    def _imports(lowered: Any, s: AirflowSettings, params: bool) -> list[tuple[str, list[str]]]:
        """``from module import names`` lines in isort order (modules sorted, names by type)."""
        imports: dict[str, set[str]] = {}
        for cls in lowered.operators:
            imports.setdefault(IMPORTS[s.airflow_version][cls], set()).add(cls)
        items = _walk(lowered.body)
        kinds = {kind for item in items for _n, kind, _v in getattr(item, "kwargs", [])}
        groups = any(hasattr(item, "items_var") for item in items)
        if s.airflow_version == "3":
            imports["airflow.sdk"] = {
                "DAG",
                *(["Param"] if params else []),
                *(["task_group"] if groups else []),
            }
        else:
            imports["airflow.models.dag"] = {"DAG"}
            if params:
                imports["airflow.models.param"] = {"Param"}
            if groups:
                imports["airflow.decorators"] = {"task_group"}
        if "k8s_secrets" in kinds:
            imports["airflow.providers.cncf.kubernetes.secret"] = {"Secret"}
        if kinds & {"k8s_resources", "k8s_volumes", "k8s_tolerations"}:
            imports["kubernetes.client"] = {"models as k8s"}
        docker = {"docker_gpus": "DeviceRequest", "docker_mounts": "Mount"}
        for kind, name in docker.items():
            if kind in kinds:
                imports.setdefault("docker.types", set()).add(name)

        def order(name: str) -> tuple[int, str]:
            # isort's order-by-type: CONSTANTS, Classes, then functions and modules.
            kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
            return kind, name

        return [(module, sorted(names, key=order)) for module, names in sorted(imports.items())]

    def _warnings(self, index: PipelineIndex, s: AirflowSettings) -> list[Diagnostic]:
        out = []
        for node in index.tasks():
            eff = index.effective(node)
            if eff.cache and s.operator != "python" and not s.artifact_root:
                out.append(
                    Diagnostic(
                        f"airflow: cache of step {node.name!r} needs artifact_root with operator "
                        f"{s.operator!r}: the runtime keeps cached results there; without it the step "
                        "runs every time",
                        (*node.yaml_path, "cache"),
                        hint="set artifact_root (a folder every pod or container mounts)",
                        severity="warning",
                        code="cache",
                    )
                )
            if s.operator == "python" and isinstance(node.task.run, ContainerRun):
                out.append(
                    Diagnostic(
                        f"airflow: container step {node.name!r} runs its command on the worker host "
                        f"(operator 'python'); image {eff.image!r} is not used",
                        (*node.yaml_path, "run"),
                        hint="set operator: kubernetes or docker to run it in its image",
                        severity="warning",
                        code="approximated",
                    )
                )
            res = eff.resources
            if s.operator == "python" and (res.cpu or res.memory or res.gpu or res.accelerator):
                out.append(
                    Diagnostic(
                        f"airflow: resources of step {node.name!r} are not enforced by operator 'python'",
                        node.yaml_path,
                        hint="set operator: kubernetes (or docker) to request them",
                        severity="warning",
                        code="approximated",
                    )
                )
            if s.operator == "kubernetes":
                from pipecast.gpu_nodes import UnsupportedAccelerator, gpu_placement

                try:
                    placement = gpu_placement(s.gpu_cluster, res.accelerator, res.gpu)
                except UnsupportedAccelerator:
                    placement = None  # a compile error (operators._placement)
                if placement is not None and placement.note:
                    out.append(
                        Diagnostic(
                            f"airflow: step {node.name!r}: {placement.note}",
                            (*node.yaml_path, "resources"),
                            hint="use a dedicated node pool, or set gpu_cluster to gke or eks",
                            severity="warning",
                            code="approximated",
                        )
                    )
        return out


def _walk(body: list[Any]) -> list[Any]:
    out = []
    for item in body:
        out.append(item)
        if hasattr(item, "body"):
            out.extend(_walk(item.body))
    return out
