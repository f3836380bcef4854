"""Step resources (SPEC §8) → an Azure VM size → a compute target: the one documented table.

Azure ML runs a command job on a compute target (a cluster with one VM size) or, on
serverless compute, on ``resources.instance_type``. pipecast picks the smallest VM size of
the table below that satisfies ``cpu``, ``memory``, ``gpu`` and ``accelerator``; the
settings then map that size to a compute target (``computes``), or the job runs serverless.

VM sizes: https://learn.microsoft.com/azure/virtual-machines/sizes/overview
GPU sizes: https://learn.microsoft.com/azure/virtual-machines/sizes/gpu-accelerated/nc-family
"""

from __future__ import annotations

from pipecast.ir.models import Resources
from pipecast.sizes import Request, Size, smallest

#: An Azure VM size (``name``: ``Standard_...``).
VmSize = Size


#: Smallest first within each family; the first size that fits wins.
TABLE: tuple[VmSize, ...] = (
    VmSize("Standard_DS2_v2", 2, 7),
    VmSize("Standard_DS3_v2", 4, 14),
    VmSize("Standard_DS4_v2", 8, 28),
    VmSize("Standard_DS5_v2", 16, 56),
    VmSize("Standard_E16s_v3", 16, 128),
    VmSize("Standard_E32s_v3", 32, 256),
    VmSize("Standard_E64s_v3", 64, 432),
    VmSize("Standard_NC4as_T4_v3", 4, 28, 1, "nvidia-t4"),
    VmSize("Standard_NC8as_T4_v3", 8, 56, 1, "nvidia-t4"),
    VmSize("Standard_NC16as_T4_v3", 16, 110, 1, "nvidia-t4"),
    VmSize("Standard_NC64as_T4_v3", 64, 440, 4, "nvidia-t4"),
    VmSize("Standard_NC6s_v3", 6, 112, 1, "nvidia-v100"),
    VmSize("Standard_NC12s_v3", 12, 224, 2, "nvidia-v100"),
    VmSize("Standard_NC24s_v3", 24, 448, 4, "nvidia-v100"),
    VmSize("Standard_NC24ads_A100_v4", 24, 220, 1, "nvidia-a100"),
    VmSize("Standard_NC48ads_A100_v4", 48, 440, 2, "nvidia-a100"),
    VmSize("Standard_NC96ads_A100_v4", 96, 880, 4, "nvidia-a100"),
    VmSize("Standard_ND96amsr_A100_v4", 96, 1900, 8, "nvidia-a100-80gb"),
    VmSize("Standard_NC40ads_H100_v5", 40, 320, 1, "nvidia-h100"),
    VmSize("Standard_NC80adis_H100_v5", 80, 640, 2, "nvidia-h100"),
    VmSize("Standard_ND96isr_H100_v5", 96, 1900, 8, "nvidia-h100"),
)
VM_SIZES = {vm.name: vm for vm in TABLE}
#: A GPU count without an accelerator name gets this one.
DEFAULT_ACCELERATOR = "nvidia-t4"
#: Portable accelerators Azure has no VM size for, and what to use instead.
NOT_ON_AZURE = {
    "nvidia-l4": "Azure has no L4 VM sizes; use nvidia-t4 or nvidia-a100",
    "nvidia-a10g": "Azure's A10 sizes (NVadsA10 v5) are partitioned GPUs for graphics; use nvidia-t4 or nvidia-a100",
}


class NoVmSize(ValueError):
    """No VM size in the table satisfies the request. ``hint`` says what would."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def pick_vm(res: Resources) -> VmSize:
    """The smallest VM size of :data:`TABLE` that satisfies ``res``.

    Raises:
        NoVmSize: the accelerator does not exist on Azure, or nothing is large enough.
    """
    req = Request.of(res, DEFAULT_ACCELERATOR)
    gpus, accel, cpu, memory = req.gpus, req.accelerator, req.cpu, req.memory_gib
    if accel in NOT_ON_AZURE:
        raise NoVmSize(f"accelerator {accel!r} has no Azure VM size", NOT_ON_AZURE[accel])
    vm = smallest(TABLE, req)
    if vm is not None:
        return vm
    family = [vm for vm in TABLE if vm.accelerator == accel]
    largest = max(family, key=lambda vm: (vm.gpus, vm.cpu, vm.memory_gib))
    what = f"{gpus} x {accel}" if accel else "CPU"
    raise NoVmSize(
        f"no Azure VM size in pipecast's table has {what} with {cpu:g} cores and {memory:g} GiB",
        f"the largest is {largest.name} ({largest.gpus} GPUs, {largest.cpu} cores, "
        f"{largest.memory_gib} GiB); ask for less",
    )


def needs_vm(res: Resources) -> bool:
    """Whether the step asks for anything (a step that asks nothing runs on the default compute)."""
    return any(v is not None for v in (res.cpu, res.memory, res.gpu, res.accelerator)) and not (
        res.gpu == 0 and res.cpu is None and res.memory is None and res.accelerator is None
    )
