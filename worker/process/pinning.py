"""Pin a worker process to one GPU, a group of GPUs, or the CPU, before anything imports torch.

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

`--gpus 0,1,2,3` pins one worker to a group: CUDA_VISIBLE_DEVICES lists the
group in PCI (NVML) order, so torch's cuda:i is the group's i-th GPU by
physical index, and CodeCarbon is given every physical index of the group.
A group takes whole GPUs only: a MIG slice in a group is refused.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from worker.measure.device_state import nvml_text, open_nvml

HEAVY_MODULES = ("torch", "transformers", "diffusers", "codecarbon")
_NAME = re.compile(r"^[\w.\-]+@[\w.\-]+$")


class PinningError(RuntimeError):
    """The requested device cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class Pinning:
    worker_id: str  # Celery node name too: gpu3@node7, gpu0-3@node7, cpu12345@node7
    device: str  # torch device inside the process: cuda:0 (the first visible GPU) or cpu
    gpu_indexes: tuple[int, ...]  # physical (NVML) indexes in PCI order, () on CPU workers; a MIG slice's parent
    env: dict[str, str] = field(default_factory=dict)  # to set before torch is imported
    mig_uuid: str | None = None  # the MIG slice this worker computes on, when it runs on one

    @property
    def gpu_ids(self) -> list[int] | None:
        """What CodeCarbon must measure: the worker's GPUs, by their NVML indexes (torch's cuda:i is gpu_ids[i])."""
        return list(self.gpu_indexes) if self.gpu_indexes else None

    @property
    def gpu_index(self) -> int | None:
        """The first (a one-GPU worker's only) physical GPU; None on CPU workers."""
        return self.gpu_indexes[0] if self.gpu_indexes else None

    @property
    def physical_device(self) -> str:
        """What the workers table shows (20 characters): cpu, cuda:3, cuda:0-3, cuda:0,2,5 (physical indexes, not
        torch's); a group too long to list says its size (workers.gpu_indexes holds every index)."""
        if not self.gpu_indexes:
            return "cpu"
        runs: list[list[int]] = []
        for index in self.gpu_indexes:
            if runs and index == runs[-1][-1] + 1:
                runs[-1].append(index)
            else:
                runs.append([index])
        listed = "cuda:" + ",".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ",".join(map(str, r)) for r in runs)
        return listed if len(listed) <= 20 else f"cuda:{len(self.gpu_indexes)}-gpus"


def plan_pinning(*, gpu: int | None, device: str | None, hostname: str, pid: int, name: str | None = None,
                 inherited_visible: str | None = None, nvml: Any = None, gpus: str | None = None) -> Pinning:
    """Decide device, worker name and environment from the command-line options.

    `inherited_visible` is a CUDA_VISIBLE_DEVICES the process was started with
    (a cluster scheduler's allocation, by index or UUID): `--gpu N` (and each
    index of `--gpus`) then means its N-th entry, translated to the physical
    NVML index CodeCarbon reads.
    """
    if sum(option is not None for option in (gpu, gpus, device)) != 1:
        raise PinningError("give exactly one of --gpu N (one GPU), --gpus N,M,... (a group of GPUs) or --device cpu")
    if device is not None and device != "cpu":
        raise PinningError(f"--device {device!r}: only 'cpu' is allowed; use --gpu N or --gpus N,M,... for GPUs")
    if gpu is not None and gpu < 0:
        raise PinningError(f"--gpu {gpu}: a GPU index is 0 or more (see nvidia-smi)")
    if name is not None and not _NAME.match(name):
        raise PinningError(f"--name {name!r}: expected NAME@HOST, e.g. gpu0@node7")
    if device is not None:
        # CPU-only: hide every GPU so that nothing (torch, CodeCarbon) touches one by accident.
        return Pinning(name or f"cpu{pid}@{hostname}", "cpu", (), {"CUDA_VISIBLE_DEVICES": ""})
    option = "--gpu" if gpu is not None else "--gpus"
    indexes = [gpu] if gpu is not None else parse_gpu_group(gpus)
    allocated = [e.strip() for e in (inherited_visible or "").split(",") if e.strip()]
    entries = []  # (physical index, CUDA_VISIBLE_DEVICES entry)
    for index in indexes:
        if not allocated:
            entries.append((index, str(index)))
            continue
        if index >= len(allocated):
            raise PinningError(f"{option} {index}: CUDA_VISIBLE_DEVICES={inherited_visible} gives this process "
                               f"{len(allocated)} GPU(s), numbered 0 to {len(allocated) - 1}")
        entries.append((physical_index(allocated[index], nvml), allocated[index]))
    migs = [entry for _, entry in entries if entry.startswith("MIG-")]
    if migs and len(entries) > 1:
        raise PinningError(f"--gpus {gpus}: {migs[0]} is a MIG slice; a group takes whole GPUs only")
    physical = [index for index, _ in entries]
    if len(set(physical)) < len(physical):
        raise PinningError(f"--gpus {gpus}: CUDA_VISIBLE_DEVICES={inherited_visible} names one GPU twice")
    entries.sort()  # PCI order: with CUDA_DEVICE_ORDER=PCI_BUS_ID, torch's cuda:i is then gpu_ids[i]
    env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": ",".join(entry for _, entry in entries)}
    mig = migs[0] if migs else None
    default = group_name(sorted(physical)) + (f"-{mig.removeprefix('MIG-')[:8]}" if mig else "")
    return Pinning(name or f"{default}@{hostname}", "cuda:0", tuple(sorted(physical)), env, mig_uuid=mig)


