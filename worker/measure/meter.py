"""The energy meter: begin/end windows around CodeCarbon's task mode.

One tracker per carbon setting; each window (`load`, or one run's `query`)
is a CodeCarbon task. A window returns a frozen `Reading` with units in the
field names and says how each component was measured. CodeCarbon logs and
swallows its own errors and may return `None`; here those become
`MeterError`, and its warnings become the window's flags (worker.measure.codecarbon_log). CodeCarbon is
reached through one door, worker.measure.codecarbon_adapter, which lists every internal it relies on.

What a reading describes is this worker's device, not CodeCarbon's view of
the machine: a pinned worker stores gpu_count 1 and its GPU's own name and
UUID (read from NVML, a MIG slice through its parent GPU, flagged
`gpu-shared-mig`), a group of GPUs its size, and each GPU's own energy and
UUID beside their sum (`gpu_energies`: the difference of each GPU's counter
between CodeCarbon's readings that opened and closed the window), the
device's temperature, clock, power limit and throttle reasons at the
window's start and end (worker.measure.device_state; a group's combined), and
powers as the window's energy over its duration (CodeCarbon's are averages
since the tracker was made). A CPU worker meters no GPU: CodeCarbon's
hardware cache turns `gpu_ids=[]` into "every GPU" for a second tracker, so
its GPU objects are removed and the removal is checked at every window.
Every CodeCarbon setting is passed explicitly and its configuration files
and `CODECARBON_*` variables are not read (worker.measure.codecarbon_settings).
"""

from __future__ import annotations

import logging
import math
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from worker.measure import codecarbon_log
from worker.measure.codecarbon_adapter import CodeCarbonTracker
from worker.measure.device_state import (
    DeviceState,
    DeviceStateError,
    DeviceStateReader,
    group_state,
    no_state_columns,
)

