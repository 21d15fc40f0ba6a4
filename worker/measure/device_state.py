"""A GPU's state as NVML reports it now: temperature, SM clock, power limit, throttle reasons, power, energy.

A window's figure depends on the state its device was in: a hot GPU draws
more for the same work, a capped power limit or a thermal slowdown stretches
it. The meter records this state at each window's start and end, and the
idle baseline with its own reading, so that a figure can be read beside the
conditions it was measured under. NVML is read directly (no CUDA context),
through the physical device: for a MIG slice, its parent GPU (a slice has no
power, clock or energy readings of its own).

Every field is None where the driver does not report it; nothing here raises
for a missing reading, only for a device that cannot be opened.
"""

from __future__ import annotations

import functools
import operator
import time
from dataclasses import dataclass
from typing import Any

# NVML's clocks-event (throttle) reason bits, by the names nvidia-smi prints.
THROTTLE_REASONS = {
    0x1: "gpu-idle",
    0x2: "applications-clocks-setting",
    0x4: "sw-power-cap",
    0x8: "hw-slowdown",
    0x10: "sync-boost",
    0x20: "sw-thermal-slowdown",
    0x40: "hw-thermal-slowdown",
    0x80: "hw-power-brake-slowdown",
    0x100: "display-clock-setting",
}
# The reasons that mean the device ran slower than it could for the work (not idle, not a user's setting).
SLOWDOWN_MASK = 0x4 | 0x8 | 0x20 | 0x40 | 0x80
NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_SM = 1


class DeviceStateError(RuntimeError):
    """The device cannot be opened through NVML; the message is one line."""


@dataclass(frozen=True)
class DeviceState:
    read_at: float  # time.time()
    temperature_c: float | None
    sm_clock_mhz: float | None
    power_limit_w: float | None
    throttle_reasons: int | None  # NVML bit mask, see THROTTLE_REASONS
    power_w: float | None  # instantaneous board power
    energy_mj: int | None  # the total-energy counter (mJ since the driver loaded), None without one

    def columns(self, when: str) -> dict[str, Any]:
        """This state as stored columns: `gpu_temperature_<when>_c`, `gpu_sm_clock_<when>_mhz`, ..."""
        return {
            f"gpu_temperature_{when}_c": self.temperature_c,
            f"gpu_sm_clock_{when}_mhz": self.sm_clock_mhz,
            f"gpu_power_limit_{when}_w": self.power_limit_w,
            f"gpu_throttle_{when}": self.throttle_reasons,
        }

    @property
    def slowed_down(self) -> bool:
        """Power cap, hardware or thermal slowdown: the clocks were held below what the work asked for."""
        return bool((self.throttle_reasons or 0) & SLOWDOWN_MASK)


def group_state(states: list[DeviceState]) -> DeviceState:
    """One state for a group of GPUs (one worker on several), in the columns a single GPU fills.

    The group's figure depends on its worst device: the hottest GPU's temperature, the slowest SM clock (a
    tensor-parallel step waits for the slowest GPU), every throttle reason of any GPU; and on its whole budget:
    the sum of the power limits, of the powers and of the energy counters (None if any GPU lacks one).
    """
    if len(states) == 1:
        return states[0]

    def known(name: str) -> list[Any]:
        return [value for state in states if (value := getattr(state, name)) is not None]

    def whole(name: str) -> Any:
        values = known(name)
        return sum(values) if len(values) == len(states) else None

    temperatures, clocks, reasons = known("temperature_c"), known("sm_clock_mhz"), known("throttle_reasons")
    return DeviceState(
        read_at=max(state.read_at for state in states),
        temperature_c=max(temperatures) if temperatures else None,
        sm_clock_mhz=min(clocks) if clocks else None,
        power_limit_w=whole("power_limit_w"),
        throttle_reasons=functools.reduce(operator.or_, reasons) if reasons else None,
        power_w=whole("power_w"),
        energy_mj=whole("energy_mj"),
    )


def no_state_columns(when: str) -> dict[str, Any]:
    """The columns for a window without a GPU (CPU workers): all None."""
    return dict.fromkeys(DeviceState(0.0, None, None, None, None, None, None).columns(when))


def throttle_reason_names(mask: int | None) -> list[str]:
    """['sw-power-cap', 'hw-thermal-slowdown'] for a mask; unknown bits as hex."""
    if not mask:
        return []
    names = [name for bit, name in THROTTLE_REASONS.items() if mask & bit]
    rest = mask & ~sum(THROTTLE_REASONS)
    return names + ([f"0x{rest:x}"] if rest else [])


