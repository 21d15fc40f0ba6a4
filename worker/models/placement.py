"""Where a model loads in this worker process: the torch device, the worker's GPUs, and the memory they have free.

A worker holds one GPU or a group (worker.process.pinning): CUDA_VISIBLE_DEVICES shows the group, so inside the
process its GPUs are cuda:0..n-1 whatever their physical indexes. The executor sets the worker's placement around
a load (`placed`); the loader reads it (`current_placement`) to give from_pretrained its device map (straight to
the devices, never through host RAM: one GPU `{"": "cuda:0"}`, a group `"auto"` with a `max_memory` per GPU, as
accelerate spreads a model over several) and to check, before reading any weight, that the weights fit
(`check_fits`). Outside a worker (tests, scripts) the placement is the device alone: one GPU for a CUDA device.

Free memory comes from CUDA (torch.cuda.mem_get_info per device) unless the placement carries its own source:
the simulated GPU node of the tests has no CUDA and reads its GPUs' memory through NVML (`nvml_free_bytes`).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from worker.errors import CannotLoadHere


@dataclass(frozen=True)
class Placement:
    device: str = "cpu"  # torch device of the inputs, and of a model on one device: cpu | cuda:0
    gpus: int = 0  # the worker's GPUs (cuda:0..gpus-1 in this process; the simulated node's are metered only)
    free_bytes: Callable[[], list[int]] | None = None  # free memory of each of the worker's GPUs; None: ask CUDA

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def spans_gpus(self) -> bool:
        """Whether a model is spread over several GPUs here (a group, on CUDA)."""
        return self.on_cuda and self.gpus > 1

    def free_memory(self) -> list[int] | None:
        """Free bytes of each GPU of the worker, in order; None on a CPU worker (host RAM is not checked)."""
        if self.free_bytes is not None:
            return list(self.free_bytes())
        if not self.on_cuda:
            return None
        import torch

        return [int(torch.cuda.mem_get_info(index)[0]) for index in range(max(self.gpus, 1))]

    def device_map_options(self) -> dict[str, Any]:
        """from_pretrained's options that load the weights straight onto this placement's devices.

        A group: `device_map="auto"` with each GPU's free memory as its `max_memory` and no "cpu" entry, so that
        accelerate spreads the layers over the group and never offloads to host RAM (which would measure another
        thing). One GPU: the whole model on it. The CPU: nothing (from_pretrained's own default).
        """
        if self.spans_gpus:
            free = self.free_memory() or []
            return {"device_map": "auto", "max_memory": dict(enumerate(free))}
        if self.on_cuda:
            return {"device_map": {"": self.device}}
        return {}


_PLACEMENT: contextvars.ContextVar[Placement | None] = contextvars.ContextVar("wattsweep_placement", default=None)


@contextlib.contextmanager
def placed(placement: Placement) -> Iterator[Placement]:
    """Loads inside this block go to `placement` (the worker's devices); the executor wraps each load in it."""
    token = _PLACEMENT.set(placement)
    try:
        yield placement
    finally:
        _PLACEMENT.reset(token)


def current_placement(device: str) -> Placement:
    """The worker's placement when its device is `device`; otherwise `device` alone (one GPU if it is CUDA)."""
    placement = _PLACEMENT.get()
    if placement is not None and placement.device == device:
        return placement
    return Placement(device, 1 if device.startswith("cuda") else 0)


def check_fits(weights_bytes: int | None, placement: Placement) -> None:
    """Raise CannotLoadHere, naming both sizes, when the weights exceed the free memory of the worker's GPUs.

    Called before any weight is read. A CPU worker (no GPU memory to compare with) or unknown sizes pass.
    """
    if not weights_bytes:
        return
    free = placement.free_memory()
    if not free:
        return
    if weights_bytes > sum(free):
        count = len(free)
        gpus = f"{count} GPU{'s have' if count > 1 else ' has'}"
        raise CannotLoadHere(f"the weights need {readable_size(weights_bytes)}, this worker's {gpus} "
                             f"{readable_size(sum(free))} free: run the model on a worker with more GPUs (`gpus:` in "
                             "the sweep file), or a quantized checkpoint of it")


def readable_size(n_bytes: int) -> str:
    """470 GB, 79 GB, 1.5 GB, 310 MB, 12 kB: decimal units, as model cards give sizes."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= size:
            value = n_bytes / size
            return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
    return f"{n_bytes} bytes"


def nvml_free_bytes(gpu_ids: list[int]) -> Callable[[], list[int]]:
    """A free-memory source that reads physical GPUs `gpu_ids` through NVML (no CUDA context)."""

    def read() -> list[int]:
        import pynvml

        pynvml.nvmlInit()
        try:
            return [int(pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index)).free)
                    for index in gpu_ids]
        finally:
            pynvml.nvmlShutdown()

    return read
