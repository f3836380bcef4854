"""Resources (SPEC §8) → SageMaker processing instance types, and → AWS Batch requirements.

One table, ordered cheapest first within each family; a step gets the first row that
covers its cpu, memory, gpu count and accelerator. Every type here is in botocore's
``ProcessingInstanceType`` enum (a test checks it). A100 GPUs are not offered for
processing jobs, so ``nvidia-a100``/``nvidia-a100-80gb`` are errors with a hint.

https://aws.amazon.com/sagemaker/pricing/ (instance details)
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingClusterConfig.html
"""

from __future__ import annotations

from pipecast.ir.models import Resources
from pipecast.sizes import Request, Size, smallest

#: A SageMaker processing instance type (``name`` is the ``ml.*`` type).
Instance = Size


# fmt: off
TABLE: tuple[Instance, ...] = (
    # general purpose (4 GiB per vCPU)
    Instance("ml.m5.large", 2, 8), Instance("ml.m5.xlarge", 4, 16), Instance("ml.m5.2xlarge", 8, 32),
    Instance("ml.m5.4xlarge", 16, 64), Instance("ml.m5.12xlarge", 48, 192), Instance("ml.m5.24xlarge", 96, 384),
    # memory optimised (8 GiB per vCPU)
    Instance("ml.r5.large", 2, 16), Instance("ml.r5.xlarge", 4, 32), Instance("ml.r5.2xlarge", 8, 64),
    Instance("ml.r5.4xlarge", 16, 128), Instance("ml.r5.8xlarge", 32, 256), Instance("ml.r5.12xlarge", 48, 384),
    Instance("ml.r5.16xlarge", 64, 512), Instance("ml.r5.24xlarge", 96, 768),
    # NVIDIA T4
    Instance("ml.g4dn.xlarge", 4, 16, 1, "nvidia-t4"), Instance("ml.g4dn.2xlarge", 8, 32, 1, "nvidia-t4"),
    Instance("ml.g4dn.4xlarge", 16, 64, 1, "nvidia-t4"), Instance("ml.g4dn.8xlarge", 32, 128, 1, "nvidia-t4"),
    Instance("ml.g4dn.16xlarge", 64, 256, 1, "nvidia-t4"), Instance("ml.g4dn.12xlarge", 48, 192, 4, "nvidia-t4"),
    # NVIDIA A10G
    Instance("ml.g5.xlarge", 4, 16, 1, "nvidia-a10g"), Instance("ml.g5.2xlarge", 8, 32, 1, "nvidia-a10g"),
    Instance("ml.g5.4xlarge", 16, 64, 1, "nvidia-a10g"), Instance("ml.g5.8xlarge", 32, 128, 1, "nvidia-a10g"),
    Instance("ml.g5.16xlarge", 64, 256, 1, "nvidia-a10g"), Instance("ml.g5.12xlarge", 48, 192, 4, "nvidia-a10g"),
    Instance("ml.g5.24xlarge", 96, 384, 4, "nvidia-a10g"), Instance("ml.g5.48xlarge", 192, 768, 8, "nvidia-a10g"),
    # NVIDIA L4
    Instance("ml.g6.xlarge", 4, 16, 1, "nvidia-l4"), Instance("ml.g6.2xlarge", 8, 32, 1, "nvidia-l4"),
    Instance("ml.g6.4xlarge", 16, 64, 1, "nvidia-l4"), Instance("ml.g6.8xlarge", 32, 128, 1, "nvidia-l4"),
    Instance("ml.g6.16xlarge", 64, 256, 1, "nvidia-l4"), Instance("ml.g6.12xlarge", 48, 192, 4, "nvidia-l4"),
    Instance("ml.g6.24xlarge", 96, 384, 4, "nvidia-l4"), Instance("ml.g6.48xlarge", 192, 768, 8, "nvidia-l4"),
    # NVIDIA V100
    Instance("ml.p3.2xlarge", 8, 61, 1, "nvidia-v100"), Instance("ml.p3.8xlarge", 32, 244, 4, "nvidia-v100"),
    Instance("ml.p3.16xlarge", 64, 488, 8, "nvidia-v100"),
    # NVIDIA H100
    Instance("ml.p5.4xlarge", 16, 256, 1, "nvidia-h100"),
)
# fmt: on

#: A GPU request without an accelerator name gets this one.
DEFAULT_ACCELERATOR = "nvidia-t4"


def pick_instance(res: Resources) -> Instance | None:
    """The cheapest table row that covers ``res`` (no resources: ``ml.m5.large``)."""
    return smallest(TABLE, Request.of(res, DEFAULT_ACCELERATOR))


def batch_requirements(res: Resources) -> list[dict[str, str]]:
    """Batch ``ResourceRequirements``: vCPU (default 1), MiB of memory (default 2048), GPUs."""
    cpu = res.cpu or 1.0
    out = [
        {"Type": "VCPU", "Value": f"{cpu:g}"},
        {"Type": "MEMORY", "Value": str(max(1, (res.memory_bytes or 2 * 1024**3) // 1024**2))},
    ]
    gpu = res.gpu or (1 if res.accelerator else 0)
    if gpu:
        out.append({"Type": "GPU", "Value": str(gpu)})
    return out