def parse_gpu_group(text: str) -> list[int]:
    """`--gpus 0,1,2,3` as indexes; one line naming the problem for anything else."""
    parts = [part.strip() for part in text.split(",")]
    if not text.strip() or not all(part.isdigit() for part in parts):
        bad = next((part for part in parts if not part.isdigit()), text)
        raise PinningError(f"--gpus {text!r}: {bad!r} is not a GPU index; give indexes 0 or more, e.g. --gpus 0,1,2,3")
    indexes = [int(part) for part in parts]
    twice = sorted({index for index in indexes if indexes.count(index) > 1})
    if twice:
        raise PinningError(f"--gpus {text}: GPU {twice[0]} is named twice")
    return indexes


def group_name(indexes: list[int]) -> str:
    """The worker name's device part: gpu3, gpu0-3 (consecutive), gpus0.2.5 (not)."""
    if len(indexes) == 1:
        return f"gpu{indexes[0]}"
    if indexes == list(range(indexes[0], indexes[-1] + 1)):
        return f"gpu{indexes[0]}-{indexes[-1]}"
    return "gpus" + ".".join(map(str, indexes))


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
    text = nvml_text(value) if isinstance(value, str | bytes) else str(value)
    return text.strip().lower().removeprefix("gpu-").removeprefix("mig-")


def check_torch_device(pinning: Pinning, metered_uuid: str, torch_uuid: Any, ordinal: int = 0) -> None:
    """Refuse to run when torch's cuda:`ordinal` is another device than the one NVML meters as gpu_ids[ordinal]
    (a group: called for each of its GPUs).

    `torch_uuid` is torch.cuda.get_device_properties(ordinal).uuid (CUDA prints it
    without the GPU- prefix); on a MIG slice CUDA may name the slice or its
    parent, so either matches.
    """
    expected = {_bare_uuid(metered_uuid)} | ({_bare_uuid(pinning.mig_uuid)} if pinning.mig_uuid else set())
    if _bare_uuid(torch_uuid) not in expected:
        where = f"cuda:{ordinal} is GPU" if len(pinning.gpu_indexes) > 1 else "torch computes on GPU"
        raise PinningError(f"{where} {nvml_text(str(torch_uuid))} but NVML meters GPU {pinning.gpu_indexes[ordinal]} "
                           f"({metered_uuid}): CUDA_VISIBLE_DEVICES={pinning.env.get('CUDA_VISIBLE_DEVICES')!r} "
                           "was not applied before CUDA started; refusing to run")


def torch_device_uuid(ordinal: int = 0, *, simulated: bool = False) -> Any:
    """The UUID of torch's cuda:`ordinal` (the group's ordinal-th visible GPU); starts CUDA.

    `simulated`: the simulated GPU node of the tests has no CUDA; its `simnode_cuda` module (on that node's path
    only) applies CUDA's numbering rules to the node's GPUs, so the check runs there as on a real node."""
    if simulated:
        import importlib

        return importlib.import_module("simnode_cuda").device_uuid(ordinal)
    import torch

    return torch.cuda.get_device_properties(ordinal).uuid


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
    nvml = open_nvml(nvml, PinningError, f"--gpu {index}: ")
    try:
        count = nvml.nvmlDeviceGetCount()
        if index >= count:
            raise PinningError(f"--gpu {index}: this host has {count} GPU(s), numbered 0 to {count - 1}")
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        cuda = nvml.nvmlSystemGetCudaDriverVersion_v2()  # e.g. 12040 -> "12.4"
        return {
            "index": index,
            "name": nvml_text(nvml.nvmlDeviceGetName(handle)),
            "uuid": nvml_text(nvml.nvmlDeviceGetUUID(handle)),
            "pci_bus_id": nvml_text(nvml.nvmlDeviceGetPciInfo(handle).busId),
            "memory_gb": round(nvml.nvmlDeviceGetMemoryInfo(handle).total / 2**30, 2),
            "driver": nvml_text(nvml.nvmlSystemGetDriverVersion()),
            "cuda": f"{cuda // 1000}.{cuda % 1000 // 10}",
        }
    finally:
        nvml.nvmlShutdown()