log = logging.getLogger(__name__)
GPU_COUNTER_UPDATE_S = 0.1  # NVML's total-energy counter advances about every 100 ms
MIN_COUNTER_UPDATES = 5  # fewer GPU counter steps than this in a window: mostly quantisation
MAX_GPU_QUANTISATION = 0.02  # one update at each end, as a share of the window: above this, flagged
CPU_LOAD_SAMPLE_S = 1.0  # CodeCarbon samples CPU load once a second in a task (its monitor thread)
MIN_LOAD_SAMPLES = 2
# Flags that make a window's figure untrustworthy (the others say how it was made); + worker.measure.host_energy's.
UNRELIABLE = ("short-window", "gpu-shared-mig", "previous-window-open", "gpu-energy-zero")


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
    cpu_power_w: float | None  # the window's energy over its duration
    gpu_power_w: float | None
    ram_power_w: float | None
    cpu_utilization_pct: float | None
    gpu_utilization_pct: float | None
    ram_utilization_pct: float | None
    cpu_model: str | None
    cpu_count: int | None
    gpu_model: str | None  # the metered GPU's own name (a group: its GPUs' names, distinct, joined by " + ")
    gpu_count: int | None  # a pinned worker: its group's size
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
    is_unreliable: bool
    flags: str | None  # short-window, gpu-shared-mig, cpu-generic-tdp, carbon-world-average, ...
    gpu_uuid: str | None = None
    cpu_tdp_w: float | None = None  # the TDP CodeCarbon's CPU estimate used (None: measured, RAPL)
    pue: float = 1.0  # applied by CodeCarbon to every component's energy
    codecarbon_warnings: str | None = None  # what CodeCarbon logged inside the window, verbatim
    gpu_temperature_start_c: float | None = None
    gpu_sm_clock_start_mhz: float | None = None
    gpu_power_limit_start_w: float | None = None
    gpu_throttle_start: int | None = None  # NVML clocks-event reason bits (worker.measure.device_state)
    gpu_temperature_end_c: float | None = None
    gpu_sm_clock_end_mhz: float | None = None
    gpu_power_limit_end_w: float | None = None
    gpu_throttle_end: int | None = None
    host_samples: dict | None = None  # the host's CPU and RAM energy over the window (worker/measure/host_energy.py)
    # The cell's power_limit_w, set on the worker's GPUs for the window, and what NVML read back right after
    # setting it (worker.process.power_limits stamps them; None: no limit set).
    power_limit_set_w: float | None = None
    power_limit_read_w: float | None = None
    gpu_energies: list[dict] | None = None  # each pinned GPU's own energy: [{index, uuid, kwh}], PCI order


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
        mig_uuid: str | None = None,  # the worker runs on this MIG slice of gpu_ids[0]
        pue: float = 1.0,
        synchronize: Callable[[], None] | None = None,
        extra_flags: tuple[str, ...] = (),  # on every window, e.g. simulated-gpu
        nvml: Any = None,
    ) -> None:
        if (country_iso_code is None) == (grid_intensity_g_per_kwh is None):
            # CodeCarbon would otherwise fall back to Canada without saying so.
            raise MeterError("give exactly one of country_iso_code or grid_intensity_g_per_kwh")
        if mig_uuid and len(gpu_ids or []) > 1:
            raise MeterError(f"MIG slice {mig_uuid}: a group of GPUs takes whole GPUs only")
        if not (isinstance(pue, int | float) and math.isfinite(pue) and 1.0 <= pue <= 3.0):
            raise MeterError(f"pue {pue!r}: a data centre's PUE is between 1.0 and 3.0")
        self._intensity_source = (
            "explicit" if grid_intensity_g_per_kwh is not None else ("region" if region else "country mix")
        )
        self._measures_gpu = gpu_ids != []
        self._pinned = self._measures_gpu and bool(gpu_ids)  # its own GPU, or its group
        self._output_dir = tempfile.TemporaryDirectory(prefix="wattsweep-codecarbon-")
        self._pue = float(pue)
        with codecarbon_log.captured() as setup:
            self._tracker = CodeCarbonTracker.made(
                country_iso_code=country_iso_code, region=region, grid_intensity_g_per_kwh=grid_intensity_g_per_kwh,
                gpu_ids=gpu_ids, pue=self._pue, output_dir=self._output_dir.name)
            codecarbon_log.quiet_console()
            self._tracker.prepare_hardware()  # set-up happens here, not inside the first window
        if not self._measures_gpu:
            self._tracker.remove_gpus()
        elif gpu_ids is not None:
            self._tracker.keep_only_gpus(list(gpu_ids))  # the worker's own GPU(s) only (MIG noise, counters)
        self._setup_flags = [f for f in codecarbon_log.flags_of(setup.take()) if f != "codecarbon-warning"]
        self._extra_flags = list(extra_flags) + (["gpu-shared-mig"] if mig_uuid else [])
        self._devices: list[DeviceStateReader] = []
        self._gpus: list[dict[str, Any]] = []
        if self._pinned:
            for index in sorted(gpu_ids):
                try:
                    self._devices.append(DeviceStateReader(None if mig_uuid else index, mig_uuid=mig_uuid, nvml=nvml))
                except DeviceStateError as error:
                    self._close_devices()
                    raise MeterError(f"GPU {index}: {error}") from None
            self._gpus = [device.describe() for device in self._devices]
            self._check_gpu_metered([device.gpu_index for device in self._devices])
        self._tdp_w, generic_tdp = self._tracker.cpu_tdp()
        if generic_tdp and "cpu-generic-tdp" not in self._setup_flags:
            self._setup_flags.append("cpu-generic-tdp")
        self._methods = self._read_methods()
        # -- host energy time series (worker/measure/host_energy.py): the tracker's task calls go through its lock --
        from worker.measure.host_energy import HostEnergySampler

        self._host_energy = HostEnergySampler(self._tracker)
        self._synchronize = synchronize or (lambda: None)
        self._started_at: datetime | None = None
        self._task: str | None = None
        self._start_state: DeviceState | None = None
        self._capture: codecarbon_log.Capture | None = None
        self._window_flags: list[str] = []
        self._logged: set[str] = set()

    def begin_window(self, name: str) -> None:
        self._synchronize()  # queued device work belongs to the previous window
        self._window_flags = []
        if self._tracker.active_task is not None or self._task is not None:
            self._close_task()  # a window that never ended must not become this one
            self._window_flags.append("previous-window-open")
        self._capture = codecarbon_log.install()
        self._start_state = self.device_state()
        self._started_at = datetime.now(timezone.utc)
        task = f"{name}-{uuid.uuid4().hex[:12]}"
        self._host_energy.start_task(task)
        if self._tracker.active_task != task:
            self._close_task()
            raise MeterError(f"CodeCarbon could not start window {name!r} (see its log)")
        self._task = task

    def end_window(self, name: str) -> Reading:
        """The window's reading. Whatever fails here, CodeCarbon's task is closed: the next window starts clean."""
        if self._task is None:
            raise MeterError(f"window {name!r} was not begun")
        try:
            self._synchronize()  # the window ends when the device is done, not when Python is
            data = self._host_energy.stop_task(self._task)
            end_state = self.device_state()
            if data is None:
                raise MeterError(f"CodeCarbon returned no data for window {name!r}")
            return self._host_energy.annotate(self._reading(data, end_state, self._gpu_energies()))
        finally:
            self._close_task()

    @contextmanager
    def window(self, name: str) -> Iterator[Window]:
        window = Window()
        self.begin_window(name)
        try:
            yield window
        except BaseException:
            with suppress(Exception):
                self._close_task()  # leave the tracker ready for the next window
            raise
        window.reading = self.end_window(name)

    def device_state(self) -> DeviceState | None:
        """The pinned GPU's state now, a group's combined (worker.measure.device_state.group_state); None on CPU
        workers. E.g. for an idle baseline."""
        return group_state([device.read() for device in self._devices]) if self._devices else None

    @property
    def gpu(self) -> dict[str, Any] | None:
        """The (first) metered GPU's NVML index, name and UUID (a MIG slice: its parent's); None unless pinned."""
        return self._gpus[0] if self._gpus else None

    @property
    def gpus(self) -> list[dict[str, Any]]:
        """Every metered GPU's NVML index, name and UUID, in PCI order; [] unless pinned."""
        return list(self._gpus)

    def close(self) -> None:
        try:
            self._host_energy.close()
            self._close_task()
            self._tracker.stop()
        finally:
            self._close_devices()
            self._output_dir.cleanup()

    # --- internals

    def _close_task(self) -> None:
        """Stop CodeCarbon's open task, if any, even when stopping it fails; drop finished tasks."""
        self._host_energy.abandon()  # its thread measures no more: the calls below are this thread's alone
        self._tracker.close_task()
        self._task = None
        if self._capture is not None:
            codecarbon_log.uninstall(self._capture)
            self._capture = None

    def _close_devices(self) -> None:
        for device in self._devices:
            device.close()
        self._devices = []

    def _check_gpu_metered(self, indexes: list[int]) -> None:
        """CodeCarbon meters exactly the pinned GPU(s), by physical index."""
        metered = self._tracker.metered_gpu_ids()
        if metered != sorted(indexes):
            pinned = ", ".join(map(str, sorted(indexes)))
            raise MeterError(f"CodeCarbon meters GPU(s) {metered or 'none'}, not the pinned GPU(s) {pinned}: "
                             "is NVML visible to this process?")

    def _gpu_energies(self) -> list[dict[str, Any]] | None:
        """Each pinned GPU's energy in the window just stopped: its counter at CodeCarbon's closing reading minus
        its opening one, times the PUE as CodeCarbon applies it to their sum; kwh None for a GPU whose counter
        CodeCarbon could not read at both (power sampled instead)."""
        if not self._gpus:
            return None
        began, ended = self._host_energy.gpu_started_kwh, self._host_energy.gpu_stopped_kwh
        energies = []
        for gpu in self._gpus:
            start, stop = began.get(gpu["index"]), ended.get(gpu["index"])
            kwh = (stop - start) * self._pue if start is not None and stop is not None and stop >= start else None
            energies.append({"index": gpu["index"], "uuid": gpu["uuid"], "kwh": kwh})
        return energies

    def _assert_no_gpu(self, data) -> None:
        if "GPU" in self._tracker.hardware_kinds() or data.gpu_energy:
            raise MeterError("a CPU worker's meter read a GPU: CodeCarbon's hardware cache gave it every GPU")

    def _reading(self, data, end_state: DeviceState | None, gpu_energies: list[dict] | None = None) -> Reading:
        energies = (data.energy_consumed, data.cpu_energy, data.gpu_energy, data.ram_energy, data.duration)
        if any(value is None or not math.isfinite(value) for value in energies):
            raise MeterError(f"CodeCarbon returned an impossible reading: energy {data.energy_consumed!r} kWh")
        if not self._measures_gpu:
            self._assert_no_gpu(data)
        cpu_method, gpu_method, ram_method = self._methods
        messages = self._capture.take() if self._capture else []
        for message in dict.fromkeys(messages):
            if message not in self._logged:
                self._logged.add(message)
                log.warning("CodeCarbon: %s (kept in the window's flags)", message)
        flags = list(dict.fromkeys(
            self._window_flags + window_flags(data, cpu_method=cpu_method, gpu_method=gpu_method)
            + self._extra_flags + self._setup_flags + codecarbon_log.flags_of(messages)))
        intensity = data.emissions * 1000 / data.energy_consumed if data.energy_consumed > 0 else None
        duration = data.duration

        def watts(kwh: float) -> float | None:
            return kwh * 3.6e6 / duration if duration > 0 else None

        states = ((self._start_state.columns("start") if self._start_state else no_state_columns("start"))
                  | (end_state.columns("end") if end_state else no_state_columns("end")))
        gpus = self._gpus
        return Reading(
            started_at=self._started_at,
            ended_at=datetime.now(timezone.utc),
            duration_s=duration,
            energy_kwh=data.energy_consumed,
            cpu_energy_kwh=data.cpu_energy,
            gpu_energy_kwh=data.gpu_energy,
            ram_energy_kwh=data.ram_energy,
            emissions_kg=data.emissions,
            cpu_power_w=watts(data.cpu_energy),
            gpu_power_w=watts(data.gpu_energy),
            ram_power_w=watts(data.ram_energy),
            cpu_utilization_pct=data.cpu_utilization_percent,
            gpu_utilization_pct=data.gpu_utilization_percent if self._measures_gpu else None,
            ram_utilization_pct=data.ram_utilization_percent,
            cpu_model=data.cpu_model or None,
            cpu_count=int(data.cpu_count) if data.cpu_count else None,
            gpu_model=(" + ".join(dict.fromkeys(g["name"] for g in gpus)) if gpus
                       else ((data.gpu_model or None) if self._measures_gpu else None)),
            gpu_count=len(gpus) if gpus else (int(data.gpu_count or 0) if self._measures_gpu else 0),
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
            is_unreliable=any(flag in UNRELIABLE for flag in flags),
            flags=",".join(flags)[:300] or None,
            gpu_uuid=gpus[0]["uuid"] if len(gpus) == 1 else None,  # a group's: in gpu_energies
            gpu_energies=gpu_energies,
            cpu_tdp_w=self._tdp_w,
            pue=self._pue,
            codecarbon_warnings=codecarbon_log.kept_text(messages),
            **states,
        )

    def _read_methods(self) -> tuple[str, str, str]:
        """How CodeCarbon measures each component, read from its hardware objects."""
        cpu_method, gpu_method, ram_method = "constant", "none", "codecarbon-dimm-estimate"
        cpu = self._tracker.cpu()
        if cpu is not None:
            mode = cpu.mode if cpu.mode is not None else "constant"
            cpu_method = {"intel_rapl": "rapl", "cpu_load": "cpu-load-estimate"}.get(mode, mode)
        if self._measures_gpu and (energy_counter := self._tracker.gpu_energy_counter()) is not None:
            gpu_method = "nvml-energy-counter" if energy_counter else "power-sampling"
        if self._tracker.ram_power_forced():
            ram_method = "constant"
        return cpu_method, gpu_method, ram_method


