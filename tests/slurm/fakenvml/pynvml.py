"""The least NVML a worker needs to pin itself and record its GPU: N fake GPUs, read at import.

Stand-in until the simulated GPU node (tests/simnode) lands; put first on
PYTHONPATH. WATTSWEEP_FAKE_NVML_GPUS sets N (default 4); GPU i has UUID
`fake_uuid(i)`, so a test can tell which physical GPU a worker recorded.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

COUNT = int(os.environ.get("WATTSWEEP_FAKE_NVML_GPUS", "4"))


class NVMLError(Exception):
    pass


def fake_uuid(index: int) -> str:
    return f"GPU-fa4e0000-0000-4000-8000-{index:012d}"


def nvmlInit() -> None:
    pass


def nvmlShutdown() -> None:
    pass


def nvmlDeviceGetCount() -> int:
    return COUNT


def nvmlDeviceGetHandleByIndex(index: int) -> int:
    if not 0 <= index < COUNT:
        raise NVMLError(f"invalid index {index}")
    return index


def nvmlDeviceGetHandleByUUID(uuid: str) -> int:
    for index in range(COUNT):
        if fake_uuid(index) == uuid:
            return index
    raise NVMLError(f"no GPU {uuid}")


def nvmlDeviceGetIndex(handle: int) -> int:
    return handle


def nvmlDeviceGetName(handle: int) -> str:
    return "Fake GPU 80GB"


def nvmlDeviceGetUUID(handle: int) -> str:
    return fake_uuid(handle)


def nvmlDeviceGetPciInfo(handle: int):
    return SimpleNamespace(busId=f"00000000:{0x10 + handle:02X}:00.0")


def nvmlDeviceGetMemoryInfo(handle: int):
    return SimpleNamespace(total=80 * 2**30, used=0, free=80 * 2**30)


def nvmlSystemGetDriverVersion() -> str:
    return "550.00"


def nvmlSystemGetCudaDriverVersion_v2() -> int:
    return 12040
