"""Named errors, pipecast's own checks, settings, time zones, resources, and deploy (offline)."""

from __future__ import annotations

import textwrap

import pytest
import yaml
from azml_helpers import REPO, compile_file

from pipecast.diagnostics import UserError
from pipecast.ir.models import Resources

pytestmark = pytest.mark.azureml


def _write(tmp_path, text, name="p.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


BASE = """
pipecast: 1
name: t
steps:
  a:
    run: {python: "m:f"}
    outputs: {x: int}
  b:
    run: {python: "m:f"}
    inputs: {x: "{{ steps.a.outputs.x }}"}
"""


def test_own_checks_catch_what_the_sdk_misses(tmp_path):
    from pipecast_azureml.checks import check_files

    _l, result = compile_file(_write(tmp_path, BASE))
    files = dict(result.files)
    assert check_files(files) == []
    doc = yaml.safe_load(files["t.yml"])
    doc["jobs"]["b"]["component"]["command"] += " ${{inputs.missing}}"
    doc["jobs"]["a"]["component"]["command"] += "\necho '${{outputs.x}}'"
    doc["jobs"]["b"]["inputs"]["x"] = "${{parent.jobs.nope.outputs.x}}"
    doc["jobs"]["a"]["inputs"] = {"y": "${{parent.jobs.b.outputs.x}}"}
    doc["jobs"]["a"]["component"]["inputs"] = {"y": {"type": "integer"}}
    files["t.yml"] = yaml.safe_dump(doc)
    text = "\n".join(d.message for d in check_files(files))
    assert "${{inputs.missing}} is not a declared input" in text
    assert "no job 'nope'" in text
    assert "puts an Azure ML expression where the shell parses the value" in text
    assert "job 'b' has no output 'x'" in text
    doc["jobs"]["b"]["inputs"]["x"] = "${{parent.jobs.a.outputs.x}}"
    doc["jobs"]["b"]["component"]["outputs"] = {"x": {"type": "integer"}}
    files["t.yml"] = yaml.safe_dump(doc)
    assert any("cycle: " in d.message for d in check_files(files))


def test_job_limit(tmp_path, monkeypatch):
    from pipecast_azureml import compiler

    monkeypatch.setattr(compiler, "MAX_JOBS", 1)
    with pytest.raises(UserError, match="compiles to 2 jobs; an Azure ML pipeline job holds at most 1"):
        compile_file(_write(tmp_path, BASE))


def test_unknown_time_zone_is_named(tmp_path):
    # Volgograd Standard Time is not among the Windows zones Azure ML takes (Asia/Ulaanbaatar,
    # used here before the full CLDR table, now maps to Ulaanbaatar Standard Time).
    path = _write(tmp_path, BASE + "schedule: {cron: '0 3 * * *', timezone: Europe/Volgograd}\n")
    with pytest.raises(UserError) as err:
        compile_file(path)
    diag = err.value.diagnostics[0]
    assert diag.code == "unsupported-timezone" and diag.line is not None


def test_time_zone_table_uses_azure_names():
    from azure.ai.ml.constants import TimeZone
    from pipecast_azureml.schedule import IANA_TO_WINDOWS

    names = {tz.value for tz in TimeZone}
    assert set(IANA_TO_WINDOWS.values()) <= names, set(IANA_TO_WINDOWS.values()) - names


def test_schedule_file(tmp_path):
    _l, result = compile_file(
        _write(tmp_path, BASE + "schedule: {cron: '0 3 * * 1', timezone: Europe/Paris}\n")
    )
    sched = yaml.safe_load(result.files["t.schedule.yml"])
    assert sched["trigger"] == {
        "type": "cron",
        "expression": "0 3 * * 1",
        "time_zone": "Romance Standard Time",
    }
    assert sched["create_job"] == "./t.yml"


def test_resources_table():
    from pipecast_azureml.resources import NoVmSize, pick_vm

    assert pick_vm(Resources(cpu=1, memory="2Gi")).name == "Standard_DS2_v2"
    assert pick_vm(Resources(cpu=4, memory="16Gi")).name == "Standard_DS4_v2"
    assert pick_vm(Resources(gpu=1)).name == "Standard_NC4as_T4_v3"
    assert pick_vm(Resources(gpu=2, accelerator="nvidia-a100")).name == "Standard_NC48ads_A100_v4"
    with pytest.raises(NoVmSize, match="no Azure VM size"):
        pick_vm(Resources(gpu=3, accelerator="nvidia-a100-80gb", cpu=200))
    with pytest.raises(NoVmSize, match="nvidia-l4"):
        pick_vm(Resources(accelerator="nvidia-l4"))


def test_gpu_compute_mapping(tmp_path):
    text = BASE.replace(
        "outputs: {x: int}", "outputs: {x: int}\n    resources: {gpu: 1, accelerator: nvidia-v100}"
    )
    path = _write(tmp_path, text)
    _l, result = compile_file(path, {"computes": {"Standard_NC6s_v3": "gpu-v100"}, "image": "img:1"})
    jobs = yaml.safe_load(result.files["t.yml"])["jobs"]
    assert jobs["a"]["compute"] == "azureml:gpu-v100" and "compute" not in jobs["b"]
    _l, result = compile_file(path, {"image": "img:1"})
    assert "<set computes>" in result.files["t.yml"]
    assert any(d.code == "placeholder" for d in result.diagnostics)


def test_unknown_setting_names_the_nearest(tmp_path):
    with pytest.raises(UserError, match="did you mean 'default_compute'"):
        compile_file(_write(tmp_path, BASE), {"default_comput": "x"})


def test_deploy_builds_the_request_offline(tmp_path):
    from pipecast_azureml.deploy import build_job, build_schedule, deploy

    loaded, result = compile_file(REPO / "examples/dataeng/pipeline.yaml")
    job = build_job(loaded.pipeline, result.files, {"customers": 7})
    rest = job._to_rest_object().as_dict()
    props = rest["properties"]
    assert props["experimentName"] == "daily-sales" and props["settings"]["default_compute"]
    assert props["inputs"]["customers"]["value"] == "7"
    assert set(props["jobs"]) >= {"extract_orders", "audit"}
    schedule = build_schedule(loaded.pipeline, result.files)
    srest = schedule._to_rest_object().as_dict()
    assert srest["properties"]["trigger"]["expression"] == loaded.pipeline.schedule.cron

    calls = []

    class Jobs:
        def create_or_update(self, job, experiment_name=None):
            calls.append(("job", job.display_name, experiment_name))
            return job

    class Schedules:
        def begin_create_or_update(self, schedule):
            calls.append(("schedule", schedule.name))
            return schedule

    class Client:
        jobs, schedules = Jobs(), Schedules()

    out = deploy(loaded.pipeline, result.files, _settings(), client=Client())
    assert calls == [("job", "daily-sales", "daily-sales"), ("schedule", "daily-sales-schedule")]
    assert out["schedule"] == "daily-sales-schedule"


def test_deploy_refuses_placeholders_and_missing_workspace(tmp_path):
    from pipecast_azureml.deploy import deploy

    loaded, result = compile_file(_write(tmp_path, BASE), {})
    with pytest.raises(UserError, match="deploy needs subscription_id, resource_group, workspace"):
        deploy(loaded.pipeline, result.files, _settings(full=False))
    with pytest.raises(UserError, match="placeholder '<set image>'"):
        deploy(loaded.pipeline, result.files, _settings())


def _settings(full=True):
    from pipecast_azureml.settings import AzureMLSettings

    coords = {"subscription_id": "0000", "resource_group": "rg", "workspace": "ws"} if full else {}
    return AzureMLSettings(**coords)


AFTER_CONDITIONAL = """
pipecast: 1
name: t
params: {go: {type: bool, default: false}}
steps:
  gate:
    when: "params.go"
    run: {python: "m:f"}
  later:
    run: {python: "m:f"}
    after: [gate]
"""


def test_after_a_conditional_step_waits_for_its_gated_job(tmp_path):
    """A step-level ``when`` is a one-step when-group (SPEC §3.1; issue 14), gated like one:
    its job always starts (the runtime skips it on a closed gate), so ``after`` binds to a job
    that always completes, never to a job inside an ``if_else`` branch."""
    import yaml

    _loaded, result = compile_file(_write(tmp_path, AFTER_CONDITIONAL))
    jobs = yaml.safe_load(result.files["t.yml"])["jobs"]
    assert "gate__if" not in jobs
    assert jobs["gate"]["inputs"]["pipecast_gate"] == "${{parent.jobs.gate__cond.outputs.result}}"
    assert jobs["later"]["inputs"]["after__gate"] == "${{parent.jobs.gate.outputs.pipecast_done}}"
