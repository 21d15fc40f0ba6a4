"""A fake NVML (`pynvml`) for the simulated GPU node: tests only, put first on a process's path.

It answers the calls CodeCarbon and wattsweep make, from the node's profile
file ($SIMNODE_PROFILE, see simnode_profile.py): devices in PCI bus order
(NVML's order), names, UUIDs, memory, power limits, temperatures, SM clocks,
throttle reasons, utilisation, optional MIG slices, and a total-energy
counter (mJ) that integrates the profile's power and, like the real one,
advances only every `nvml_update_s` (100 ms by default). Every process of
the node reads the same counters at the same instant, because they are a
function of wall-clock time and the shared file.

MIG: a MIG-enabled GPU lists its slices; a slice handle answers
nvmlDeviceGetIndex with its index inside the parent (as real NVML does, the
trap wattsweep must avoid), has no energy counter of its own, and leads to
its parent through nvmlDeviceGetDeviceHandleFromMigDeviceHandle.

Power limits can be set (nvmlDeviceSetPowerManagementLimit), within each GPU's min and max and only where the
profile grants the permission; a set limit caps the GPU's power and its energy counter, and lives in a file of the
node (simnode_profile.set_limit), so it outlives the process that set it, as on a real GPU.

It refuses what the real NVML refuses, so that the code's fallbacks run here as they would on a GPU node:
utilisation of a MIG-enabled GPU (or of a slice) raises NVMLError_NotSupported, and a GPU whose profile sets
`"energy_counter": false` (older boards) has no total-energy counter. Its answers have the real types:
nvmlDeviceIsMigDeviceHandle returns a ctypes c_uint, not a bool.
"""

from __future__ import annotations

import ctypes
import math
import os
import time
from dataclasses import dataclass

import simnode_profile

NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_GRAPHICS, NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_CLOCK_VIDEO = 0, 1, 2, 3
NVML_DEVICE_MIG_DISABLE, NVML_DEVICE_MIG_ENABLE = 0, 1
NVML_ERROR_UNINITIALIZED, NVML_ERROR_INVALID_ARGUMENT, NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_NOT_FOUND = 1, 2, 3, 6
NVML_ERROR_NO_PERMISSION = 4

nvmlClocksEventReasonGpuIdle = nvmlClocksThrottleReasonGpuIdle = 0x1
nvmlClocksEventReasonApplicationsClocksSetting = nvmlClocksThrottleReasonApplicationsClocksSetting = 0x2
nvmlClocksEventReasonSwPowerCap = nvmlClocksThrottleReasonSwPowerCap = 0x4
nvmlClocksEventReasonHwSlowdown = nvmlClocksThrottleReasonHwSlowdown = 0x8
nvmlClocksEventReasonSyncBoost = nvmlClocksThrottleReasonSyncBoost = 0x10
nvmlClocksEventReasonSwThermalSlowdown = nvmlClocksThrottleReasonSwThermalSlowdown = 0x20
nvmlClocksEventReasonHwThermalSlowdown = nvmlClocksThrottleReasonHwThermalSlowdown = 0x40
nvmlClocksEventReasonHwPowerBrakeSlowdown = nvmlClocksThrottleReasonHwPowerBrakeSlowdown = 0x80
nvmlClocksEventReasonNone = nvmlClocksThrottleReasonNone = 0x0

SIMULATED = True  # lets a test assert that the fake, not a real NVML, was imported


class NVMLError(Exception):
    def __init__(self, value: int = NVML_ERROR_NOT_SUPPORTED, message: str = "") -> None:
        self.value = value
        super().__init__(message or f"NVML error {value}")


class NVMLError_Uninitialized(NVMLError):  # noqa: N801 - the real module's names
    def __init__(self, message: str = "Uninitialized") -> None:
        super().__init__(NVML_ERROR_UNINITIALIZED, message)


class NVMLError_InvalidArgument(NVMLError):  # noqa: N801
    def __init__(self, message: str = "Invalid Argument") -> None:
        super().__init__(NVML_ERROR_INVALID_ARGUMENT, message)


class NVMLError_NotSupported(NVMLError):  # noqa: N801
    def __init__(self, message: str = "Not Supported") -> None:
        super().__init__(NVML_ERROR_NOT_SUPPORTED, message)


class NVMLError_NotFound(NVMLError):  # noqa: N801
    def __init__(self, message: str = "Not Found") -> None:
        super().__init__(NVML_ERROR_NOT_FOUND, message)


class NVMLError_NoPermission(NVMLError):  # noqa: N801
    def __init__(self, message: str = "Insufficient Permissions") -> None:
        super().__init__(NVML_ERROR_NO_PERMISSION, message)


