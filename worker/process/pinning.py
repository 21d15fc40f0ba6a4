"""Pin a worker process to one GPU (or to the CPU) before anything imports torch.

`--gpu N` means physical GPU N as NVML numbers it (what `nvidia-smi` shows).
CUDA numbers devices fastest-first unless told otherwise, so the worker sets
CUDA_DEVICE_ORDER=PCI_BUS_ID and CUDA_VISIBLE_DEVICES=N: inside the process
torch then sees exactly that GPU, as `cuda:0`, while CodeCarbon reads NVML and
is given the physical index N in `gpu_ids`, so that each worker measures its
own GPU and not all eight. NVML is read here (no CUDA context is created) for
the inventory: name, memory, driver and CUDA version.

A MIG slice (an allocation by `MIG-...` UUID) is metered through its parent
GPU: NVML's index of a slice handle is its place inside the parent, so the
parent handle gives the physical index, and the windows are flagged
`gpu-shared-mig` (the parent's energy is shared by its slices). Once torch
has started, `check_torch_device` compares the UUID of the device torch
computes on with the UUID NVML meters, and the worker refuses to run when
they differ.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

HEAVY_MODULES = ("torch", "transformers", "diffusers", "codecarbon")
_NAME = re.compile(r"^[\w.\-]+@[\w.\-]+$")


class PinningError(RuntimeError):
    """The requested device cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class Pinning:
    worker_id: str  # Celery node name too: gpu3@node7, cpu12345@node7
    device: str  # torch device inside the process: cuda:0 (the one visible GPU) or cpu
    gpu_index: int | None  # physical (NVML) index, None on CPU workers; a MIG slice's parent GPU
    env: dict[str, str] = field(default_factory=dict)  # to set before torch is imported
    mig_uuid: str | None = None  # the MIG slice this worker computes on, when it runs on one

    @property
    def gpu_ids(self) -> list[int] | None:
        """What CodeCarbon must measure: the physical GPU, by its NVML index."""
        return None if self.gpu_index is None else [self.gpu_index]


def plan_pinning(*, gpu: int | None, device: str | None, hostname: str, pid: int, name: str | None = None,
                 inherited_visible: str | None = None, nvml: Any = None) -> Pinning:
    """Decide device, worker name and environment from the command-line options.

    `inherited_visible` is a CUDA_VISIBLE_DEVICES the process was started with
    (a cluster scheduler's allocation, by index or UUID): `--gpu N` then means
    its N-th entry, translated to the physical NVML index CodeCarbon reads.
    """
    if (gpu is None) == (device is None):
        raise PinningError("give exactly one of --gpu N (one GPU per worker) or --device cpu")
    if device is not None and device != "cpu":
        raise PinningError(f"--device {device!r}: only 'cpu' is allowed; use --gpu N for a GPU")
    if gpu is not None and gpu < 0:
        raise PinningError(f"--gpu {gpu}: a GPU index is 0 or more (see nvidia-smi)")
    if name is not None and not _NAME.match(name):
        raise PinningError(f"--name {name!r}: expected NAME@HOST, e.g. gpu0@node7")
    if gpu is None:
        # CPU-only: hide every GPU so that nothing (torch, CodeCarbon) touches one by accident.
        return Pinning(name or f"cpu{pid}@{hostname}", "cpu", None, {"CUDA_VISIBLE_DEVICES": ""})
    entry, physical = str(gpu), gpu
    allocated = [e.strip() for e in (inherited_visible or "").split(",") if e.strip()]
    if allocated:
        if gpu >= len(allocated):
            raise PinningError(f"--gpu {gpu}: CUDA_VISIBLE_DEVICES={inherited_visible} gives this process "
                               f"{len(allocated)} GPU(s), numbered 0 to {len(allocated) - 1}")
        entry = allocated[gpu]
        physical = physical_index(entry, nvml)
    env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": entry}
    mig = entry if entry.startswith("MIG-") else None
    default = f"gpu{physical}" + (f"-{mig.removeprefix('MIG-')[:8]}" if mig else "")
    return Pinning(name or f"{default}@{hostname}", "cuda:0", physical, env, mig_uuid=mig)


