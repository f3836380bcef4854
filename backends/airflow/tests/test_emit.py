"""Compile-time properties of generated DAG files (no Airflow import needed)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from af_helpers import CASES, REPO, compile_file

from pipecast.diagnostics import UserError

pytestmark = pytest.mark.airflow

HERE = Path(__file__).parent
EXAMPLES = sorted((REPO / "examples").glob("*/pipeline.yaml"))
CASE_FILES = sorted(CASES.glob("*.yaml"))
#: Cases compile refuses with a located error on Airflow (catalogue.py EXCEPTIONS, stage compile).
UNSUPPORTED: set[str] = set()
#: Pipelines the compile fixture found using a feature Airflow declares unsupported.
DECLARED_UNSUPPORTED: set[str] = set()
PIPELINES = [
    *EXAMPLES,
    *(p for p in CASE_FILES if p.stem not in UNSUPPORTED),
    HERE / "pipelines" / "hostile.yaml",
]
STDLIB = set(sys.stdlib_module_names)
#: Top-level imports allowed in a generated file: Airflow, the standard library, pendulum
#: (Airflow's own time library); the kubernetes/docker clients only in files using them.
ALLOWED = {"airflow", "pendulum", "__future__"}


def _ids(p: Path) -> str:
    return p.parent.name if p.name == "pipeline.yaml" else p.stem


def _top_imports(text: str) -> set[str]:
    tree = ast.parse(text)
    out = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            out.add((node.module or "").split(".")[0])
    return out


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    out_dir = tmp_path_factory.mktemp("compiled")
    files = {}
    for path in PIPELINES:
        for operator in ("python", "kubernetes", "docker"):
            settings = {"operator": operator}
            if operator != "python":
                settings |= {"artifact_root": "/mnt/artifacts", "artifact_volume_claim": "artifacts"}
            try:
                name, text = compile_file(path, settings)
            except UserError as exc:
                if "target 'airflow' does not support" in str(exc):
                    # A feature Airflow declares unsupported (SPEC §13): the conformance
                    # suite's test_unsupported checks the named error; nothing to emit.
                    DECLARED_UNSUPPORTED.add(_ids(path))
                    continue
                # Container operators refuse some settings by name (e.g. docker + secrets).
                assert operator != "python", exc
                assert "target 'airflow'" in str(exc)
                continue
            target = out_dir / operator / name
            target.parent.mkdir(exist_ok=True)
            target.write_text(text)
            files[f"{_ids(path)}/{operator}"] = (target, text)
    return files


def test_every_pipeline_compiles_with_operator_python(compiled):
    # nested for_each included (flattened); only declared-unsupported features are left out
    expected = {f"{_ids(p)}/python" for p in PIPELINES if _ids(p) not in DECLARED_UNSUPPORTED}
    assert expected <= set(compiled)


def test_ruff_check_and_format_pass(compiled):
    folders = sorted({str(path.parent) for path, _ in compiled.values()})
    ruff = [sys.executable, "-m", "ruff"]
    check = subprocess.run(
        [*ruff, "check", "--isolated", "--extend-select", "I", *folders], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout[-3000:]
    fmt = subprocess.run(
        [*ruff, "format", "--isolated", "--check", "--diff", *folders], capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout[-3000:]


def test_top_level_imports_are_airflow_and_stdlib_only(compiled):
    for key, (_path, text) in compiled.items():
        imports = _top_imports(text) - STDLIB - ALLOWED
        if key.endswith("/kubernetes"):
            imports -= {"kubernetes"}
        if key.endswith("/docker"):
            imports -= {"docker"}
        assert imports == set(), key
        assert "pipecast" not in _top_imports(text)
        assert ("kubernetes" in _top_imports(text)) == ("KubernetesPodOperator" in text), key


def test_safe_mode_discovery_markers(compiled):
    for _path, text in compiled.values():
        assert "airflow" in text and "DAG" in text


def test_output_is_byte_deterministic():
    path = CASES / "for_each.yaml"
    assert compile_file(path)[1] == compile_file(path)[1]


def test_airflow_2_imports():
    _name, text = compile_file(CASES / "when_in_for_each.yaml", {"airflow_version": "2"})
    assert "from airflow.models.dag import DAG" in text
    assert "from airflow.operators.python import" in text
    assert "airflow.sdk" not in text and "airflow.providers.standard" not in text
    compile(text, "dag.py", "exec")


def test_retry_mapping():
    _name, text = compile_file(REPO / "examples" / "churn" / "pipeline.yaml", lenient=True)
    # attempts 3, delay 10s, backoff 2, max 5m (SPEC §6): the runtime retries with exact
    # timing, so no Airflow retry field is set and the spec carries the policy.
    assert "retries=" not in text and "retry_exponential_backoff" not in text
    assert '"retry":{"attempts":3,"delay":10.0,"jitter":true,"max_delay":300.0}' in text
    # timeout 1h per attempt: enforced by the runtime; execution_timeout is the backstop over
    # 3 attempts and the 10 s + 20 s waits between them, plus 60 s.
    assert "execution_timeout=datetime.timedelta(seconds=10890.0)," in text


def test_nested_for_each_next_to_other_steps_compiles_to_stages(tmp_path):
    # The inner loop's reader runs in a second mapped task group over the outer items.
    src = tmp_path / "p.yaml"
    src.write_text(
        "pipecast: 1\nname: p\nsteps:\n  o:\n    for_each: [1, 2]\n    steps:\n"
        "      a:\n        run: {python: 'm:f'}\n"
        "      i:\n        for_each: [3]\n        as: j\n        after: [a]\n        steps:\n"
        "          b:\n            run: {python: 'm:f'}\n"
        "      c:\n        run: {python: 'm:f'}\n        after: [i]\n"
    )
    _name, text = compile_file(src, lenient=False)
    assert '@task_group(group_id="o")' in text and '@task_group(group_id="o-s1")' in text
    assert '@task_group(group_id="i")' in text
    assert "g_o >> i_i" in text and "d_i >> g1_o" in text and "i_o >> i_i" in text


def _nested_error(tmp_path, text: str) -> Any:
    src = tmp_path / "p.yaml"
    src.write_text(text)
    with pytest.raises(UserError) as err:
        compile_file(src, lenient=False)
    (diag,) = err.value.diagnostics
    return diag


def test_for_each_in_a_when_group_of_a_loop_is_a_named_error(tmp_path):
    diag = _nested_error(
        tmp_path,
        "pipecast: 1\nname: p\nsteps:\n  o:\n    for_each: [1, 2]\n    steps:\n"
        "      w:\n        when: 'item > 1'\n        steps:\n"
        "          i:\n            for_each: [3]\n            as: j\n            steps:\n"
        "              b:\n                run: {python: 'm:f'}\n",
    )
    assert "for_each 'i' is inside the 'when' group 'w'" in diag.message and diag.line == 10
    assert diag.code == "unsupported-feature"


def test_finally_of_a_nested_for_each_is_a_named_error(tmp_path):
    # Not silently dropped: the nested lowering has no per-outer-item place for it yet.
    diag = _nested_error(
        tmp_path,
        "pipecast: 1\nname: p\nsteps:\n  o:\n    for_each: [1, 2]\n    steps:\n"
        "      i:\n        for_each: [3]\n        as: j\n        steps:\n"
        "          b:\n            run: {python: 'm:f'}\n"
        "        finally:\n          run: {python: 'm:f'}\n",
    )
    assert "for_each 'i' inside a for_each has its own 'finally'" in diag.message and diag.line == 13


def _write_subpipeline(tmp_path: Path, body: str) -> None:
    (tmp_path / "sub.yaml").write_text(
        "pipecast: 1\nname: sub\nparams:\n  x: {type: int}\nsteps:\n" + body + "outputs:\n"
        "  value: '{{ steps.a.outputs.output }}'\nfinally:\n  run: {python: 'm:f'}\n"
        "  inputs: {s: '{{ pipeline.status }}'}\n"
    )


def test_subpipeline_with_finally_is_its_tasks_a_join_and_the_group_finally(tmp_path):
    # SPEC §17-§18: not inlined (its finally follows its steps); what waits for it waits for its
    # end task, what feeds it points at its first task, its output is read where it is made.
    _write_subpipeline(
        tmp_path,
        "  a:\n    run: {python: 'm:f'}\n    inputs: {x: '{{ params.x }}'}\n    outputs: {output: int}\n"
        "  b:\n    run: {python: 'm:f'}\n    after: [a]\n",
    )
    src = tmp_path / "p.yaml"
    src.write_text(
        "pipecast: 1\nname: p\nsteps:\n"
        "  first:\n    run: {python: 'm:f'}\n    outputs: {output: int}\n"
        "  job:\n    uses: ./sub.yaml\n    inputs: {x: '{{ steps.first.outputs.output }}'}\n"
        "  last:\n    run: {python: 'm:f'}\n    inputs: {v: '{{ steps.job.outputs.value }}'}\n"
    )
    _name, text = compile_file(src, lenient=False)
    tree = ast.parse(text)
    tasks = {
        kw.value.value: {k.arg: getattr(k.value, "value", None) for k in call.keywords}
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        for kw in call.keywords
        if kw.arg == "task_id" and isinstance(kw.value, ast.Constant)
    }
    assert {"job__a", "job__b", "job-join", "job-finally", "job-end"} <= set(tasks)
    assert tasks["job-join"]["trigger_rule"] == "none_failed_min_one_success"
    assert tasks["job-finally"]["trigger_rule"] == "all_done"
    assert tasks["job-end"]["trigger_rule"] == "none_failed_min_one_success"
    for edge in (
        "t_first >> t_job__a",
        "t_job__b >> j_job",
        "j_job >> f_job",
        "f_job >> e_job",
        "e_job >> t_last",
    ):
        assert edge in text, edge
    # The reader of the group's output reads job__a's XCom; the finally reads its group's states.
    assert '"xcom":"job__a"' in text
    assert '"group":{"same_index":false,"tasks":["job-join","job__a","job__b"]}' in text


def test_for_each_in_a_subpipeline_with_finally_in_a_loop_is_a_named_error(tmp_path):
    _write_subpipeline(
        tmp_path,
        "  a:\n    run: {python: 'm:f'}\n    outputs: {output: int}\n"
        "  i:\n    for_each: [1]\n    steps:\n      c:\n        run: {python: 'm:f'}\n",
    )
    diag = _nested_error(
        tmp_path,
        "pipecast: 1\nname: p\nsteps:\n  o:\n    for_each: [1, 2]\n    as: row\n    steps:\n"
        "      job:\n        uses: ./sub.yaml\n        inputs: {x: '{{ row }}'}\n",
    )
    assert "for_each 'i' of the pipeline that step 'job' uses is inside it, inside a for_each" in diag.message
    assert diag.line == 8
    assert "drop the called pipeline's 'finally'" in (diag.hint or "")
    assert diag.code == "unsupported-feature"


def test_parallelism_over_stages_is_a_named_error(tmp_path):
    diag = _nested_error(
        tmp_path,
        "pipecast: 1\nname: p\nsteps:\n  o:\n    for_each: [1, 2]\n    parallelism: 1\n    steps:\n"
        "      a:\n        run: {python: 'm:f'}\n"
        "      i:\n        for_each: [3]\n        as: j\n        steps:\n          b:\n            run: {python: 'm:f'}\n",
    )
    assert "'parallelism' of 'o'" in diag.message and diag.line == 6


def test_container_step_with_operator_python_can_be_an_error():
    with pytest.raises(UserError, match="container step"):
        compile_file(CASES / "container.yaml", {"container_steps_on_host": False})


def test_hostile_values_stay_data(compiled):
    _path, text = compiled["hostile/python"]
    tree = ast.parse(text)
    # Nothing but the fixed callables and the DAG: no call to anything the pipeline named.
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert "__import__" not in names and "os" not in names
    from pipecast.api import load_checked

    pipeline = load_checked(HERE / "pipelines" / "hostile.yaml").pipeline
    consts = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert pipeline.description in consts
    assert pipeline.params["text"].default in consts
    assert pipeline.params["text"].description in consts


def test_kubernetes_operator_maps_resources_and_accelerators(compiled):
    _path, text = compiled["churn/kubernetes"]
    assert "KubernetesPodOperator(" in text
    assert '"nvidia.com/gpu": "1"' in text
    assert '"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"' in text
    assert "{{ pipecast_inputs(" in text


def test_any_backoff_compiles_without_lenient(tmp_path):
    # SPEC §6 with a factor Airflow cannot express (3): the runtime retries, so no approximation.
    src = tmp_path / "p.yaml"
    src.write_text(
        "pipecast: 1\nname: p\nsteps:\n  a:\n    run: {python: 'm:f'}\n"
        "    retry: {attempts: 4, delay: 2s, backoff: 3.0, max_delay: 10s}\n"
    )
    _name, text = compile_file(src, lenient=False)
    assert '"retry":{"attempts":4,"backoff":3.0,"delay":2.0,"max_delay":10.0}' in text
    assert "retries=" not in text


def test_cache_with_container_operator_needs_artifact_root(tmp_path):
    from pipecast.api import compile_pipeline, load_checked

    src = tmp_path / "p.yaml"
    src.write_text(
        "pipecast: 1\nname: c\ndefaults: {image: 'img:1'}\nsteps:\n"
        "  s:\n    run: {python: 'm:f'}\n    cache: true\n"
    )
    loaded = load_checked(src)
    result = compile_pipeline(loaded, "airflow", {"operator": "docker"})
    assert any(d.code == "cache" and "artifact_root" in d.message for d in result.diagnostics)
    ok = compile_pipeline(loaded, "airflow", {"operator": "docker", "artifact_root": "/mnt/a"})
    assert not any(d.code == "cache" for d in ok.diagnostics)
    assert '"store":"/mnt/a/.pipecast-cache/c"' in next(iter(ok.files.values()))
