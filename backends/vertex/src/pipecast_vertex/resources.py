"""Resources and accelerators (SPEC §8) → Vertex container resources.

Vertex AI honours resource *limits* only (requests are ignored), so pipecast's ``cpu`` and
``memory`` become limits, written both in the current string fields
(``resourceCpuLimit``/``resourceMemoryLimit``) and the older numeric ones, as the kfp SDK
does. Accelerators use Vertex's ``AcceleratorType`` names:
https://cloud.google.com/vertex-ai/docs/reference/rest/v1/MachineSpec#acceleratortype
"""

from __future__ import annotations

from typing import Any

from pipecast.ir.models import Resources

#: Portable accelerator name → Vertex AcceleratorType (None: Vertex has no such GPU).
ACCELERATORS: dict[str, str | None] = {
    "nvidia-t4": "NVIDIA_TESLA_T4",
    "nvidia-l4": "NVIDIA_L4",
    "nvidia-a10g": None,  # an AWS-only GPU (g5 instances)
    "nvidia-v100": "NVIDIA_TESLA_V100",
    "nvidia-a100": "NVIDIA_TESLA_A100",
    "nvidia-a100-80gb": "NVIDIA_A100_80GB",
    "nvidia-h100": "NVIDIA_H100_80GB",
}


def supported_accelerators() -> list[str]:
    return [name for name, vertex in ACCELERATORS.items() if vertex]


def _cpu_text(cpu: float) -> str:
    return str(int(cpu)) if float(cpu).is_integer() else repr(float(cpu))


def _memory_text(memory: str | int) -> str:
    # Kubernetes quantities: keep Mi/Gi as written; plain bytes as a number.
    return str(memory)


def container_resources(res: Resources) -> dict[str, Any] | None:
    """The ``resources`` of a PipelineContainerSpec (as JSON data), or ``None``.

    The accelerator must already be checked (see :func:`accelerator_problem`).
    """
    out: dict[str, Any] = {}
    if res.cpu is not None:
        out["cpuLimit"] = float(res.cpu)
        out["resourceCpuLimit"] = _cpu_text(res.cpu)
    if res.memory is not None:
        out["memoryLimit"] = (res.memory_bytes or 0) / 1e9  # the old field is in GB
        out["resourceMemoryLimit"] = _memory_text(res.memory)
    if res.gpu or res.accelerator:
        vertex = ACCELERATORS[res.accelerator or ""]
        count = str(res.gpu or 1)
        out["accelerator"] = {"type": vertex, "count": count, "resourceType": vertex, "resourceCount": count}
    return out or None


def accelerator_problem(res: Resources) -> tuple[str, str] | None:
    """Why Vertex cannot satisfy this request, and what to do; ``None`` when it can."""
    names = ", ".join(supported_accelerators())
    if res.gpu and not res.accelerator:
        return (
            f"{res.gpu} GPU(s) requested without an accelerator type; Vertex needs the GPU model",
            f"add resources.accelerator (one of: {names})",
        )
    if res.accelerator and ACCELERATORS.get(res.accelerator) is None:
        return (
            f"accelerator {res.accelerator!r} is not available on Vertex AI",
            f"use one of: {names}",
        )
    return None