def physical_index(entry: str, nvml: Any = None) -> int:
    """One CUDA_VISIBLE_DEVICES entry, an index (PCI bus order), a GPU UUID or a MIG slice's UUID, as the NVML
    physical index of the GPU that holds it."""
    if entry.isdigit():
        return int(entry)
    nvml = nvml or _import_nvml(entry)
    try:
        nvml.nvmlInit()
        try:
            handle = nvml.nvmlDeviceGetHandleByUUID(entry)
            if _is_mig(nvml, handle):  # a slice's own index is its place inside the parent, not the GPU's
                handle = nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle)
            return int(nvml.nvmlDeviceGetIndex(handle))
        finally:
            nvml.nvmlShutdown()
    except PinningError:
        raise
    except Exception as error:
        raise PinningError(f"CUDA_VISIBLE_DEVICES entry {entry!r}: NVML knows no such GPU ({error})") from None


def _is_mig(nvml: Any, handle: Any) -> bool:
    check = getattr(nvml, "nvmlDeviceIsMigDeviceHandle", None)
    try:
        return bool(getattr(answer := check(handle), "value", answer)) if check else False  # a c_uint
    except Exception:
        return False


def _bare_uuid(value: Any) -> str:
    text = _text(value) if isinstance(value, str | bytes) else str(value)
    return text.strip().lower().removeprefix("gpu-").removeprefix("mig-")


def check_torch_device(pinning: Pinning, metered_uuid: str, torch_uuid: Any) -> None:
    """Refuse to run when torch computes on another device than the one NVML meters.

    `torch_uuid` is torch.cuda.get_device_properties(0).uuid (CUDA prints it
    without the GPU- prefix); on a MIG slice CUDA may name the slice or its
    parent, so either matches.
    """
    expected = {_bare_uuid(metered_uuid)} | ({_bare_uuid(pinning.mig_uuid)} if pinning.mig_uuid else set())
    if _bare_uuid(torch_uuid) not in expected:
        raise PinningError(f"torch computes on GPU {_text(str(torch_uuid))} but NVML meters GPU {pinning.gpu_index} "
                           f"({metered_uuid}): CUDA_VISIBLE_DEVICES={pinning.env.get('CUDA_VISIBLE_DEVICES')!r} "
                           "was not applied before CUDA started; refusing to run")


def torch_device_uuid(*, simulated: bool = False) -> Any:
    """The UUID of the device torch computes on (cuda:0, the one visible GPU); starts CUDA.

    `simulated`: the simulated GPU node of the tests has no CUDA; its `simnode_cuda` module (on that node's path
    only) applies CUDA's numbering rules to the node's GPUs, so the check runs there as on a real node."""
    if simulated:
        import importlib

        return importlib.import_module("simnode_cuda").device_uuid(0)
    import torch

    return torch.cuda.get_device_properties(0).uuid


def _import_nvml(what: str) -> Any:
    try:
        import pynvml
    except ImportError as error:
        raise PinningError(f"{what}: NVML is not installed ({error}); install nvidia-ml-py") from None
    return pynvml


def apply_pinning(pinning: Pinning, environ: MutableMapping[str, str] = os.environ) -> None:
    """Set the environment; refuses if torch (or anything that reads CUDA_VISIBLE_DEVICES) is already loaded."""
    loaded = [module for module in HEAVY_MODULES if module in sys.modules]
    if loaded:
        raise PinningError(f"{', '.join(loaded)} imported before pinning: CUDA_VISIBLE_DEVICES would be ignored")
    environ.update(pinning.env)


def read_gpu(index: int, nvml: Any = None) -> dict[str, Any]:
    """Name, memory, driver and CUDA version of physical GPU `index`, from NVML (no CUDA context)."""
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError as error:
            raise PinningError(f"--gpu {index}: NVML is not installed ({error}); install nvidia-ml-py") from None
    try:
        nvml.nvmlInit()
    except Exception as error:
        raise PinningError(f"--gpu {index}: NVML unavailable ({error}): no NVIDIA driver on this host?") from None
    try:
        count = nvml.nvmlDeviceGetCount()
        if index >= count:
            raise PinningError(f"--gpu {index}: this host has {count} GPU(s), numbered 0 to {count - 1}")
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        cuda = nvml.nvmlSystemGetCudaDriverVersion_v2()  # e.g. 12040 -> "12.4"
        return {
            "index": index,
            "name": _text(nvml.nvmlDeviceGetName(handle)),
            "uuid": _text(nvml.nvmlDeviceGetUUID(handle)),
            "pci_bus_id": _text(nvml.nvmlDeviceGetPciInfo(handle).busId),
            "memory_gb": round(nvml.nvmlDeviceGetMemoryInfo(handle).total / 2**30, 2),
            "driver": _text(nvml.nvmlSystemGetDriverVersion()),
            "cuda": f"{cuda // 1000}.{cuda % 1000 // 10}",
        }
    finally:
        nvml.nvmlShutdown()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