def window_flags(data, *, cpu_method: str = "rapl", gpu_method: str = "none") -> list[str]:
    """Why a window's figure is limited by its counters; an empty list when it is not.

    The real limits: the GPU's energy counter advances every ~100 ms, so a
    window shorter than a few of its updates is mostly quantisation
    (`short-window`), and one shorter than 2 x 100 ms / 2% can be off by
    more than 2% (`gpu-counter-coarse`); a CPU estimated from load has one
    load sample a second. No component's energy can go down: CodeCarbon
    corrects one counter wrap per reading and skips a reading it cannot
    correct, and the host sampler reads RAPL often enough that one wrap is
    all there can be; its flags `cpu-sample-gap` and `cpu-sample-skipped` say
    when that did not hold (worker/measure/host_energy.py).
    """
    duration = data.duration
    flags = []
    short = gpu_method == "nvml-energy-counter" and duration < MIN_COUNTER_UPDATES * GPU_COUNTER_UPDATE_S
    short |= cpu_method in ("cpu-load-estimate", "constant") and duration < MIN_LOAD_SAMPLES * CPU_LOAD_SAMPLE_S
    if short:
        flags.append("short-window")
    if gpu_method == "nvml-energy-counter" and duration < 2 * GPU_COUNTER_UPDATE_S / MAX_GPU_QUANTISATION:
        flags.append("gpu-counter-coarse")
    if gpu_method != "none" and not data.gpu_energy > 0 and duration > 0:
        # A metered GPU draws power: zero means nothing was read (no energy counter, and CodeCarbon has no power
        # sampling to fall back on: codecarbon issue 1316), not a measurement.
        flags.append("gpu-energy-zero")
    return flags
