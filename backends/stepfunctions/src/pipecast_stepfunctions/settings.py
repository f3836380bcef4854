"""Target settings of the Step Functions backend (SPEC §11).

Every setting has a default so ``pipecast compile`` works out of the box; the defaults
for account-specific values (role ARN, queue URL, Batch queue, artifact bucket) are
*placeholders*: the compiled files carry them verbatim and the backend reports a warning
naming each one, so nobody deploys ``123456789012`` by accident.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from pipecast.backend import Settings

PLACEHOLDER_ACCOUNT = "123456789012"
PLACEHOLDERS: dict[str, str] = {
    "role_arn": f"arn:aws:iam::{PLACEHOLDER_ACCOUNT}:role/pipecast-placeholder-role",
    "artifact_root": "s3://pipecast-placeholder-bucket/pipecast",
    "queue_url": f"https://sqs.us-east-1.amazonaws.com/{PLACEHOLDER_ACCOUNT}/pipecast-placeholder-queue",
    "batch_job_queue": f"arn:aws:batch:us-east-1:{PLACEHOLDER_ACCOUNT}:job-queue/pipecast-placeholder",
}

Compute = Literal["sagemaker", "batch", "callback"]
MapMode = Literal["auto", "inline", "distributed"]
DagMode = Literal["waits", "barriers"]


class StepFunctionsSettings(Settings):
    """Settings of the ``stepfunctions`` target.

    Attributes:
        role_arn: IAM role the state machine (and SageMaker jobs) run as.
        artifact_root: ``s3://bucket/prefix``; artifacts go under
            ``<artifact_root>/<pipeline>/<execution name>/<step>/...``.
        region: AWS region for ARNs and deploy.
        compute: how task steps run: ``sagemaker`` (processing job ``.sync``), ``batch``
            (``submitJob.sync``) or ``callback`` (SQS message answered by ``pipecast worker``).
        queue_url: SQS queue of the callback compute.
        batch_job_queue: Batch job queue (name or ARN) of the batch compute.
        batch_job_role_arn: optional IAM role of Batch jobs.
        batch_platform: ``EC2`` or ``FARGATE`` job definitions.
        default_image: image for python steps that name none (pipeline or defaults), for
            sagemaker/batch.
        sagemaker_volume_gb: EBS volume per processing instance.
        instance_types: SageMaker instance type per step name, overriding the resources
            table (e.g. ``{"train": "ml.g5.2xlarge"}``).
        map_mode: ``inline``, ``distributed``, or ``auto`` (distributed when the known width of a
            fan-out exceeds ``distributed_map_threshold``).
        distributed_map_threshold: fan-out width above which ``auto`` picks DISTRIBUTED.
        name_prefix: prefix of the state machine name (``<prefix><pipeline>``).
        dag_mode: how steps that nested ``Parallel`` states cannot order exactly (DAGs with an
            "N": ``a->c, b->c, b->d``) are run. ``waits`` (default): no added ordering; such a
            step waits for its extra predecessors through S3 (the role needs ``s3:GetObject``,
            ``s3:PutObject`` and ``s3:ListBucket`` on the artifact root). ``barriers``: pure
            nested ``Parallel`` states, which make some steps wait longer than the DAG says.
        startup_allowance_seconds: how much longer than a step's timeout its SageMaker/Batch
            state may take before Step Functions stops waiting (provisioning and queue time);
            the timeout itself is enforced as run time by the job (``MaxRuntimeInSeconds``,
            ``AttemptDurationSeconds``).
        max_history_events: fail compiling above this estimated number of history events.
        definition_split_bytes: split into child state machines above this definition size.
    """

    role_arn: str = PLACEHOLDERS["role_arn"]
    artifact_root: str = PLACEHOLDERS["artifact_root"]
    region: str = "us-east-1"
    compute: Compute = "sagemaker"
    queue_url: str = PLACEHOLDERS["queue_url"]
    batch_job_queue: str = PLACEHOLDERS["batch_job_queue"]
    batch_job_role_arn: str | None = None
    batch_platform: Literal["EC2", "FARGATE"] = "EC2"
    default_image: str | None = None
    sagemaker_volume_gb: int = Field(30, ge=1, le=16384)
    instance_types: dict[str, str] = Field(default_factory=dict)
    map_mode: MapMode = "auto"
    distributed_map_threshold: int = Field(40, ge=1)
    name_prefix: str = "pipecast-"
    dag_mode: DagMode = "waits"
    startup_allowance_seconds: int = Field(6 * 3600, ge=0)
    max_history_events: int = Field(25_000, ge=100, le=25_000)
    definition_split_bytes: int = Field(1_000_000, ge=10_000, le=1_048_576)

    @field_validator("role_arn")
    @classmethod
    def _role(cls, v: str) -> str:
        if not re.match(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$", v):
            raise ValueError(f"{v!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
        return v

    @field_validator("artifact_root")
    @classmethod
    def _root(cls, v: str) -> str:
        if not re.match(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$", v):
            raise ValueError(f"{v!r} is not an s3:// URI (s3://bucket/prefix)")
        return v.rstrip("/")

    @field_validator("name_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9_-]{0,16}$", v):
            raise ValueError("name_prefix: up to 16 of A-Z a-z 0-9 _ -")
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        if not re.match(r"^[a-z]{2}(-[a-z]+)+-\d$", v):
            raise ValueError(f"{v!r} is not an AWS region (e.g. us-east-1)")
        return v

    @property
    def bucket(self) -> str:
        return self.artifact_root[len("s3://") :].split("/", 1)[0]

    @property
    def prefix(self) -> str:
        rest = self.artifact_root[len("s3://") :].split("/", 1)
        return rest[1] if len(rest) > 1 else ""

    def placeholders_used(self) -> list[str]:
        """Settings left at a placeholder that the chosen compute actually needs."""
        needed = ["role_arn", "artifact_root"]
        if self.compute == "callback":
            needed.append("queue_url")
        if self.compute == "batch":
            needed.append("batch_job_queue")
        return [k for k in needed if getattr(self, k) == PLACEHOLDERS[k]]
