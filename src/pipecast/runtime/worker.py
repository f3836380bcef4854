"""The Step Functions callback worker: ``pipecast worker --queue-url URL``.

A state machine hands a step to workers with a ``arn:aws:states:::sqs:sendMessage.waitForTaskToken``
task whose message body is (see docs/runtime.md)::

    {"taskToken": "<$$.Task.Token>",
     "spec_uri": "s3://.../<step>-<hash>.json",   (or "spec": the StepSpec object / JSON text)
     "inputs": {"name": value or "s3://..." artifact URI, ...},
     "artifact_prefix": "s3://bucket/prefix/step",
     "envelope": true}   (optional: answer {"outputs": {...}, "attempts": n} instead of the flat
                          outputs, plus "metrics": {output: {name: float}} for a step with
                          Metrics outputs)

The worker long-polls the queue, runs each step with the runtime core and the ``s3``
convention (several at once, so the iterations of a ``Map`` run in parallel), sends
``SendTaskHeartbeat`` (and extends the message's visibility) while a step runs, then answers
``SendTaskSuccess`` with the flat outputs object (parameter values, artifact URIs) or
``SendTaskFailure`` with ``error`` = ``pipecast.StepFailed`` / ``pipecast.Timeout`` /
``pipecast.BadMessage`` / ``pipecast.RuntimeError`` and ``cause`` = the one-line summary; and
deletes the message. boto3 honours ``AWS_ENDPOINT_URL``, the region and credentials.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from typing import Any

from pipecast.runtime.executor import ContainerMode

#: ``cause`` is limited to 32,768 characters by SendTaskFailure; ``error`` to 256.
MAX_CAUSE = 32_768


def _log(message: str) -> None:
    print(f"pipecast worker: {message}", file=sys.stderr, flush=True)


@lru_cache(maxsize=256)
def _fetch_spec(uri: str) -> str:
    """A StepSpec stored on S3. Backends store specs under content-addressed keys (the
    key names the content's hash), so caching by URI is safe across redeploys."""
    from pipecast.runtime import s3io

    bucket, key = s3io.split(uri)
    try:
        body = s3io.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        raise ValueError(f"cannot read the step spec {uri}: {exc}") from None
    return str(body.decode("utf-8"))


def _message_spec(body: dict[str, Any]) -> Any:
    """The StepSpec of a message: ``spec_uri`` (fetched from S3) or an inline ``spec``."""
    from pipecast.runtime.spec import StepSpec

    uri = body.get("spec_uri")
    if uri is not None:
        if not isinstance(uri, str) or not uri.startswith("s3://"):
            raise ValueError(f"'spec_uri' must be an s3:// URI, got {uri!r}")
        return StepSpec.model_validate_json(_fetch_spec(uri))
    raw_spec = body.get("spec")
    if raw_spec is None:
        raise ValueError("the message has neither 'spec_uri' nor 'spec'")
    if isinstance(raw_spec, str):
        return StepSpec.model_validate_json(raw_spec)
    return StepSpec.model_validate(raw_spec)


class Worker:
    """Polls one SQS queue and answers Step Functions task tokens."""

    def __init__(
        self,
        queue_url: str,
        *,
        concurrency: int = 4,
        heartbeat: float = 30.0,
        python_path: Sequence[str] = (),
        containers: ContainerMode = "host",
        wait_seconds: int = 5,
    ) -> None:
        from pipecast.runtime import aws

        self.queue_url = queue_url
        self.concurrency = max(1, concurrency)
        self.heartbeat = max(0.05, heartbeat)
        self.python_path = list(python_path)
        self.containers: ContainerMode = containers
        self.wait_seconds = min(max(wait_seconds, 0), 20)
        self.sqs = aws.client("sqs")
        self.sfn = aws.client("stepfunctions")
        self.handled = 0

    # ----------------------------------------------------------------- polling

    def serve(self, *, idle_exit: float | None = None, max_messages: int | None = None) -> int:
        """Poll until ``idle_exit`` seconds pass with no message and nothing running, or until
        ``max_messages`` messages were received and answered. Returns the messages handled."""
        received = 0
        running: set[Future[None]] = set()
        last_activity = time.monotonic()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="pipecast-step") as pool:
            while max_messages is None or received < max_messages:
                running = {f for f in running if not f.done()}
                if running:
                    last_activity = time.monotonic()
                elif idle_exit is not None and time.monotonic() - last_activity >= idle_exit:
                    break
                free = self.concurrency - len(running)
                if free <= 0:
                    time.sleep(0.02)
                    continue
                wait = self.wait_seconds
                if idle_exit is not None and not running:
                    remaining = idle_exit - (time.monotonic() - last_activity)
                    wait = max(0, min(wait, int(remaining)))
                if running:
                    wait = min(wait, 1)  # come back soon to refill free slots
                limit = free if max_messages is None else min(free, max_messages - received)
                resp = self.sqs.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=max(1, min(10, limit)),
                    WaitTimeSeconds=wait,
                    VisibilityTimeout=self._visibility(),
                )
                messages = resp.get("Messages", [])
                if not messages and wait == 0:
                    time.sleep(0.05)
                for message in messages:
                    received += 1
                    last_activity = time.monotonic()
                    running.add(pool.submit(self.handle, message))
            for future in running:
                future.result()
        return self.handled

    def _visibility(self) -> int:
        return int(max(30, 3 * self.heartbeat))

    # ----------------------------------------------------------------- one message

    def handle(self, message: dict[str, Any]) -> None:
        """Run the step of one message, answer its task token, delete the message."""
        try:
            self._handle(message)
        except Exception as exc:  # never let one message kill the worker
            _log(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            try:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            except Exception as exc:
                _log(f"could not delete message: {exc}")
            self.handled += 1

    def _handle(self, message: dict[str, Any]) -> None:
        from pipecast.runtime.conventions.base import ConventionError
        from pipecast.runtime.conventions.s3 import S3Convention
        from pipecast.runtime.core import StepFailed, run_step

        token: str | None = None
        try:
            body = json.loads(message.get("Body") or "")
            if not isinstance(body, dict):
                raise ValueError("the message body is not a JSON object")
            token = body.get("taskToken")
            if not token:
                raise ValueError("the message has no taskToken")
            spec = _message_spec(body)
            inputs = body.get("inputs") or {}
            if not isinstance(inputs, dict):
                raise ValueError("'inputs' must be a JSON object")
            convention = S3Convention(inputs, body.get("artifact_prefix"))
        except (ValueError, ConventionError) as exc:
            summary = " ".join(str(exc).split())[:2000]
            _log(f"bad message {message.get('MessageId')}: {summary}")
            if token:
                self._answer_failure(token, "pipecast.BadMessage", f"bad pipecast worker message: {summary}")
            return

        _log(f"step {spec.step} started")
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(token, message, stop), daemon=True)
        beat.start()
        try:
            outcome = run_step(spec, convention, python_path=self.python_path, containers=self.containers)
        except StepFailed as exc:
            _log(exc.summary)
            self._answer_failure(token, exc.error_name, exc.summary)
            return
        except Exception as exc:
            summary = f"step {spec.step} failed in the pipecast runtime: {type(exc).__name__}: {exc}"
            _log(summary)
            self._answer_failure(token, "pipecast.RuntimeError", summary)
            return
        finally:
            stop.set()
            beat.join()
        _log(f"step {spec.step} succeeded")
        # "envelope": the state machine also wants the attempt count (retries happen here).
        output: Any = outcome.published
        if body.get("envelope"):
            output = {"outputs": outcome.published, "attempts": outcome.attempts}
            if outcome.metrics is not None:  # SPEC §15: read by conditions and inputs
                output["metrics"] = outcome.metrics
        # Keys in their stored order: a dict a step returns comes back as written (SPEC §22).
        self._send("send_task_success", taskToken=token, output=json.dumps(output))

    def _heartbeat(self, token: str, message: dict[str, Any], stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat):
            self._send("send_task_heartbeat", taskToken=token)
            try:
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=self._visibility(),
                )
            except Exception as exc:
                _log(f"could not extend message visibility: {exc}")

    def _answer_failure(self, token: str, error: str, cause: str) -> None:
        self._send("send_task_failure", taskToken=token, error=error[:256], cause=cause[:MAX_CAUSE])

    def _send(self, method: str, **kwargs: Any) -> None:
        try:
            getattr(self.sfn, method)(**kwargs)
        except Exception as exc:
            # TaskTimedOut / InvalidToken: the execution gave up on this task; nothing to do.
            _log(f"{method} was refused: {type(exc).__name__}: {exc}")
