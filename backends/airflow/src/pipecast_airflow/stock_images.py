"""Container steps on stock images with the kubernetes and docker operators (SPEC §21).

The operator runs the step's own command in its image; nothing of pipecast is inside it:

* ``{{ inputs.X }}`` becomes a Jinja macro of the DAG, ``pipecast_arg(...)``, which Airflow
  renders on the worker before the task starts (a parameter's text, an artifact's path under
  ``artifact_root``); a literal input is written into the argument as text. Macro results are
  not rendered again, so a ``{{`` inside a value stays data; user text that looks like Jinja
  renders to itself (``operators.untemplated``).
* ``{{ outputs.Y }}``: an artifact's path under ``artifact_root`` (macro ``pipecast_out``,
  the same folder the runtime would use, on the volume every container mounts), a parameter's
  file under :data:`OUTPUTS_DIR` in the container.
* A step with outputs runs under a thin ``sh`` wrapper (POSIX ``sh``, ``mkdir``, ``base64``,
  ``tr``: in every Debian, Ubuntu, Alpine and busybox image): it prepares the output folders,
  runs the command, and hands the outputs to the operator's own XCom mechanism
  (https://airflow.apache.org/docs/apache-airflow-providers-cncf-kubernetes/stable/operators.html#how-does-xcom-work
  ``/airflow/xcom/return.json`` for KubernetesPodOperator; the last line of output for
  DockerOperator, https://airflow.apache.org/docs/apache-airflow-providers-docker/stable/_api/airflow/providers/docker/operators/docker/index.html).
  Each output travels as ``[type, base64 of its file's text]`` under the key ``-stock``, so no
  shell has to escape JSON; the runtime's XCom reader decodes it
  (:func:`pipecast.runtime.conventions.airflow.decode_stock`).
* Retries are Airflow's (``retries``, ``retry_delay``, ``retry_exponential_backoff``,
  ``max_retry_delay``), a timeout is ``execution_timeout`` per try.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipecast import stock
from pipecast.diagnostics import Diagnostic
from pipecast.ir.models import ContainerRun
from pipecast.ir.values import is_artifact
from pipecast.passes.analysis import EffectiveTask, StepNode

if TYPE_CHECKING:
    from pipecast.ir.refs import Ref
    from pipecast_airflow.lowering import Lowering

#: Where a stock command writes its parameter outputs, inside the container.
OUTPUTS_DIR = "/tmp/pipecast-outputs"
XCOM_FILE = "/airflow/xcom/return.json"


def plan(low: Lowering, node: StepNode, eff: EffectiveTask) -> stock.StockPlan | None:
    """Whether a container step runs its image unchanged with this operator (``None``: python)."""

    def reasons(run: ContainerRun) -> list[str]:
        out = []
        if eff.secrets:
            out.append(stock.SECRETS_REASON)
        if eff.cache:
            out.append("Airflow has no result cache: the runtime keeps it (SPEC §20)")
        if eff.retry.attempts > 1 and eff.retry.backoff not in (1.0, 2.0):
            out.append("Airflow's retry backoff is 1 or 2: the runtime retries")
        return out

    def input_reason(slot: stock.Slot, ref: Ref) -> str | None:
        if ref.kind == "step":
            type_ = low.index.output_type(low.index.nodes[ref.name], ref.key or "") or ""
            if type_.startswith("list[") and is_artifact(type_[5:-1]):
                return f"input {slot.name!r} is a list of artifacts (no single local path)"
        return None

    return stock.plan(low.plans, node, reasons, input_reason)


def jinja_text(text: str) -> str:
    """User text inside a templated field, rendering to exactly itself (see
    :func:`pipecast_airflow.operators.untemplated`)."""
    from pipecast_airflow.operators import untemplated

    return untemplated(text)


def argv(low: Lowering, node: StepNode, task_id: str) -> tuple[list[str], list[str]]:
    """``command`` and ``args`` with each slot a macro, a path or a literal's text."""
    run = node.task.run
    assert isinstance(run, ContainerRun)

    def fill(slot: stock.Slot) -> str:
        if slot.kind == "outputs":
            if is_artifact(node.task.outputs[slot.name]):
                return "{{ " + f"pipecast_out({task_id!r}, {slot.name!r}, ti, run_id)" + " }}"
            return f"{OUTPUTS_DIR}/{slot.name}"
        value = node.task.inputs[slot.name]
        if stock.input_kind(value) == "literal":
            return jinja_text(stock.literal_text(value))
        return "{{ " + f"pipecast_arg({task_id!r}, {slot.name!r}, ti, params, run_id)" + " }}"

    return stock.render_args(run.command, fill, jinja_text), stock.render_args(run.args, fill, jinja_text)