@dataclass(frozen=True)
class _Handle:
    index: int  # the physical GPU (PCI order)
    mig: int | None = None  # slice index inside the parent, for a MIG device handle


@dataclass(frozen=True)
class c_nvmlMemory_t:  # noqa: N801
    total: int
    free: int
    used: int


@dataclass(frozen=True)
class _Pci:
    busId: str  # noqa: N815
    busIdLegacy: str  # noqa: N815


@dataclass(frozen=True)
class _Utilization:
    gpu: int
    memory: int


_initialized = 0


def _profile() -> simnode_profile.Profile:
    if not _initialized:
        raise NVMLError_Uninitialized()
    return simnode_profile.load()


def _gpu(handle: _Handle) -> dict:
    gpus = _profile().gpus
    if not isinstance(handle, _Handle) or not 0 <= handle.index < len(gpus):
        raise NVMLError_InvalidArgument()
    return gpus[handle.index]


def _now(handle: _Handle, key: str) -> float:
    return _profile().value(key, handle.index, time.time())


def nvmlInit() -> None:
    global _initialized
    simnode_profile.load()  # fails like a missing driver when the node has no profile
    _initialized += 1


def nvmlShutdown() -> None:
    global _initialized
    if not _initialized:
        raise NVMLError_Uninitialized()
    _initialized -= 1


def nvmlSystemGetDriverVersion() -> str:
    return _profile().data.get("driver", "550.54.15")


def nvmlSystemGetCudaDriverVersion() -> int:
    return int(_profile().data.get("cuda_driver", 12040))


nvmlSystemGetCudaDriverVersion_v2 = nvmlSystemGetCudaDriverVersion


def nvmlDeviceGetCount() -> int:
    return len(_profile().gpus)


def nvmlDeviceGetHandleByIndex(index: int) -> _Handle:
    if not 0 <= int(index) < nvmlDeviceGetCount():
        raise NVMLError_InvalidArgument()
    return _Handle(int(index))


def nvmlDeviceGetHandleByUUID(uuid: str | bytes) -> _Handle:
    uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
    for index, gpu in enumerate(_profile().gpus):
        if gpu["uuid"] == uuid:
            return _Handle(index)
        for mig, slice_ in enumerate(gpu.get("mig") or []):
            if slice_["uuid"] == uuid:
                return _Handle(index, mig)
    raise NVMLError_NotFound()


def nvmlDeviceGetHandleByPciBusId(bus_id: str | bytes) -> _Handle:
    bus_id = bus_id.decode() if isinstance(bus_id, bytes) else bus_id
    for index, gpu in enumerate(_profile().gpus):
        if gpu["pci_bus_id"].lower() == bus_id.lower():
            return _Handle(index)
    raise NVMLError_NotFound()


def nvmlDeviceGetIndex(handle: _Handle) -> int:
    _gpu(handle)
    return handle.index if handle.mig is None else handle.mig  # a slice answers its index inside the parent


def nvmlDeviceGetMinorNumber(handle: _Handle) -> int:
    _gpu(handle)
    return handle.index


def nvmlDeviceGetName(handle: _Handle) -> str:
    gpu = _gpu(handle)
    if handle.mig is not None:
        return f"{gpu['name']} MIG {gpu['mig'][handle.mig]['profile']}"
    return gpu["name"]


def nvmlDeviceGetUUID(handle: _Handle) -> str:
    gpu = _gpu(handle)
    return gpu["uuid"] if handle.mig is None else gpu["mig"][handle.mig]["uuid"]


def nvmlDeviceGetPciInfo(handle: _Handle) -> _Pci:
    bus = _gpu(handle)["pci_bus_id"]
    return _Pci(bus, bus[4:])


nvmlDeviceGetPciInfo_v3 = nvmlDeviceGetPciInfo


def nvmlDeviceGetMemoryInfo(handle: _Handle, version=None) -> c_nvmlMemory_t:
    total = int(_gpu(handle)["memory_bytes"])
    used = 512 * 2**20
    return c_nvmlMemory_t(total, total - used, used)


def nvmlDeviceGetTotalEnergyConsumption(handle: _Handle) -> int:
    """mJ since the driver loaded; advances in steps of the counter's update period, as the real one."""
    gpu = _gpu(handle)
    if handle.mig is not None or gpu.get("energy_counter") is False:
        raise NVMLError_NotSupported()  # a slice has no counter: only the whole GPU is metered
    profile = _profile()
    step = profile.nvml_update_s
    now = time.time()
    t = math.floor(now / step) * step if step > 0 else now
    value = int(gpu.get("energy_offset_mj", 0) + 1000 * profile.energy_j("gpu_w", handle.index, t))
    simnode_profile.log_counter_read(os.uname().nodename, handle.index, now, value)
    return value


