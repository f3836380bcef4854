"""Cloud rules (issue 20): what Azure ML enforces on the compiled output, checked on every
example, every conformance case and the probe pipelines (tests/probes).

Schedules: Azure ML cron ignores day-of-month and month ("treated as *") and numbers weekdays
0-6 (https://learn.microsoft.com/azure/machine-learning/how-to-schedule-pipeline-job#cron-expression);
time zones are Windows names from ``azure.ai.ml.constants.TimeZone``
(https://learn.microsoft.com/azure/machine-learning/reference-yaml-schedule). Jobs with
if_else / parallel_for need AZURE_ML_CLI_PRIVATE_FEATURES_ENABLED, and so does the schedule
that creates them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zoneinfo
from pathlib import Path

import pytest
import yaml
from pipecast_azureml.render import PRIVATE
from pipecast_azureml.schedule import IANA_TO_WINDOWS, azure_cron, windows_zone

from pipecast.api import compile_pipeline, load_checked
from pipecast.diagnostics import UserError
from tests.probes import PROBES_DIR, REPO, all_pipelines, ids

pytestmark = pytest.mark.azureml
SETTINGS = {"serverless": True, "image": "example.azurecr.io/steps:1"}


def _timezones() -> set[str]:
    from azure.ai.ml.constants import TimeZone

    return {t.value for t in TimeZone}


def rule_problems(files: dict[str, str]) -> list[str]:
    out: list[str] = []
    private = any(PRIVATE in text for rel, text in files.items() if not rel.endswith(".schedule.yml"))
    for rel, text in files.items():
        if not rel.endswith(".schedule.yml"):
            continue
        doc = yaml.safe_load(text)
        trigger = doc["trigger"]
        _minute, _hour, dom, month, dow = trigger["expression"].split()
        if dom != "*" or month != "*":
            out.append(f"{rel}: cron {trigger['expression']!r} restricts a field Azure ML ignores")
        for n in [int(x) for x in __import__("re").findall(r"\d+", dow.split("/")[0])]:
            if not 0 <= n <= 6:
                out.append(f"{rel}: weekday {n} outside 0-6")
        if trigger["time_zone"] not in _timezones():
            out.append(f"{rel}: time zone {trigger['time_zone']!r} is not an Azure ML TimeZone")
        if private and PRIVATE not in text:
            out.append(f"{rel}: the job needs private features; the schedule file does not say so")
    return out


@pytest.mark.parametrize("path", all_pipelines(), ids=ids)
def test_cloud_rules(path: Path) -> None:
    loaded = load_checked(path)
    try:
        result = compile_pipeline(loaded, "azureml", SETTINGS)
    except UserError as exc:
        assert all(d.code for d in exc.diagnostics), exc.diagnostics  # a named error
        return
    problems = rule_problems(result.files)
    assert not problems, "\n".join(problems)


def test_quarterly_cron_is_a_named_error_and_sunday_seven_is_zero() -> None:
    with pytest.raises(UserError) as exc:
        compile_pipeline(load_checked(PROBES_DIR / "quarterly.yaml"), "azureml", SETTINGS)
    assert [d.code for d in exc.value.diagnostics] == ["unsupported-schedule"]
    assert exc.value.diagnostics[0].path == ("schedule", "cron")
    assert azure_cron("0 2 * * 7") == "0 2 * * 0"
    assert azure_cron("0 2 * * 1-5") == "0 2 * * 1-5"
    assert azure_cron("*/15 1,13 * * 0,6") == "*/15 1,13 * * 0,6"


def test_every_iana_zone_azure_can_express_compiles() -> None:
    """The full CLDR mapping (windowsZones.xml, via tzlocal): every IANA zone whose Windows
    zone Azure ML accepts maps to it."""
    from tzlocal.windows_tz import tz_win

    azure = _timezones()
    expressible = {z for z in zoneinfo.available_timezones() if tz_win.get(z) in azure}
    assert len(expressible) > 500
    for zone in sorted(expressible):
        assert windows_zone(zone) == tz_win[zone], zone
    assert set(IANA_TO_WINDOWS.values()) <= azure
    assert windows_zone("America/Argentina/Buenos_Aires") == "Argentina Standard Time"
    assert windows_zone("America/Indiana/Knox") == "Central Standard Time"


def test_schedule_of_a_control_flow_job_names_the_private_switch() -> None:
    result = compile_pipeline(load_checked(REPO / "examples/churn/pipeline.yaml"), "azureml", SETTINGS)
    assert PRIVATE in result.files["churn-training.schedule.yml"]
    assert any("az ml schedule create" in d.message for d in result.diagnostics)


def test_check_output_has_no_sdk_experimental_chatter(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipecast",
            "compile",
            str(REPO / "examples/churn/pipeline.yaml"),
            "-t",
            "azureml",
            "-o",
            str(tmp_path),
            "--check",
            "--set",
            "serverless=true",
        ],
        capture_output=True,
        text=True,
        env={**os.environ},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "compiled for azureml" in proc.stderr + proc.stdout
    assert "experimental class" not in proc.stderr + proc.stdout
