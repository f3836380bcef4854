"""The runtime CLI and core flow: retries with backoff, timeouts, exit codes, summaries, secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pipecast.runtime.conventions.local import LocalConvention
from pipecast.runtime.core import StepFailed, run_step
from pipecast.runtime.secrets import SecretError, env_names, resolve
from tests.runtime.conftest import PROJECT, make_spec


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipecast.runtime", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=PROJECT,
    )


def test_retries_wait_like_the_simulator_then_succeed(tmp_path):
    counter = tmp_path / "n"
    spec = make_spec(
        "flaky",
        {"n": "int"},
        retry={"attempts": 4, "delay": 0.01, "backoff": 3.0, "max_delay": 0.05},
        inputs=["counter", "succeed_on"],
    )
    waits: list[float] = []
    conv = LocalConvention({"counter": str(counter), "succeed_on": 4})
    outcome = run_step(spec, conv, workdir=tmp_path / "w", python_path=[str(PROJECT)], sleep=waits.append)
    assert outcome.outputs == {"n": 4} and outcome.attempts == 4
    assert waits == pytest.approx([0.01, 0.03, 0.05])  # min(delay * backoff^(n-1), max_delay)


def test_last_attempt_failure_is_reported(tmp_path):
    spec = make_spec(
        "flaky", {"n": "int"}, retry={"attempts": 2, "delay": 0.01}, inputs=["counter", "succeed_on"]
    )
    conv = LocalConvention({"counter": str(tmp_path / "n"), "succeed_on": 5})
    with pytest.raises(StepFailed) as info:
        run_step(spec, conv, workdir=tmp_path / "w", python_path=[str(PROJECT)], sleep=lambda s: None)
    assert str(info.value) == "step s failed: RuntimeError: attempt 2 failed (attempt 2/2)"
    assert info.value.error_name == "pipecast.StepFailed"


def test_without_runtime_retry_one_attempt_only(tmp_path):
    counter = tmp_path / "n"
    conv = LocalConvention({"counter": str(counter), "succeed_on": 2})
    with pytest.raises(StepFailed):
        run_step(
            make_spec("flaky", {"n": "int"}, inputs=["counter", "succeed_on"]),
            conv,
            workdir=tmp_path,
            python_path=[str(PROJECT)],
        )
    assert counter.read_text() == "1"


def test_cli_success_writes_result(tmp_path):
    spec = make_spec(
        "add", {"c": "int"}, inputs={"a": {"type": "int"}, "b": {"type": "int", "value": 5, "literal": True}}
    )
    result = tmp_path / "r.json"
    p = cli(
        "run",
        "--spec",
        spec.to_arg(),
        "--convention",
        "local",
        "--inputs",
        '{"a": 1}',
        "--result",
        str(result),
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(result.read_text()) == {"c": 6}


def test_cli_failure_traceback_and_last_line_summary(tmp_path):
    spec = make_spec("boom", retry={"attempts": 2, "delay": 0.01})
    p = cli("run", "--spec", spec.to_arg(), "--convention", "local")
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert "Traceback (most recent call last):" in p.stderr and 'rt_steps.py", line' in p.stderr
    assert "attempt 1/2 failed: ValueError: bad input; retrying in 0.01s" in p.stderr
    assert lines[-1] == "step s failed: ValueError: bad input (attempt 2/2)"


def test_cli_timeout_exit_code(tmp_path):
    spec = make_spec("sleeps_with_child", timeout=0.3, inputs=["pidfile"])
    p = cli(
        "run",
        "--spec",
        spec.to_arg(),
        "--convention",
        "local",
        "--inputs",
        json.dumps({"pidfile": str(tmp_path / "p")}),
    )
    assert p.returncode == 124
    assert p.stderr.strip().splitlines()[-1] == "step s failed: timed out after 0.3s"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--convention", "nope"], "unknown convention 'nope'; use one of: "),
        (["--convention", "local", "--inputs", "{bad"], "--inputs is not valid JSON"),
    ],
)
def test_cli_usage_errors(args, message):
    p = cli("run", "--spec", make_spec("noop").to_arg(), *args)
    assert p.returncode == 2 and message in p.stderr


def test_cli_bad_spec_and_missing_input():
    p = cli("run", "--spec", '{"pipeline": "p"}', "--convention", "local")
    assert p.returncode == 2 and "invalid --spec" in p.stderr
    spec = make_spec("add", {"c": "int"}, inputs={"a": {"type": "int"}, "b": {"type": "int"}})
    p = cli("run", "--spec", spec.to_arg(), "--convention", "local", "--inputs", '{"a": 1, "z": 2}')
    assert p.returncode == 1 and "unknown input 'z'; the step declares: a, b" in p.stderr


# --------------------------------------------------------------------------- secrets


def test_secrets_env_store_and_masking(tmp_path):
    spec = make_spec("reads_env", {"v": "str"}, secrets={"API_TOKEN": "churn-api-token"}, inputs=["name"])
    log = tmp_path / "log"
    p = cli(
        "run", "--spec", spec.to_arg(), "--convention", "local", "--inputs", '{"name": "API_TOKEN"}',
        "--result", str(tmp_path / "r.json"), "--log", str(log),
        env={"PIPECAST_SECRET_CHURN_API_TOKEN": "hunter2"},
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "r.json").read_text()) == {"v": "hunter2"}  # the step sees it
    assert log.read_text() == "the value is ***\n"  # the log does not


def test_secret_values_are_masked_in_failure_summary():
    spec = make_spec("boom", secrets={"TOK": "tok"}, inputs={"msg": {"type": "str"}})
    p = cli(
        "run", "--spec", spec.to_arg(), "--convention", "local", "--inputs", '{"msg": "leaked s3cr3t-value"}',
        env={"TOK": "s3cr3t-value"},
    )  # fmt: skip
    assert p.returncode == 1
    assert "s3cr3t-value" not in p.stderr and "ValueError: leaked ***" in p.stderr.splitlines()[-1]


def test_missing_secret_names_the_variables(monkeypatch):
    monkeypatch.delenv("NOPE_X", raising=False)
    with pytest.raises(
        SecretError, match=r"secret 'nope-x' is not set; export PIPECAST_SECRET_NOPE_X or NOPE_X"
    ):
        resolve({"A": "nope-x"}, "env")
    assert env_names("a.b-c") == ["PIPECAST_SECRET_A_B_C", "A_B_C"]


def test_aws_secrets_manager_store(aws_env):
    import boto3

    boto3.client("secretsmanager").create_secret(Name="rt-token", SecretString="from-aws")
    assert resolve({"TOKEN": "rt-token"}, "aws") == {"TOKEN": "from-aws"}
    with pytest.raises(SecretError, match="cannot read secret 'rt-missing' from AWS Secrets Manager"):
        resolve({"TOKEN": "rt-missing"}, "aws")


def test_unknown_store_and_missing_sdk():
    with pytest.raises(SecretError, match="unknown secret store 'vault'"):
        resolve({"A": "b"}, "vault")
    try:
        import azure.keyvault.secrets  # noqa: F401
    except ImportError:
        with pytest.raises(SecretError, match="needs azure-keyvault-secrets"):
            resolve({"A": "b"}, "azure")
