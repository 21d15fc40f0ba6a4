"""The energy meter: begin/end windows around CodeCarbon's task mode.

One tracker per job; each window (`load`, or one run's `query`) is a CodeCarbon
task. A window returns a frozen `Reading` with units in the field names and
says how each component was measured. CodeCarbon logs and swallows its own
errors and may return `None`; here those become `MeterError`.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone


class MeterError(RuntimeError):
    """A window produced no usable reading."""


@dataclass(frozen=True)
class Reading:
    started_at: datetime
    ended_at: datetime
    duration_s: float
    energy_kwh: float
    cpu_energy_kwh: float
    gpu_energy_kwh: float
    ram_energy_kwh: float
    emissions_kg: float
    cpu_power_w: float | None
    gpu_power_w: float | None
    ram_power_w: float | None
    cpu_utilization_pct: float | None
    gpu_utilization_pct: float | None
    ram_utilization_pct: float | None
    cpu_model: str | None
    cpu_count: int | None
    gpu_model: str | None
    gpu_count: int | None
    ram_total_gb: float | None
    cpu_method: str  # rapl | cpu-load-estimate | constant
    gpu_method: str  # nvml-energy-counter | power-sampling | none
    ram_method: str  # RAM power is always a model: which one
    tracking_mode: str
    codecarbon_version: str
    country_iso_code: str | None
    region: str | None
    carbon_intensity_g_per_kwh: float | None
    carbon_intensity_source: str  # country mix | region | explicit
    power_samples: int  # power readings CodeCarbon could take inside the window
    is_unreliable: bool
    flags: str | None  # why unreliable: short-window, cpu-counter-backwards, ...


class Window:
    """Holds the reading once the `with meter.window(...)` block has ended."""

    reading: Reading | None = None


class Meter:
    def __init__(
        self,
        *,
        country_iso_code: str | None = None,
        region: str | None = None,
        grid_intensity_g_per_kwh: float | None = None,
        gpu_ids: list[int] | None = None,  # physical NVML indices; None = all GPUs, [] = none
        measure_power_secs: float = 1.0,
        synchronize: Callable[[], None] | None = None,
    ) -> None:
        if (country_iso_code is None) == (grid_intensity_g_per_kwh is None):
            # CodeCarbon would otherwise fall back to Canada without saying so.
            raise MeterError("give exactly one of country_iso_code or grid_intensity_g_per_kwh")
        from codecarbon import OfflineEmissionsTracker

        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        carbon = (
            {"force_carbon_intensity_g_co2e_kwh": grid_intensity_g_per_kwh}
            if grid_intensity_g_per_kwh is not None
            else {"country_iso_code": country_iso_code, "region": region}
        )
        self._intensity_source = (
            "explicit" if grid_intensity_g_per_kwh is not None else ("region" if region else "country mix")
        )
        self._output_dir = tempfile.TemporaryDirectory(prefix="wattsweep-codecarbon-")
        self._tracker = OfflineEmissionsTracker(
            project_name="wattsweep",
            measure_power_secs=measure_power_secs,
            save_to_file=False,  # nothing lands in the user's folder
            output_dir=self._output_dir.name,
            log_level="error",
            gpu_ids=gpu_ids,
            allow_multiple_runs=True,  # several pinned workers share one host
            **carbon,
        )
        self._measure_power_secs = measure_power_secs
        self._measures_gpu = gpu_ids != []
        self._synchronize = synchronize or (lambda: None)
        self._started_at: datetime | None = None

    def begin_window(self, name: str) -> None:
        self._synchronize()  # queued device work belongs to the previous window
        self._started_at = datetime.now(timezone.utc)
        self._tracker.start_task(name)
        if self._tracker._active_task is None:
            raise MeterError(f"CodeCarbon could not start window {name!r} (see its log)")

    def end_window(self, name: str) -> Reading:
        self._synchronize()  # the window ends when the device is done, not when Python is
        data = self._tracker.stop_task()
        if data is None:
            raise MeterError(f"CodeCarbon returned no data for window {name!r}")
        return self._reading(data)

    @contextmanager
    def window(self, name: str) -> Iterator[Window]:
        window = Window()
        self.begin_window(name)
        try:
            yield window
        except BaseException:
            with suppress(Exception):
                self._tracker.stop_task()  # leave the tracker ready for the next window
            raise
        window.reading = self.end_window(name)

    def close(self) -> None:
        try:
            self._tracker.stop()
        finally:
            self._output_dir.cleanup()

    def _reading(self, data) -> Reading:
        energies = (data.energy_consumed, data.cpu_energy, data.gpu_energy, data.ram_energy, data.duration)
        if any(value is None or not math.isfinite(value) for value in energies):
            raise MeterError(f"CodeCarbon returned an impossible reading: energy {data.energy_consumed!r} kWh")
        power_samples = int(data.duration // self._measure_power_secs)
        flags = window_flags(data, power_samples)
        intensity = data.emissions * 1000 / data.energy_consumed if data.energy_consumed > 0 else None
        cpu_method, gpu_method, ram_method = self._methods()
        return Reading(
            started_at=self._started_at,
            ended_at=datetime.now(timezone.utc),
            duration_s=data.duration,
            energy_kwh=data.energy_consumed,
            cpu_energy_kwh=data.cpu_energy,
            gpu_energy_kwh=data.gpu_energy,
            ram_energy_kwh=data.ram_energy,
            emissions_kg=data.emissions,
            cpu_power_w=data.cpu_power,
            gpu_power_w=data.gpu_power,
            ram_power_w=data.ram_power,
            cpu_utilization_pct=data.cpu_utilization_percent,
            gpu_utilization_pct=data.gpu_utilization_percent,
            ram_utilization_pct=data.ram_utilization_percent,
            cpu_model=data.cpu_model or None,
            cpu_count=int(data.cpu_count) if data.cpu_count else None,
            gpu_model=(data.gpu_model or None) if self._measures_gpu else None,
            gpu_count=int(data.gpu_count or 0) if self._measures_gpu else 0,
            ram_total_gb=data.ram_total_size,
            cpu_method=cpu_method,
            gpu_method=gpu_method,
            ram_method=ram_method,
            tracking_mode=data.tracking_mode,
            codecarbon_version=data.codecarbon_version,
            country_iso_code=data.country_iso_code or None,
            region=data.region or None,
            carbon_intensity_g_per_kwh=intensity,
            carbon_intensity_source=self._intensity_source,
            power_samples=power_samples,
            is_unreliable=bool(flags),
            flags=",".join(flags) or None,
        )

    def _methods(self) -> tuple[str, str, str]:
        """How CodeCarbon measured each component, read from its hardware objects."""
        cpu_method, gpu_method, ram_method = "constant", "none", "codecarbon-dimm-estimate"
        for hardware in self._tracker._hardware:
            kind = type(hardware).__name__
            if kind == "CPU":
                mode = getattr(hardware, "_mode", "constant")
                cpu_method = {"intel_rapl": "rapl", "cpu_load": "cpu-load-estimate"}.get(mode, mode)
            elif kind == "GPU" and self._measures_gpu:
                gpu_method = "nvml-energy-counter" if _has_energy_counter(hardware) else "power-sampling"
            elif kind == "RAM" and getattr(hardware, "_force_ram_power", None):
                ram_method = "constant"
        return cpu_method, gpu_method, ram_method


def window_flags(data, power_samples: int) -> list[str]:
    """Why a window's figure should not be trusted; an empty list when it can be.

    A window shorter than two power samples is mostly interpolation; a
    component whose energy went down means a counter (RAPL, NVML) wrapped or
    was reset inside the window.
    """
    flags = ["short-window"] if power_samples < 2 else []
    for component in ("cpu", "gpu", "ram"):
        if getattr(data, f"{component}_energy") < 0:
            flags.append(f"{component}-counter-backwards")
    return flags


def _has_energy_counter(gpu) -> bool:
    devices = getattr(getattr(gpu, "devices", None), "devices", []) or []
    try:
        return bool(devices) and all(d._get_total_energy_consumption() is not None for d in devices)
    except Exception:
        return False
