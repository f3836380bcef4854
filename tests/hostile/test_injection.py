"""Issue 15, items 7-9: strings from the pipeline (and settings) survive as data on every
target: no Jinja in Airflow's templated fields, no KFP placeholders in Vertex, valid ASL for
any string on Step Functions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

#: Strings a careless or hostile pipeline may hold.
CORPUS = [
    "{{ dag_run.conf['img'] }}",
    "{% if true %}evil{% endif %}",
    "{# hidden #}img",
    "registry/img.json",
    "img{{",
    "a}}b{%c",
    "{{$}}",
    "{{$.inputs.parameters['x']}}",
    "{{$.outputs.artifacts['a'].uri}}",
    "{{$.pipeline_job_name}}",
    "line1\nline2 {{$}}",
    "quote \" and ' and \\ back",
    "tab\tand unicode ü ✓ 😀",
    "SELECT *\nFROM t\nWHERE x = '{{ v }}'",
]


def _compile(tmp_path: Path, text: str, target: str, settings: dict) -> dict[str, str]:
    from pipecast import api

    path = tmp_path / "p.yaml"
    path.write_text(text)
    loaded = api.load_checked(path)
    from pipecast import registry

    backend = registry.get(target)
    sets = [f"{k}={v}" for k, v in settings.items()]
    result = api.compile_pipeline(loaded, target, api.load_settings(backend, None, sets))
    return result.files


def _yaml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def test_airflow_templated_fields_render_to_the_text_written(airflow_env, tmp_path):
    steps = "\n".join(
        f"  s{i}: {{run: {{python: 'm:f'}}, image: {_yaml_str(v)}}}" for i, v in enumerate(CORPUS)
    )
    dags = tmp_path / "dags"
    dags.mkdir()
    for operator in ("kubernetes", "docker"):
        text = f"pipecast: 1\nname: inject-{operator}\nsteps:\n{steps}\n"
        settings = {"operator": operator, "artifact_root": "/mnt/{{ run_id }}.json"}
        if operator == "kubernetes":
            settings["namespace"] = "ns-{{ dag_run.conf['img'] }}"
        ((name, dag),) = _compile(tmp_path, text, "airflow", settings).items()
        (dags / name).write_text(dag)
    res = subprocess.run(
        [sys.executable, str(HERE / "airflow_render.py"), str(dags)],
        capture_output=True,
        text=True,
        check=True,
    )
    rendered = json.loads(res.stdout.strip().splitlines()[-1])
    assert "import_errors" not in rendered, rendered
    for operator in ("kubernetes", "docker"):
        for i, value in enumerate(CORPUS):
            fields = rendered[f"inject-{operator}.s{i}"]
            assert fields["image"] == value
            assert fields["artifact_root"] == "/mnt/{{ run_id }}.json"
            if operator == "kubernetes":
                assert fields["namespace"] == "ns-{{ dag_run.conf['img'] }}"


def _vertex_containers(files: dict[str, str]) -> list[dict]:
    import yaml

    (spec,) = [yaml.safe_load(t) for n, t in files.items() if n.endswith(".yaml")]
    return [e["container"] for e in spec["deploymentSpec"]["executors"].values()]


VERTEX = {"project": "p", "region": "us-central1", "pipeline_root": "gs://b/r", "image": "img:1"}


def test_vertex_user_text_holds_no_kfp_placeholder(tmp_path):
    env = "\n".join(f"      V{i}: {_yaml_str(v)}" for i, v in enumerate(CORPUS))
    # Input values are templates: '{{' starts a reference there, so only the others.
    inputs = ", ".join(f"x{i}: {_yaml_str(v)}" for i, v in enumerate(CORPUS) if "{{" not in v)
    text = f"pipecast: 1\nname: inject\nsteps:\n  s:\n    run: {{python: 'm:f'}}\n    inputs: {{{inputs}}}\n    env:\n{env}\n"
    (container,) = _vertex_containers(_compile(tmp_path, text, "vertex", VERTEX))
    strings = [*container["command"], *container["args"], *(e["value"] for e in container.get("env", []))]
    # KFP substitutes every '{{$...}}' in these strings; the only one is pipecast's own.
    assert [s for s in strings if "{{$" in s] == ["{{$}}"]
    args = container["args"]
    spec = json.loads(args[args.index("--spec") + 1])
    assert spec["env"] == {f"V{i}": v for i, v in enumerate(CORPUS)}


def test_vertex_stock_image_refuses_text_kfp_would_substitute(tmp_path):
    from pipecast.diagnostics import UserError

    # (A command's own text cannot hold '{{$': '{{' starts a reference there.)
    text = (
        "pipecast: 1\nname: inject\nsteps:\n  s:\n"
        "    run: {image: 'alpine:3', command: [echo, hi]}\n    env: {X: '{{$}}'}\n"
    )
    with pytest.raises(UserError, match="KFP replaces"):
        _compile(tmp_path, text, "vertex", VERTEX)


def test_stepfunctions_mixed_strings_with_any_text_are_valid_asl(tmp_path):
    from pipecast import registry

    inputs = ", ".join(
        f"x{i}: {_yaml_str(v.replace('{{ v }}', '{{ params.v }}') + ' {{ params.v }}')}"
        for i, v in enumerate(CORPUS)
        if ("{{" not in v and "}}" not in v) or "{{ v }}" in v
    )
    text = (
        "pipecast: 1\nname: inject\nparams:\n  v: {type: str, default: x}\nsteps:\n"
        f"  s:\n    run: {{python: 'm:f'}}\n    inputs: {{{inputs}, sql: \"SELECT *\\nFROM t\\n\\tWHERE x = '{{{{ params.v }}}}'\\n\"}}\n"
    )
    files = _compile(tmp_path, text, "stepfunctions", {})
    problems = registry.get("stepfunctions").validate_output(files)
    assert [d for d in problems if d.severity == "error"] == []
    assert "States.Base64Decode" in "".join(files.values())


def test_azureml_strings_survive_as_data(tmp_path):
    import yaml

    env = "\n".join(f"      V{i}: {_yaml_str(v)}" for i, v in enumerate(CORPUS))
    inputs = ", ".join(
        f"x{i}: {_yaml_str(v)}" for i, v in enumerate(CORPUS) if "{{" not in v and "}}" not in v
    )
    text = (
        "pipecast: 1\nname: inject\nsteps:\n  s:\n    run: {python: 'm:f'}\n"
        f"    inputs: {{{inputs}}}\n    env:\n{env}\n"
    )
    files = _compile(tmp_path, text, "azureml", {"image": "img:1"})
    docs = {name: yaml.safe_load(t) for name, t in files.items() if name.endswith(".yml")}
    dumped = json.dumps(docs, ensure_ascii=False)
    for v in CORPUS:  # every env value comes back unchanged from the YAML the CLI reads
        assert json.dumps(v, ensure_ascii=False)[1:-1] in dumped, v


KUBEFLOW = {"pipeline_root": "s3://b/r", "image": "img:1"}


def _kubeflow_compile(tmp_path: Path, text: str, settings: dict) -> tuple[dict, dict]:
    import yaml

    from pipecast import api, registry

    path = tmp_path / "p.yaml"
    path.write_text(text)
    sfile = tmp_path / "kubeflow.yaml"
    sfile.write_text(yaml.safe_dump(settings, allow_unicode=True))
    backend = registry.get("kubeflow")
    result = api.compile_pipeline(api.load_checked(path), "kubeflow", api.load_settings(backend, sfile))
    (out,) = [t for n, t in result.files.items() if n.endswith(".yaml")]
    assert [d for d in backend.validate_output(result.files) if d.severity == "error"] == []
    spec, platform = yaml.safe_load_all(out)
    return spec, platform


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_kubeflow_user_text_holds_no_kfp_placeholder(tmp_path):
    env = "\n".join(f"      V{i}: {_yaml_str(v)}" for i, v in enumerate(CORPUS))
    inputs = ", ".join(f"x{i}: {_yaml_str(v)}" for i, v in enumerate(CORPUS) if "{{" not in v)
    text = (
        "pipecast: 1\nname: inject\nsteps:\n  s:\n    run: {python: 'm:f'}\n"
        f"    inputs: {{{inputs}}}\n    secrets: {{TOKEN: api-token}}\n    env:\n{env}\n"
        "  c:\n    run: {image: 'alpine:3', command: [echo, hi]}\n    secrets: {T2: other-secret/key.1}\n"
    )
    annotations = {f"example.com/a{i}": v for i, v in enumerate(CORPUS) if "{{" not in v}
    settings = {
        **KUBEFLOW,
        "pod_annotations": annotations,
        "pod_labels": {"team": "ml"},
        "image_pull_secrets": ["regcred"],
    }
    spec, platform = _kubeflow_compile(tmp_path, text, settings)
    containers = [e["container"] for e in spec["deploymentSpec"]["executors"].values()]
    strings = [s for c in containers for s in (*c["command"], *c.get("args", []))]
    strings += [e["value"] for c in containers for e in c.get("env", [])]
    # KFP substitutes every '{{$...}}' in these strings; the only one is pipecast's own.
    assert {s for s in strings if "{{$" in s} == {"{{$}}"}
    (args,) = [c["args"] for c in containers if "--spec" in c.get("args", [])]
    assert json.loads(args[args.index("--spec") + 1])["env"] == {f"V{i}": v for i, v in enumerate(CORPUS)}
    # The PlatformSpec keeps every annotation as the data written, and names exactly what was
    # given.
    configs = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values()
    for config in configs:
        assert config["podMetadata"]["annotations"] == annotations
        assert config["podMetadata"]["labels"] == {"team": "ml"}
        assert [s["secretName"] for s in config["imagePullSecret"]] == ["regcred"]
    secrets = sorted(s["secretName"] for c in configs for s in c.get("secretAsEnv", []))
    assert secrets == ["api-token", "other-secret"]
    assert not [s for s in _strings(platform) if "{{$" in s and s not in CORPUS]


@pytest.mark.parametrize("value", [v for v in CORPUS if v != "registry/img.json"])
def test_kubeflow_refuses_hostile_kubernetes_names(tmp_path, value):
    from pipecast.diagnostics import UserError

    base = "pipecast: 1\nname: inject\nsteps:\n  s:\n    run: {python: 'm:f'}\n"
    cases = [
        (base + f"    secrets: {{T: {_yaml_str(value)}}}\n", KUBEFLOW),
        (base, {**KUBEFLOW, "image_pull_secrets": [value]}),
        (base, {**KUBEFLOW, "pod_labels": {"team": value}}),
        (base, {**KUBEFLOW, "pod_labels": {value: "x"}}),
        (base, {**KUBEFLOW, "pod_annotations": {value: "x"}}),
    ]
    if "{{" in value:  # Argo Workflows replaces '{{...}}' in the pod metadata it is given
        cases.append((base, {**KUBEFLOW, "pod_annotations": {"example.com/a": value}}))
    for text, settings in cases:
        with pytest.raises(UserError):
            _kubeflow_compile(tmp_path, text, settings)
