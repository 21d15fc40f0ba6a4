"""What CUDA would number as device 0 on the simulated node: the other side of the torch-versus-NVML UUID check.

The node has no CUDA, so the worker asks this module (on the node's path only) instead of
torch.cuda.get_device_properties. It applies CUDA's own rules to the profile: CUDA_DEVICE_ORDER
(FASTEST_FIRST unless PCI_BUS_ID: the trap, CUDA's order differs from NVML's), then CUDA_VISIBLE_DEVICES
(indices into that order, GPU-/MIG- UUIDs). Like torch, it names a device by its UUID without the prefix.
"""

from __future__ import annotations

import os

import simnode_profile


def visible_uuids() -> list[str]:
    gpus = simnode_profile.load().gpus
    if os.environ.get("CUDA_DEVICE_ORDER", "FASTEST_FIRST") == "PCI_BUS_ID":
        order = list(range(len(gpus)))
    else:
        order = sorted(range(len(gpus)), key=lambda i: gpus[i]["cuda_rank"])
    numbered = [gpus[i]["uuid"] for i in order]
    entries = os.environ.get("CUDA_VISIBLE_DEVICES")
    if entries is None:
        return numbered
    visible = []
    for entry in (e.strip() for e in entries.split(",")):
        if entry.isdigit() and int(entry) < len(numbered):
            visible.append(numbered[int(entry)])
        elif entry.startswith(("GPU-", "MIG-")):
            visible.append(entry)
        else:
            break  # CUDA stops at the first entry it cannot use
    return visible


def device_uuid(ordinal: int = 0) -> str:
    visible = visible_uuids()
    if ordinal >= len(visible):
        raise RuntimeError(f"CUDA error: invalid device ordinal {ordinal}")
    return visible[ordinal].removeprefix("GPU-").removeprefix("MIG-")
