"""A GPU's power limit through NVML: read it, its allowed range, set it (the sweep's `power_limit_w` axis).

The one module that changes a GPU's state (worker.measure.device_state only reads it). NVML takes and gives
milliwatts; everything here is watts. Setting a limit needs root, or the SYS_ADMIN capability in a container
(NVML answers NVML_ERROR_NO_PERMISSION otherwise), and a limit outside the GPU's [min, max]
(nvmlDeviceGetPowerManagementLimitConstraints) is refused by NVML with NVML_ERROR_INVALID_ARGUMENT: both are
checked here first and become one-line PowerLimitErrors. A limit lasts until the driver unloads: persistence
mode (`nvidia-smi -pm 1`) keeps it between processes, and the caller (worker.process.power_limits) puts the
previous one back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.measure.device_state import nvml_text, open_nvml

NVML_ERROR_INVALID_ARGUMENT = 2  # pynvml's constants, for a binding that lacks them
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NEEDS_PERMISSION = ("setting a GPU power limit needs root: run the worker as root, or in a container with the "
                    "SYS_ADMIN capability (docker run --cap-add SYS_ADMIN; compose: cap_add: [SYS_ADMIN])")


class PowerLimitError(RuntimeError):
    """A limit that cannot be read or set; the message is one line for the job's error."""


@dataclass(frozen=True)
class GpuPowerLimit:
    index: int  # NVML's physical index
    name: str
    uuid: str
    limit_w: float  # nvmlDeviceGetPowerManagementLimit now
    min_w: float
    max_w: float

    def range_problem(self, watts: float) -> str | None:
        if self.min_w <= watts <= self.max_w:
            return None
        return (f"power_limit_w {watts:g} W is outside GPU {self.index} ({self.name})'s range "
                f"{self.min_w:g}-{self.max_w:g} W")


class PowerLimits:
    """The power limits of some GPUs (physical NVML indexes); holds NVML open until `close()`."""

    def __init__(self, gpu_ids: list[int], *, nvml: Any = None) -> None:
        self._nvml = nvml = open_nvml(nvml, PowerLimitError)
        self._open = True
        try:
            self._handles = {index: nvml.nvmlDeviceGetHandleByIndex(index) for index in gpu_ids}
        except Exception as error:
            self.close()
            raise PowerLimitError(f"NVML cannot open GPU(s) {gpu_ids} ({error})") from None

    def read(self, index: int) -> GpuPowerLimit:
        nvml, handle = self._nvml, self._handles[index]
        try:
            low, high = nvml.nvmlDeviceGetPowerManagementLimitConstraints(handle)
            return GpuPowerLimit(index, nvml_text(nvml.nvmlDeviceGetName(handle)),
                                 nvml_text(nvml.nvmlDeviceGetUUID(handle)),
                                 nvml.nvmlDeviceGetPowerManagementLimit(handle) / 1000, low / 1000, high / 1000)
        except Exception as error:
            raise PowerLimitError(f"GPU {index}: NVML cannot read its power limit ({_reason(error)})") from None

    def limit_w(self, index: int) -> float:
        """The limit in force now (read back after a set)."""
        try:
            return self._nvml.nvmlDeviceGetPowerManagementLimit(self._handles[index]) / 1000
        except Exception as error:
            raise PowerLimitError(f"GPU {index}: NVML cannot read its power limit ({_reason(error)})") from None

    def set(self, index: int, watts: float) -> float:
        """Set GPU `index`'s limit to `watts` (within its range: check with `read` first); returns it read back."""
        try:
            self._nvml.nvmlDeviceSetPowerManagementLimit(self._handles[index], round(watts * 1000))
        except Exception as error:
            code = getattr(error, "value", None)
            if code == getattr(self._nvml, "NVML_ERROR_NO_PERMISSION", NVML_ERROR_NO_PERMISSION):
                raise PowerLimitError(f"{NEEDS_PERMISSION}; NVML answered: {_reason(error)}") from None
            if code == getattr(self._nvml, "NVML_ERROR_NOT_SUPPORTED", NVML_ERROR_NOT_SUPPORTED):
                raise PowerLimitError(f"GPU {index} does not support setting its power limit (NVML: "
                                      f"{_reason(error)})") from None
            raise PowerLimitError(f"GPU {index}: NVML refused power limit {watts:g} W ({_reason(error)})") from None
        return self.limit_w(index)

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass


def _reason(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__

