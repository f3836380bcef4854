"""CLI exit codes and output, the no-cloud-SDK rule, JSON Schema, target settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from pipecast.api import load_settings
from pipecast.backend import Settings
from pipecast.cli import main
from pipecast.diagnostics import UserError
from pipecast.schema import component_schema, pipeline_schema

ROOT = Path(__file__).resolve().parents[1]
MALFORMED = ROOT / "tests" / "malformed"
GOOD = """\
pipecast: 1
name: good
params:
  regions: {type: list, default: [eu, us]}
steps:
  fan:
    for_each: "{{ params.regions }}"
    as: region
    steps:
      inner:
        for_each: [1, 2]
        steps:
          work:
            run: {image: alpine, command: [echo, "{{ inputs.r }}", "{{ outputs.o }}"]}
            inputs: {r: "{{ region }}"}
            outputs: {o: str}
"""


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    return path


def test_validate_ok_and_summary(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(good)]) == 0
    out = capsys.readouterr().out
    assert "ok" in out and "1 task step" in out and "fan-out nesting 2" in out


def test_validate_json_report(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--json", str(good), str(MALFORMED / "cycle.yaml")]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [r["ok"] for r in report] == [True, False]
    assert report[1]["diagnostics"][0]["line"] == 4


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nope"]) == 2
    assert main(["compile"]) == 2
    assert main(["--help"]) == 0


def test_debug_shows_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--debug", str(MALFORMED / "cycle.yaml")]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_unknown_target_is_user_error(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", str(good), "--target", "stepfunctionz"]) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_export_round_trip(good: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    assert main(["export", str(good), "-o", str(out)]) == 0
    assert main(["validate", str(out)]) == 0
    assert json.loads(out.read_text())["name"] == "good"


def test_validate_and_help_import_no_cloud_sdk(good: Path) -> None:
    # google_cloud_*-nspkg.pth files create the empty 'google.cloud' namespace at interpreter
    # start-up; only modules imported after that count.
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "from pipecast.cli import main\n"
        f"rc = main(['validate', {str(good)!r}])\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "bad = [m for m in set(sys.modules) - before if m.split('.')[0] in"
        " ('boto3', 'botocore', 'kfp', 'airflow', 'azure', 'google')]\n"
        "print(rc, bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "0 []"


def test_python_m_pipecast(good: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pipecast", "validate", str(MALFORMED / "cycle.yaml")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "dependency cycle: a -> b -> a" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------- schema


def test_schema_accepts_valid_and_rejects_malformed(good: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = pipeline_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    valid = [yaml.safe_load(good.read_text())]
    valid += [
        yaml.safe_load(p.read_text())
        for p in sorted((ROOT / "examples").rglob("*.yaml"))
        if "pipecast:" in p.read_text()
    ]
    components = [d for d in valid if "component" in d]
    for data in valid:
        if "component" not in data:
            assert not list(validator.iter_errors(data))
    # SPEC §16: component files have their own schema (pipecast schema --component).
    comp_validator = jsonschema.Draft202012Validator(component_schema())
    jsonschema.Draft202012Validator.check_schema(component_schema())
    assert components
    for data in components:
        assert not list(comp_validator.iter_errors(data))
    assert list(comp_validator.iter_errors({**components[0], "when": "params.x"}))
    assert list(
        validator.iter_errors({"pipecast": 1, "name": "x", "steps": {"a": {"uses": "c.yaml", "run": {}}}})
    )
    for name in (
        "unknown_top_key.yaml",
        "unknown_step_key.yaml",
        "bad_version.yaml",
        "bad_duration.yaml",
        "bad_accelerator.yaml",
        "bad_pipeline_name.yaml",
        "group_both_kinds.yaml",
        "run_both.yaml",
        "bad_step_name.yaml",
        "reserved_finally.yaml",
        "unknown_param_type.yaml",
    ):
        data = yaml.safe_load((MALFORMED / name).read_text())
        assert list(validator.iter_errors(data)), name


def test_schema_command(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    assert main(["schema", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["$schema"].endswith("2020-12/schema")


# ---------------------------------------------------------------------------- settings


class Inner(BaseModel):
    model_config = {"extra": "forbid"}
    size: int = 1


class DemoSettings(Settings):
    region: str = "eu-west-1"
    retries: int = 0
    network: Inner = Inner()


class Demo:
    name = "demo"
    settings_model = DemoSettings


def test_settings_from_yaml_toml_and_set(tmp_path: Path) -> None:
    y = tmp_path / "s.yaml"
    y.write_text("demo:\n  region: us-east-1\n  network: {size: 2}\n")
    s = load_settings(Demo, y, ["retries=3", "network.size=4"])
    assert (s.region, s.retries, s.network.size) == ("us-east-1", 3, 4)
    t = tmp_path / "s.toml"
    t.write_text('region = "ap-south-1"\n[network]\nsize = 8\n')
    s = load_settings(Demo, t, [])
    assert (s.region, s.network.size) == ("ap-south-1", 8)


def test_settings_errors_name_key_and_nearest() -> None:
    with pytest.raises(UserError) as info:
        load_settings(Demo, None, ["regoin=x", "retries=many", "network.sice=1"])
    text = info.value.render()
    assert "unknown setting 'regoin'" in text and "did you mean 'region'?" in text
    assert "did you mean 'network.size'?" in text
    assert "invalid setting 'retries'" in text
    with pytest.raises(UserError, match="not key=value"):
        load_settings(Demo, None, ["oops"])
