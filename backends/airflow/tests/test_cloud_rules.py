"""Cloud rules (issue 20): what Airflow and Kubernetes enforce on generated DAG files, checked
on every example, every conformance case and the probe pipelines (tests/probes), for the
python and kubernetes operators and every ``gpu_cluster``.

Rules, each with its source:

* dag_id / task_id: ``[A-Za-z0-9_.-]``, at most 250 characters (``KEY_REGEX`` and
  ``validate_key`` in https://github.com/apache/airflow/blob/main/task-sdk/src/airflow/sdk/definitions/_internal/node.py).
* pod ``name``: an RFC 1123 subdomain name, lowercase (https://kubernetes.io/docs/concepts/overview/working-with-objects/names/).
* node selector labels: key prefix/name and value syntax
  (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set);
  GKE accelerator values from https://cloud.google.com/kubernetes-engine/docs/how-to/gpus.
* no ``retry_exponential_backoff``: a float there fails the serialization schema of Airflow
  3.0-3.2 (boolean); pipecast retries in the runtime instead, on every version.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
from af_helpers import compile_file

from pipecast.diagnostics import UserError
from pipecast.gpu_nodes import CLUSTERS, GKE, GKE_LABEL
from tests.probes import PROBES_DIR, all_pipelines, ids

pytestmark = pytest.mark.airflow

KEY = re.compile(r"^[A-Za-z0-9_.-]{1,250}$")
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _kwargs(tree: ast.AST, func: str) -> list[dict[str, Any]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == func:
            found = {}
            for kw in node.keywords:
                try:
                    found[kw.arg] = ast.literal_eval(kw.value)
                except ValueError:
                    found[kw.arg] = kw.value
            out.append(found)
    return out


def rule_problems(text: str) -> list[str]:
    out: list[str] = []
    tree = ast.parse(text)
    if "retry_exponential_backoff" in text:
        out.append("retry_exponential_backoff is written (boolean-only on Airflow 3.0-3.2)")
    for dag in _kwargs(tree, "DAG"):
        if isinstance(dag.get("dag_id"), str) and not KEY.match(dag["dag_id"]):
            out.append(f"dag_id {dag['dag_id']!r}")
    for call in ("KubernetesPodOperator", "PythonOperator", "EmptyOperator", "DockerOperator"):
        for kw in _kwargs(tree, call):
            tid = kw.get("task_id")
            if isinstance(tid, str) and not KEY.match(tid):
                out.append(f"task_id {tid!r}")
    for pod in _kwargs(tree, "KubernetesPodOperator"):
        name = pod.get("name")
        if isinstance(name, str) and (len(name) > 63 or not DNS1123.match(name)):
            out.append(f"pod name {name!r}")
        for key, value in (pod.get("node_selector") or {}).items():
            prefix, _, label = key.rpartition("/")
            if not LABEL_NAME.match(label) or len(prefix) > 253 or len(value) > 63:
                out.append(f"node selector key {key!r}")
            if not LABEL_VALUE.match(value):
                out.append(f"node selector value {value!r}")
            if key == GKE_LABEL and value not in GKE.values():
                out.append(f"GKE has no accelerator {value!r}")
    return out


SETTINGS = [{"operator": "python"}, *({"operator": "kubernetes", "gpu_cluster": c} for c in CLUSTERS)]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(s.values()))
@pytest.mark.parametrize("path", all_pipelines(), ids=ids)
def test_cloud_rules(path: Path, settings: dict[str, str]) -> None:
    try:
        _name, text = compile_file(path, settings)
    except UserError as exc:
        assert all(d.code for d in exc.diagnostics), exc.diagnostics  # a named error
        return
    problems = rule_problems(text)
    assert not problems, "\n".join(problems)


def test_a10g_is_an_error_on_gke_and_a_label_on_eks(tmp_path: Path) -> None:
    path = PROBES_DIR / "hour_steps.yaml"
    with pytest.raises(UserError) as exc:
        compile_file(path, {"operator": "kubernetes", "gpu_cluster": "gke"})
    (d,) = exc.value.diagnostics
    assert d.code == "unsupported-accelerator" and "nvidia-a10g" in d.message
    assert d.path == ("steps", "b", "resources")
    _n, text = compile_file(path, {"operator": "kubernetes", "gpu_cluster": "eks"})
    assert '"eks.amazonaws.com/instance-gpu-name": "a10g"' in text
    # Azure has no A10G either (its N-series VMs): the same error on AKS, as on Kubeflow.
    with pytest.raises(UserError) as exc:
        compile_file(path, {"operator": "kubernetes", "gpu_cluster": "aks"})
    assert exc.value.diagnostics[0].code == "unsupported-accelerator"
    t4 = tmp_path / "t4.yaml"
    t4.write_text(
        "pipecast: 1\nname: t4\nsteps:\n  a:\n    run: {image: i, command: [echo]}\n"
        "    resources: {gpu: 1, accelerator: nvidia-t4}\n"
    )
    _n, text = compile_file(t4, {"operator": "kubernetes", "gpu_cluster": "aks"})
    assert '"kubernetes.azure.com/accelerator": "nvidia"' in text and 'value="gpu"' in text
    _n, text = compile_file(path, {"operator": "kubernetes", "gpu_cluster": "plain"})
    assert "node_selector" not in text and 'key="nvidia.com/gpu"' in text
