"""The IAM policy and trust policy ``role_arn`` needs: exactly what the compiled machines use.

One role serves as the state machine role, the SageMaker processing role, the EventBridge
Scheduler target role and the Fargate execution role (when no ``batch_job_role_arn``), so
``compile`` writes ``iam-policy.json`` (its permissions) and ``iam-trust-policy.json`` (the
services that assume it), derived from the states actually written:

| used by the machine                  | permissions                                                    | source |
|--------------------------------------|----------------------------------------------------------------|--------|
| ``sagemaker:createProcessingJob.sync`` | ``sagemaker:CreateProcessingJob/DescribeProcessingJob/StopProcessingJob/AddTags``, ``events:PutTargets/PutRule/DescribeRule`` on the managed rule, ``iam:PassRole`` | https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html |
| SageMaker jobs running as the role   | S3 on the artifact root, ECR pull, CloudWatch Logs              | https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html |
| ``batch:submitJob.sync``             | ``batch:SubmitJob/DescribeJobs/TerminateJob``, the managed rule | https://docs.aws.amazon.com/step-functions/latest/dg/batch-iam.html |
| ``sqs:sendMessage.waitForTaskToken`` | ``sqs:SendMessage`` on the queue                                | https://docs.aws.amazon.com/step-functions/latest/dg/sqs-iam.html |
| ``states:startExecution.sync:2``     | ``states:StartExecution`` on the children, ``states:DescribeExecution/StopExecution``, the managed rule | https://docs.aws.amazon.com/step-functions/latest/dg/stepfunctions-iam.html |
| DISTRIBUTED ``Map``                  | ``states:StartExecution`` on the machine itself, ``DescribeExecution/StopExecution`` | https://docs.aws.amazon.com/step-functions/latest/dg/iam-policies-eg-dist-map.html |
| ``aws-sdk:s3:getObject/putObject``   | ``s3:GetObject/PutObject`` under the artifact root; ``s3:ListBucket`` (a missing key is then ``NoSuchKey``, which the waits poll on, not ``AccessDenied``) | https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html |
| schedule                             | ``states:StartExecution`` on the machine; trust ``scheduler.amazonaws.com`` | https://docs.aws.amazon.com/scheduler/latest/UserGuide/setting-up.html#setting-up-execution-role |
| secrets (the runtime in the job)     | ``secretsmanager:GetSecretValue``                               | https://docs.aws.amazon.com/secretsmanager/latest/userguide/auth-and-access.html |
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .settings import StepFunctionsSettings

VERSION = "2012-10-17"


def _resources(definitions: Iterable[dict[str, Any]]) -> tuple[set[str], bool]:
    """The Task resources of every state, and whether a DISTRIBUTED map is used."""
    found: set[str] = set()
    distributed = False
    stack = [d["States"] for d in definitions]
    while stack:
        for st in stack.pop().values():
            if "Resource" in st:
                found.add(st["Resource"])
            for br in st.get("Branches", []):
                stack.append(br["States"])
            if "ItemProcessor" in st:
                stack.append(st["ItemProcessor"]["States"])
                distributed |= st["ItemProcessor"].get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED"
    return found, distributed


def policies(
    definitions: Iterable[dict[str, Any]],
    settings: StepFunctionsSettings,
    *,
    machine_arn: str,
    child_arns: list[str],
    schedule: bool,
    secrets: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(permissions policy, trust policy)`` for ``settings.role_arn``."""
    s = settings
    parts = s.role_arn.split(":")
    partition, account, region = parts[1], parts[4], s.region
    used, distributed = _resources(definitions)
    statements: list[dict[str, Any]] = []
    services = {"states.amazonaws.com"}

    def allow(sid: str, actions: list[str], resources: list[str], **extra: Any) -> None:
        statements.append(
            {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": resources, **extra}
        )

    def managed_rule(name: str) -> str:
        return f"arn:{partition}:events:{region}:{account}:rule/{name}"

    root = f"arn:{partition}:s3:::{s.bucket}" + (f"/{s.prefix}" if s.prefix else "")
    sagemaker = any(r.startswith("arn:aws:states:::sagemaker:") for r in used)
    batch = any(r.startswith("arn:aws:states:::batch:") for r in used)
    fargate_role = batch and s.batch_platform == "FARGATE" and not s.batch_job_role_arn
    s3_actions = sorted(
        {("s3:GetObject" if r.endswith("getObject") else "s3:PutObject") for r in used if ":s3:" in r}
    )
    if sagemaker:
        # The job itself reads its spec and inputs and writes outputs as the same role.
        s3_actions = ["s3:GetObject", "s3:PutObject"]
    if s3_actions:
        allow("ArtifactObjects", s3_actions, [f"{root}/*"])
        allow("ArtifactListing", ["s3:ListBucket"], [f"arn:{partition}:s3:::{s.bucket}"])
    if any(r.startswith("arn:aws:states:::sqs:") for r in used):
        queue = s.queue_url.rstrip("/").split("/")
        allow("CallbackQueue", ["sqs:SendMessage"], [f"arn:{partition}:sqs:{region}:{queue[-2]}:{queue[-1]}"])
    _job_statements(allow, managed_rule, s, sagemaker=sagemaker, batch=batch, services=services)
    if child_arns or distributed:
        _child_statements(allow, managed_rule, machine_arn, child_arns, distributed=distributed)
    if schedule:
        services.add("scheduler.amazonaws.com")
        allow("ScheduledStart", ["states:StartExecution"], [machine_arn])
    if secrets and (sagemaker or fargate_role):
        allow(
            "StepSecrets",
            ["secretsmanager:GetSecretValue"],
            [f"arn:{partition}:secretsmanager:{region}:{account}:secret:*"],
        )
    policy = {"Version": VERSION, "Statement": statements}
    trust = {
        "Version": VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": sorted(services)},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    return policy, trust


def _job_statements(
    allow: Callable[..., None],
    managed_rule: Callable[[str], str],
    s: StepFunctionsSettings,
    *,
    sagemaker: bool,
    batch: bool,
    services: set[str],
) -> None:
    """The statements of SageMaker processing jobs and Batch jobs (and the roles they pass)."""
    partition, account, region = s.role_arn.split(":")[1], s.role_arn.split(":")[4], s.region
    fargate_role = batch and s.batch_platform == "FARGATE" and not s.batch_job_role_arn
    if sagemaker:
        services.add("sagemaker.amazonaws.com")
        jobs = f"arn:{partition}:sagemaker:{region}:{account}:processing-job/*"
        allow(
            "ProcessingJobs",
            [
                "sagemaker:AddTags",
                "sagemaker:CreateProcessingJob",
                "sagemaker:DescribeProcessingJob",
                "sagemaker:StopProcessingJob",
            ],
            [jobs],
        )
        allow(
            "ProcessingJobsSyncRule",
            ["events:DescribeRule", "events:PutRule", "events:PutTargets"],
            [managed_rule("StepFunctionsGetEventsForSageMakerProcessingJobsRule")],
        )
    if batch:
        allow("BatchJobs", ["batch:DescribeJobs", "batch:SubmitJob", "batch:TerminateJob"], ["*"])
        allow(
            "BatchJobsSyncRule",
            ["events:DescribeRule", "events:PutRule", "events:PutTargets"],
            [managed_rule("StepFunctionsGetEventsForBatchJobsRule")],
        )
        if fargate_role:
            services.add("ecs-tasks.amazonaws.com")
    if sagemaker or fargate_role:
        # Image pull and logs of the containers that run as this role.
        allow(
            "ContainerImagesAndLogs",
            [
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetAuthorizationToken",
                "ecr:GetDownloadUrlForLayer",
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
            ],
            ["*"],
        )
    if sagemaker or (batch and s.batch_platform == "FARGATE"):
        passed = ["sagemaker.amazonaws.com"] if sagemaker else []
        if batch and s.batch_platform == "FARGATE":
            passed.append("batch.amazonaws.com")
        roles = sorted({s.role_arn, *([s.batch_job_role_arn] if s.batch_job_role_arn and batch else [])})
        allow(
            "PassRole", ["iam:PassRole"], roles, Condition={"StringEquals": {"iam:PassedToService": passed}}
        )
    elif batch and s.batch_job_role_arn:
        allow("PassRole", ["iam:PassRole"], [s.batch_job_role_arn])


def _child_statements(
    allow: Callable[..., None],
    managed_rule: Callable[[str], str],
    machine_arn: str,
    child_arns: list[str],
    *,
    distributed: bool,
) -> None:
    """The statements of child state machines and DISTRIBUTED map runs."""
    targets = sorted({*child_arns, *([machine_arn] if distributed else [])})
    # .sync:2 children: execution:<child>:<name>; map runs: execution:<machine>/<label>:<name>.
    executions = sorted(
        {a.replace(":stateMachine:", ":execution:") + ":*" for a in child_arns}
        | ({machine_arn.replace(":stateMachine:", ":execution:") + "/*"} if distributed else set())
    )
    allow("ChildExecutions", ["states:StartExecution"], targets)
    allow("ChildExecutionsStatus", ["states:DescribeExecution", "states:StopExecution"], executions)
    if child_arns:
        allow(
            "ChildExecutionsSyncRule",
            ["events:DescribeRule", "events:PutRule", "events:PutTargets"],
            [managed_rule("StepFunctionsGetEventsForStepFunctionsExecutionRule")],
        )
