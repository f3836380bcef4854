"""boto3 for the runtime's AWS uses (S3 artifacts, the SQS callback worker, Secrets Manager).

boto3 is the ``aws`` extra of pipecast (``pip install 'pipecast[aws]'``), imported only when a
step uses AWS, so a step image for another target does without it.
"""

from __future__ import annotations

from typing import Any


def client(service: str) -> Any:
    """A boto3 client (honours ``AWS_ENDPOINT_URL``, the region and credentials).

    Raises:
        ModuleNotFoundError: boto3 is missing; the message names the extra to install.
    """
    try:
        import boto3
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"the pipecast runtime needs boto3 for {service}: pip install 'pipecast[aws]' in the step image",
            name="boto3",
        ) from None
    return boto3.client(service)
