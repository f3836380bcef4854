"""End to end: `pipecast worker` (a real subprocess) answers waitForTaskToken tasks of a state
machine that moto executes, for a succeeding and a failing step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import boto3
import pytest

from tests.runtime.conftest import PROJECT, make_spec

pytestmark = pytest.mark.stepfunctions


def _machine(sfn, queue_url: str, spec, name: str) -> str:
    definition = {
        "StartAt": "Run",
        "States": {
            "Run": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {
                    "QueueUrl": queue_url,
                    "MessageBody": {
                        "taskToken.$": "$$.Task.Token",
                        "spec": json.loads(spec.to_arg()),
                        "inputs": {"a.$": "$.a"},
                        "artifact_prefix": "s3://pipecast-rt-worker/run/step",
                    },
                },
                "End": True,
            }
        },
    }
    return sfn.create_state_machine(
        name=name, definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn"
    )["stateMachineArn"]


def _wait(sfn, arn: str) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        desc = sfn.describe_execution(executionArn=arn)
        if desc["status"] != "RUNNING":
            return desc
        time.sleep(0.1)
    raise AssertionError("the execution did not finish")


def test_worker_answers_task_tokens(aws_env):
    sqs, sfn = boto3.client("sqs"), boto3.client("stepfunctions")
    boto3.client("s3").create_bucket(Bucket="pipecast-rt-worker")
    queue = sqs.create_queue(QueueName="pipecast-rt-worker")["QueueUrl"]
    ok_spec = make_spec(
        "add", {"c": "int"}, inputs={"a": {"type": "int"}, "b": {"type": "int", "value": 2, "literal": True}}
    )
    ok = sfn.start_execution(
        stateMachineArn=_machine(sfn, queue, ok_spec, "rt-ok"), input=json.dumps({"a": 40})
    )["executionArn"]
    bad = sfn.start_execution(
        stateMachineArn=_machine(sfn, queue, make_spec("boom", inputs=["a"]), "rt-bad"),
        input=json.dumps({"a": 1}),
    )["executionArn"]
    worker = subprocess.Popen(
        [sys.executable, "-m", "pipecast.runtime", "worker", "--queue-url", queue, "--idle-exit", "2",
         "--wait", "1", "--heartbeat", "0.2", "--python-path", str(PROJECT)],
        stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )  # fmt: skip
    try:
        done_ok, done_bad = _wait(sfn, ok), _wait(sfn, bad)
    finally:
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert done_ok["status"] == "SUCCEEDED", done_ok
    assert json.loads(done_ok["output"]) == {"c": 42}
    assert done_bad["status"] == "FAILED"
    assert done_bad["error"] == "pipecast.StepFailed"
    # moto 5.2 drops SendTaskFailure's cause (AWS keeps it); the worker logs what it sent.
    assert done_bad.get("cause") in (None, "step s failed: ValueError: bad input")
    assert "pipecast worker: step s failed: ValueError: bad input" in err
    assert "step s succeeded" in err
    # Every message was deleted once answered.
    attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert (
        attrs["ApproximateNumberOfMessages"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
    )