def wrapper(node: StepNode, sink: str) -> str:
    """The ``sh`` script that runs ``"$@"`` and hands the outputs over (see the module doc).

    Its own arguments come first: one path per artifact output, in declaration order. ``sink``
    is ``file`` (KubernetesPodOperator) or ``stdout`` (DockerOperator). Output names match
    ``^[a-z_][a-z0-9_]*$`` and types are pipecast type names: nothing here needs quoting.
    """
    outputs = node.task.outputs
    artifacts = [n for n, t in outputs.items() if is_artifact(t)]
    lines = ["o=" + OUTPUTS_DIR, 'rm -rf "$o" && mkdir -p "$o" || exit 1']
    for i in range(len(artifacts)):
        lines += [f'a{i}="$1"; shift', f'rm -rf "$a{i}"; mkdir -p "$(dirname "$a{i}")" || exit 1']
    lines.append('"$@" || exit $?')
    lines.append("b() { base64 | tr -d '\\n'; }")
    fmt_parts: list[str] = []
    values: list[str] = []
    for name, type_ in sorted(outputs.items()):
        if is_artifact(type_):
            i = artifacts.index(name)
            lines.append(
                f'[ -e "$a{i}" ] || {{ echo "pipecast: the command wrote no artifact output {name}" >&2; exit 1; }}'
            )
            fmt_parts.append(f'"{name}":["{type_}","%s"]')
            values.append(f'"$(printf %s "$a{i}" | b)"')
        else:
            lines.append(
                f'[ -f "$o/{name}" ] || {{ echo "pipecast: the command wrote no parameter output {name}" >&2; '
                "exit 1; }"
            )
            fmt_parts.append(f'"{name}":["{type_}","%s"]')
            values.append(f'"$(b < "$o/{name}")"')
    fmt = '{"-stock":{' + ",".join(fmt_parts) + "}}\\n"
    target = f" > {XCOM_FILE} || exit 1" if sink == "file" else " || exit 1"
    lines.append(f"printf '{fmt}' " + " ".join(values) + target)
    return "\n".join(lines)


def retry_kwargs(low: Lowering, node: StepNode, eff: EffectiveTask) -> list[tuple[str, str, Any]]:
    """Airflow's own retry fields (https://airflow.apache.org/docs/apache-airflow/stable/
    core-concepts/tasks.html#retries) and a per-try ``execution_timeout``."""
    out: list[tuple[str, str, Any]] = []
    retry = eff.retry
    if retry.attempts > 1:
        out += [("retries", "lit", retry.attempts - 1), ("retry_delay", "seconds", retry.delay)]
        if retry.backoff == 2.0:
            out += [
                ("retry_exponential_backoff", "lit", True),
                ("max_retry_delay", "seconds", retry.max_delay),
            ]
        if retry.jitter or retry.backoff == 2.0:
            low.warnings.append(
                Diagnostic(
                    f"airflow: step {node.name!r} runs its image unchanged and retries with Airflow's "
                    "own timing (its exponential backoff adds its own jitter; SPEC §6 jitter is "
                    "best-effort)",
                    node.yaml_path,
                    severity="warning",
                    code="retry-approximated",
                )
            )
    if eff.timeout is not None:
        out.append(("execution_timeout", "seconds", eff.timeout))
    return out