class DeviceStateReader:
    """Reads one physical GPU's state; holds NVML open from construction to `close()`.

    `gpu_index` is NVML's physical index (what `nvidia-smi` shows, not CUDA's);
    `mig_uuid`, when the worker runs on a MIG slice, names the slice, and the
    reader follows it to its parent GPU.
    """

    def __init__(self, gpu_index: int | None = None, *, mig_uuid: str | None = None, nvml: Any = None) -> None:
        if gpu_index is None and mig_uuid is None:
            raise DeviceStateError("give the GPU's NVML index or its MIG slice's UUID")
        self._nvml = nvml = open_nvml(nvml, DeviceStateError)
        try:
            self._handle, self.gpu_index, self.is_mig = physical_handle(nvml, gpu_index, mig_uuid)
        except Exception:
            nvml.nvmlShutdown()
            raise
        self._open = True

    def read(self) -> DeviceState:
        nvml, handle = self._nvml, self._handle
        limit = _maybe(lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle))
        power = _maybe(lambda: nvml.nvmlDeviceGetPowerUsage(handle))
        return DeviceState(
            read_at=time.time(),
            temperature_c=_maybe(lambda: float(nvml.nvmlDeviceGetTemperature(handle, NVML_TEMPERATURE_GPU))),
            sm_clock_mhz=_maybe(lambda: float(nvml.nvmlDeviceGetClockInfo(handle, NVML_CLOCK_SM))),
            power_limit_w=limit / 1000 if limit is not None else None,
            throttle_reasons=_maybe(lambda: int(_throttle(nvml, handle))),
            power_w=power / 1000 if power is not None else None,
            energy_mj=self.energy_mj(),
        )

    def energy_mj(self) -> int | None:
        """The device's total-energy counter now (mJ), None where it has none (before Volta)."""
        return _maybe(lambda: int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)))

    def describe(self) -> dict[str, Any]:
        """Name and UUID of the physical device read."""
        nvml, handle = self._nvml, self._handle
        return {"index": self.gpu_index, "name": nvml_text(nvml.nvmlDeviceGetName(handle)),
                "uuid": nvml_text(nvml.nvmlDeviceGetUUID(handle))}

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass

    def __enter__(self) -> DeviceStateReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def physical_handle(nvml: Any, gpu_index: int | None, mig_uuid: str | None = None) -> tuple[Any, int, bool]:
    """(handle, physical index, is_mig) of the GPU that holds `mig_uuid`'s slice, or of GPU `gpu_index`.

    nvmlDeviceGetIndex on a MIG handle answers the slice's index inside its
    parent, not the GPU's: a worker on slice 2 of GPU 5 would read GPU 2. The
    parent handle gives the physical index.
    """
    try:
        if mig_uuid is not None:
            handle = nvml.nvmlDeviceGetHandleByUUID(mig_uuid)
        else:
            count = nvml.nvmlDeviceGetCount()
            if not 0 <= gpu_index < count:
                raise DeviceStateError(f"GPU {gpu_index}: this host has {count} GPU(s), numbered 0 to {count - 1}")
            handle = nvml.nvmlDeviceGetHandleByIndex(gpu_index)
    except DeviceStateError:
        raise
    except Exception as error:
        raise DeviceStateError(f"NVML cannot open {mig_uuid or f'GPU {gpu_index}'} ({error})") from None
    is_mig = _is_mig_handle(nvml, handle)
    if is_mig:
        handle = nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle)
    return handle, int(nvml.nvmlDeviceGetIndex(handle)), is_mig


def _is_mig_handle(nvml: Any, handle: Any) -> bool:
    check = getattr(nvml, "nvmlDeviceIsMigDeviceHandle", None)
    try:
        return bool(getattr(answer := check(handle), "value", answer)) if check else False  # a c_uint
    except Exception:
        return False


def _throttle(nvml: Any, handle: Any) -> int:
    read = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
        nvml.nvmlDeviceGetCurrentClocksThrottleReasons
    return read(handle)


def _maybe(read):
    try:
        return read()
    except Exception:  # NVML's NotSupported and friends: the driver does not report it here
        return None


def open_nvml(nvml: Any, error: type[Exception], context: str = "") -> Any:
    """pynvml (or the stand-in given), initialised: `error` with one line (after `context`, e.g. "--gpu 3: ") where
    it is not installed or finds no driver. The caller shuts it down."""
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError as cause:
            raise error(f"{context}NVML is not installed ({cause}); install nvidia-ml-py") from None
    try:
        nvml.nvmlInit()
    except Exception as cause:
        raise error(f"{context}NVML unavailable ({cause}): no NVIDIA driver on this host?") from None
    return nvml


def nvml_text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