def nvmlDeviceGetPowerUsage(handle: _Handle) -> int:
    if handle.mig is not None:
        raise NVMLError_NotSupported()
    return int(1000 * _now(handle, "gpu_w"))


def nvmlDeviceGetEnforcedPowerLimit(handle: _Handle) -> int:
    return int(1000 * _now(handle, "power_limit_w"))  # a limit set through nvmlDeviceSetPowerManagementLimit wins


nvmlDeviceGetPowerManagementLimit = nvmlDeviceGetEnforcedPowerLimit


def nvmlDeviceGetPowerManagementLimitConstraints(handle: _Handle) -> list[int]:
    """[min, max] in mW, as the real binding returns them."""
    gpu = _gpu(handle)
    return [int(1000 * gpu.get("min_power_w", 100.0)), int(1000 * gpu["max_power_w"])]


def nvmlDeviceSetPowerManagementLimit(handle: _Handle, limit_mw: int) -> None:
    """As the real call: root only (the profile's `power_limit_permission: false` plays a process without it),
    a value outside the GPU's [min, max] refused with INVALID_ARGUMENT, and not on a MIG slice. The limit is
    recorded in the node's limits file, read alike by every process (and the next one): it outlives its setter."""
    _gpu(handle)
    if handle.mig is not None:
        raise NVMLError_InvalidArgument()
    if _profile().data.get("power_limit_permission", True) is False:
        raise NVMLError_NoPermission()
    low, high = nvmlDeviceGetPowerManagementLimitConstraints(handle)
    if not low <= int(limit_mw) <= high:
        raise NVMLError_InvalidArgument()
    simnode_profile.set_limit(handle.index, time.time(), int(limit_mw) / 1000)


def nvmlDeviceGetTemperature(handle: _Handle, sensor: int) -> int:
    if sensor != NVML_TEMPERATURE_GPU:
        raise NVMLError_NotSupported()
    return int(_now(handle, "temperature_c"))


def nvmlDeviceGetClockInfo(handle: _Handle, clock_type: int) -> int:
    if clock_type not in (NVML_CLOCK_SM, NVML_CLOCK_GRAPHICS):
        raise NVMLError_NotSupported()
    return int(_now(handle, "sm_clock_mhz"))


def nvmlDeviceGetCurrentClocksEventReasons(handle: _Handle) -> int:
    return int(_now(handle, "throttle_reasons"))


nvmlDeviceGetCurrentClocksThrottleReasons = nvmlDeviceGetCurrentClocksEventReasons


def nvmlDeviceGetUtilizationRates(handle: _Handle) -> _Utilization:
    if handle.mig is not None or _gpu(handle).get("mig"):
        raise NVMLError_NotSupported()  # real NVML: no utilisation on a MIG-enabled GPU, nor of its slices
    return _Utilization(int(_now(handle, "utilization_pct")), 0)


def nvmlDeviceGetComputeMode(handle: _Handle) -> int:
    _gpu(handle)
    return 0


def nvmlDeviceGetComputeRunningProcesses(handle: _Handle) -> list:
    _gpu(handle)
    return []


nvmlDeviceGetGraphicsRunningProcesses = nvmlDeviceGetComputeRunningProcesses


def nvmlDeviceGetMigMode(handle: _Handle) -> tuple[int, int]:
    mode = NVML_DEVICE_MIG_ENABLE if _gpu(handle).get("mig") else NVML_DEVICE_MIG_DISABLE
    return mode, mode


def nvmlDeviceIsMigDeviceHandle(handle: _Handle) -> ctypes.c_uint:
    _gpu(handle)
    return ctypes.c_uint(int(handle.mig is not None))  # the real binding returns its out-parameter, a c_uint


def nvmlDeviceGetMaxMigDeviceCount(handle: _Handle) -> int:
    return len(_gpu(handle).get("mig") or [])


def nvmlDeviceGetMigDeviceHandleByIndex(handle: _Handle, index: int) -> _Handle:
    if not 0 <= index < nvmlDeviceGetMaxMigDeviceCount(handle):
        raise NVMLError_NotFound()
    return _Handle(handle.index, index)


def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle: _Handle) -> _Handle:
    if handle.mig is None:
        raise NVMLError_InvalidArgument()
    return _Handle(handle.index)
