"""The operator of one task step, by the ``operator`` setting.

* ``python``: ``PythonOperator`` calling ``_step`` in the generated file, which runs the step
  through the pipecast runtime on the worker (the user function in a child process).
* ``kubernetes``: ``KubernetesPodOperator`` running ``python -m pipecast.runtime run`` in the
  step's image; outputs come back through the pod's XCom sidecar (``/airflow/xcom/return.json``).
* ``docker``: ``DockerOperator`` running the same command; outputs come back as the last line
  of the container's output.

Container operators get the step spec and the resolved inputs from two Jinja macros of the DAG
(``pipecast_spec``, ``pipecast_inputs``) whose arguments are only task ids: pipeline text never
enters a templated field, so a ``{{ }}`` in a value stays data.

Resources, per Kubernetes (https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/):

| pipecast | kubernetes | docker |
|---|---|---|
| cpu | requests/limits ``cpu`` | ``cpus`` |
| memory | requests/limits ``memory`` (bytes) | ``mem_limit`` (bytes) |
| gpu | limits ``nvidia.com/gpu`` | ``device_requests`` count |
| accelerator | node selector per ``gpu_cluster`` (:mod:`pipecast.gpu_nodes`) | (ignored with gpu) |
| gpu or accelerator | tolerations per ``gpu_cluster`` (``nvidia.com/gpu`` NoSchedule, ...) | |
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipecast.diagnostics import Diagnostic, UserError
from pipecast.gpu_nodes import Placement, UnsupportedAccelerator, gpu_placement
from pipecast.ir.models import ContainerRun
from pipecast.ir.values import is_artifact
from pipecast.passes.analysis import EffectiveTask, StepNode
from pipecast.runtime.secrets import env_names
from pipecast_airflow import stock_images as stock

if TYPE_CHECKING:
    from pipecast_airflow.lowering import Lowering, Op

XCOM_FILE = "/airflow/xcom/return.json"


def _placement(low: Lowering, node: StepNode, res: Any) -> Placement | None:
    cluster = low.settings.gpu_cluster
    try:
        placement = gpu_placement(cluster, res.accelerator, res.gpu)
    except UnsupportedAccelerator as exc:
        raise UserError(
            Diagnostic(
                f"target 'airflow' (gpu_cluster {cluster}): step {node.name!r}: {exc}",
                (*node.yaml_path, "resources"),
                hint=f"use one of: {', '.join(exc.available)}, or set gpu_cluster to the kind of cluster "
                "the pods run on (gke, eks, aks, plain)",
                code="unsupported-accelerator",
            )
        ) from None
    return placement  # its note (model not pinned) is a warning of AirflowBackend._warnings


#: Endings Airflow takes for a template *file* name in a templated field of the container
#: operators (``template_ext`` of KubernetesPodOperator and DockerOperator): such a value is
#: loaded as a file, not used as text.
_TEMPLATE_EXTS = (".yaml", ".yml", ".json", ".sh", ".bash", ".env")
_JINJA_OPEN = ("{{", "{%", "{#")


def untemplated(text: str) -> str:
    """A user string for a templated operator field (``image``, ``namespace``, ``arguments``,
    a volume's claim name) that renders to exactly itself.

    Airflow renders these fields with Jinja
    (https://airflow.apache.org/docs/apache-airflow/stable/core-concepts/operators.html#jinja-templating),
    so ``{{ dag_run.conf['image'] }}`` in an image name would let a run's conf pick the image.
    Text with a Jinja delimiter, or ending like a template file name, becomes one Jinja string
    expression whose delimiter characters are ``\\uXXXX`` escapes (Jinja decodes string
    literals with ``unicode-escape``); other text is unchanged.
    """
    if not any(d in text for d in _JINJA_OPEN) and not text.lower().endswith(_TEMPLATE_EXTS):
        return text
    body = "".join(_escape(c) for c in text)
    return '{{ "' + body + '" }}'


def _escape(c: str) -> str:
    if c in "{}%#\"'\\" or not c.isprintable() or ord(c) > 126:
        return f"\\U{ord(c):08x}" if ord(c) > 0xFFFF else f"\\u{ord(c):04x}"
    return c


def build(low: Lowering, node: StepNode, var: str, task_id: str, eff: EffectiveTask) -> Op:
    from pipecast_airflow.lowering import Op

    kind = low.settings.operator
    if kind == "python":
        if isinstance(node.task.run, ContainerRun) and not low.settings.container_steps_on_host:
            raise UserError(
                Diagnostic(
                    f"airflow: step {node.name!r} is a container step and operator 'python' runs "
                    "steps on the worker",
                    (*node.yaml_path, "run"),
                    hint="set operator: kubernetes or docker, or container_steps_on_host: true",
                    code="unsupported-feature",
                )
            )
        low.operators.add("PythonOperator")
        return Op(
            var,
            "PythonOperator",
            task_id,
            [("python_callable", "code", "_step"), ("op_kwargs", "key", task_id)],
        )
    if not eff.image:
        raise UserError(
            Diagnostic(
                f"airflow: step {node.name!r} needs an image to run with operator {kind!r}",
                node.yaml_path,
                hint="set 'image' on the step or in 'defaults' (an image with the code and pipecast)",
            )
        )
    if kind == "docker":
        _docker_artifacts(low, node)
    plan = stock.plan(low, node, eff)
    if plan is not None and plan.stock:
        return _stock_op(low, node, var, task_id, eff, kind)
    args = [
        "-m",
        "pipecast.runtime",
        "run",
        "--convention",
        "airflow",
        "--spec",
        ("macro", f"pipecast_spec({task_id!r})"),
        "--inputs",
        ("macro", f"pipecast_inputs({task_id!r}, ti, params, run_id)"),
    ]
    if low.settings.artifact_root:
        args += ["--artifact-root", untemplated(low.settings.artifact_root)]
    if kind == "kubernetes":
        return _kubernetes(low, node, var, task_id, eff, ["python"], [*args, "--xcom-file", XCOM_FILE], True)
    return _docker(low, node, var, task_id, eff, ["python", *args, "--xcom-stdout"], True)


def _docker_artifacts(low: Lowering, node: StepNode) -> None:
    """A docker container's files are gone when it exits: artifacts need a mounted folder."""
    uses = any(is_artifact(t) for t in node.task.outputs.values()) or any(
        _reads_artifact(low, ref) for _path, ref in low.index.input_refs(node)
    )
    if uses and not low.settings.artifact_root:
        raise UserError(
            Diagnostic(
                f"airflow: step {node.name!r} reads or writes artifacts, and with operator 'docker' "
                "they are lost when its container exits",
                (*node.yaml_path, "outputs" if node.task.outputs else "inputs"),
                hint="set artifact_root: a folder of the Docker host, mounted at the same path in every "
                "step container (and readable by the workers)",
                code="unsupported-feature",
            )
        )


def _reads_artifact(low: Lowering, ref: Any) -> bool:
    if ref.kind != "step":
        return False
    type_ = low.index.output_type(low.index.nodes[ref.name], ref.key or "") or ""
    return is_artifact(type_.removeprefix("list[").removesuffix("]"))


def _stock_op(low: Lowering, node: StepNode, var: str, task_id: str, eff: EffectiveTask, kind: str) -> Op:
    """A container step that runs its image unchanged (see :mod:`pipecast_airflow.stock_images`)."""
    run = node.task.run
    assert isinstance(run, ContainerRun)
    command, args = stock.argv(low, node, task_id)
    outs = [n for n, t in node.task.outputs.items() if is_artifact(t)]
    out_macros = ["{{ " + f"pipecast_out({task_id!r}, {n!r}, ti, run_id)" + " }}" for n in outs]
    wrapped = bool(node.task.outputs)
    retry = stock.retry_kwargs(low, node, eff)
    if kind == "kubernetes":
        wrapper = ["sh", "-c", untemplated(stock.wrapper(node, "file")), "pipecast-stock", *out_macros]
        op = _kubernetes(
            low,
            node,
            var,
            task_id,
            eff,
            wrapper if wrapped else command,
            [*command, *args] if wrapped else args,
            wrapped,
        )
    else:
        wrapper = ["sh", "-c", untemplated(stock.wrapper(node, "stdout")), "pipecast-stock", *out_macros]
        op = _docker(
            low,
            node,
            var,
            task_id,
            eff,
            [*wrapper, *command, *args] if wrapped else [*command, *args],
            wrapped,
        )
    op.kwargs = [kw for kw in op.kwargs if kw[1:] != ("args", [])] + retry
    op.stock = True
    if eff.env:
        env = {k: stock.jinja_text(v) for k, v in sorted(eff.env.items())}
        op.kwargs.append(("env_vars" if kind == "kubernetes" else "environment", "lit", env))
    return op


def _kubernetes(
    low: Lowering,
    node: StepNode,
    var: str,
    task_id: str,
    eff: EffectiveTask,
    cmds: list[Any],
    arguments: list[Any],
    xcom: bool,
) -> Op:
    from pipecast_airflow.lowering import Op

    low.operators.add("KubernetesPodOperator")
    res = eff.resources
    kwargs: list[tuple[str, str, Any]] = [
        ("name", "lit", task_id.replace(".", "-").replace("_", "-")[:63]),
        ("namespace", "lit", untemplated(low.settings.namespace)),
        ("image", "lit", untemplated(eff.image or "")),
        ("cmds", "args", cmds),
        ("arguments", "args", arguments),
        ("do_xcom_push", "lit", xcom),
        ("get_logs", "lit", True),
    ]
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    if res.cpu is not None:
        requests["cpu"] = limits["cpu"] = str(res.cpu)
    if res.memory_bytes is not None:
        requests["memory"] = limits["memory"] = str(res.memory_bytes)
    if res.gpu:
        limits["nvidia.com/gpu"] = str(res.gpu)
    if requests or limits:
        kwargs.append(("container_resources", "k8s_resources", {"requests": requests, "limits": limits}))
    placement = _placement(low, node, res)
    if placement is not None:
        # Node labels and GPU taints differ per cluster (setting gpu_cluster; the table is
        # in pipecast.gpu_nodes, shared with the other backends that emit pods).
        if placement.node_selector:
            kwargs.append(("node_selector", "lit", placement.node_selector))
        kwargs.append(("tolerations", "k8s_tolerations", placement.tolerations))
    if eff.secrets:
        kwargs.append(
            (
                "secrets",
                "k8s_secrets",
                # The runtime (secret store `env`) reads PIPECAST_SECRET_<NAME> and sets the
                # step's own variable: the value never enters the spec or a rendered field.
                [
                    (env_names(name)[0], name, low.settings.secret_key)
                    for name in sorted(set(eff.secrets.values()))
                ],
            )
        )
    if any(is_artifact(t) for t in node.task.outputs.values()) and not (
        low.settings.artifact_volume_claim and low.settings.artifact_root
    ):
        raise UserError(
            Diagnostic(
                f"airflow: step {node.name!r} writes artifacts; with operator 'kubernetes' set "
                "artifact_root and artifact_volume_claim (a PVC mounted there in every pod)",
                (*node.yaml_path, "outputs"),
            )
        )
    if low.settings.artifact_volume_claim and low.settings.artifact_root:
        kwargs.append(
            (
                "volumes",
                "k8s_volumes",
                (untemplated(low.settings.artifact_volume_claim), low.settings.artifact_root),
            )
        )
    return Op(var, "KubernetesPodOperator", task_id, kwargs)


def _docker(
    low: Lowering, node: StepNode, var: str, task_id: str, eff: EffectiveTask, command: list[Any], xcom: bool
) -> Op:
    from pipecast_airflow.lowering import Op

    low.operators.add("DockerOperator")
    res = eff.resources
    kwargs = [
        ("image", "lit", untemplated(eff.image or "")),
        ("command", "args", command),
        ("docker_url", "lit", low.settings.docker_url),
        ("do_xcom_push", "lit", xcom),
        ("mount_tmp_dir", "lit", False),
    ]
    if res.cpu is not None:
        kwargs.append(("cpus", "lit", float(res.cpu)))
    if res.memory_bytes is not None:
        kwargs.append(("mem_limit", "lit", res.memory_bytes))
    if res.gpu:
        kwargs.append(("device_requests", "docker_gpus", res.gpu))
    if low.settings.artifact_root:
        kwargs.append(("mounts", "docker_mounts", low.settings.artifact_root))
    if eff.secrets:
        raise UserError(
            Diagnostic(
                f"airflow: operator 'docker' cannot pass secrets to step {node.name!r} without putting "
                "them in the task's rendered fields",
                (*node.yaml_path, "secrets"),
                hint="use operator kubernetes (Kubernetes secrets) or python (Airflow Variables)",
                code="unsupported-feature",
            )
        )
    return Op(var, "DockerOperator", task_id, kwargs)
