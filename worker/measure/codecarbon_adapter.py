"""The one door to CodeCarbon: wattsweep uses CodeCarbon through this module and nowhere else.

Public API first: `OfflineEmissionsTracker(**every setting)` (worker.measure.codecarbon_settings),
its `start_task` / `stop_task` / `stop`, the `EmissionsData` a task returns (the fields in
`EMISSIONS_DATA_FIELDS`) and the `codecarbon` logger, whose warnings become a window's flags
(worker.measure.codecarbon_log). That is not enough for windows that must be exact, so the rest
reads CodeCarbon's internals: each name is listed in `RELIED_ON` with the reason, and only the
methods of `CodeCarbonTracker` read them. tests/worker/test_codecarbon_contract.py checks every
listed name on the installed CodeCarbon and fails naming the one that is gone: run it first
when CodeCarbon is upgraded. The rules the meter applies to what it reads stay in the meter.
"""

from __future__ import annotations

import logging
import time
from contextlib import suppress
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from unittest import mock

from worker.measure.codecarbon_log import LOGGER, quiet_console
from worker.measure.codecarbon_settings import expected_held, explicit_settings

J_PER_KWH = 3.6e6
EMISSIONS_DATA_FIELDS = (  # what the meter reads of stop_task's EmissionsData (public)
    "energy_consumed", "cpu_energy", "gpu_energy", "ram_energy", "duration", "emissions",
    "cpu_utilization_percent", "gpu_utilization_percent", "ram_utilization_percent", "cpu_model", "cpu_count",
    "gpu_model", "gpu_count", "ram_total_size", "tracking_mode", "codecarbon_version", "country_iso_code", "region",
)


@dataclass(frozen=True)
class Relied:
    """One CodeCarbon name outside its public API: `owner` (a module, or a class whose instances carry it)."""

    owner: str
    name: str
    why: str


TRACKER = "codecarbon.emissions_tracker.OfflineEmissionsTracker"
CPU, RAM, GPU = "codecarbon.external.hardware.CPU", "codecarbon.external.ram.RAM", "codecarbon.external.hardware.GPU"
RAPL, RAPL_FILE = "codecarbon.core.cpu.IntelRAPL", "codecarbon.core.rapl.RAPLFile"
# Where the tracker keeps each setting wattsweep passes (checked after construction: none was read elsewhere).
HELD = {"pue": "_pue", "wue": "_wue", "force_cpu_power": "_force_cpu_power", "force_ram_power": "_force_ram_power",
        "tracking_mode": "_tracking_mode", "cloud_provider": "_cloud_provider", "cloud_region": "_cloud_region",
        "rapl_include_dram": "_rapl_include_dram", "rapl_prefer_psys": "_rapl_prefer_psys",
        "force_carbon_intensity_g_co2e_kwh": "force_carbon_intensity_g_co2e_kwh",
        "country_iso_code": "_country_iso_code"}
RELIED_ON = (
    Relied("codecarbon.emissions_tracker", "get_hierarchical_config",
           "patched to return {} while the tracker is made: no config file or CODECARBON_* variable is read"),
    Relied(TRACKER, "_electricitymaps_api_token", "cleared: a deprecated co2_signal token is read even when None"),
    *(Relied(TRACKER, attribute, f"holds the {setting} passed, checked after construction")
      for setting, attribute in HELD.items()),
    Relied(TRACKER, "_ensure_hardware_ready", "finds the hardware at the meter's set-up, not inside the first window"),
    Relied(TRACKER, "_hardware", "the hardware objects: what is metered and how; GPUs removed from a CPU worker's"),
    Relied(TRACKER, "_conf", "gpu_count, gpu_model and gpu_ids emptied with the GPUs, so that its data agrees"),
    Relied(TRACKER, "_active_task", "whether a task is open: start_task logs and swallows its own errors"),
    Relied(TRACKER, "_tasks", "a task stop_task left half-open is closed by hand; finished ones dropped (else kept)"),
    Relied(TRACKER, "_active_task_emissions_at_start", "reset with _active_task when stop_task failed half-way"),
    Relied(TRACKER, "_scheduler_monitor_power", "stopped when stop_task failed half-way, or it keeps sampling"),
    Relied(TRACKER, "_measure_power_and_energy", "one reading mid-window: the host energy time series (what its "
           "scheduler does outside task mode); its totals and clock below are what that reading left"),
    Relied(TRACKER, "_last_measured_time", "perf_counter time of its last hardware reading: a window's true ends"),
    Relied(TRACKER, "_total_cpu_energy", "running CPU energy (Energy.kWh): the host samples' increments"),
    Relied(TRACKER, "_total_ram_energy", "running RAM energy (Energy.kWh): the host samples' increments"),
    Relied("codecarbon.external.task.Task", "is_active", "cleared on a task stop_task left half-open"),
    Relied(CPU, "_mode", "intel_rapl | cpu_load | constant: the stored cpu_method, and whether a TDP enters"),
    Relied(CPU, "_tdp", "the TDP its estimate uses (cpu_tdp_w); a RAPL domain's power when it states no maximum"),
    Relied(CPU, "_is_generic_tdp", "its own mark of the generic fallback TDP (lost through its hardware cache)"),
    Relied(CPU, "_model", "the CPU model asked of its TDP table"),
    Relied(CPU, "_intel_interface", "the RAPL reader, in RAPL mode"),
    Relied(RAPL, "_rapl_files", "the RAPL counters it reads: their range sets the host sampling period"),
    Relied(RAPL_FILE, "path", "the counter's domain folder, whose constraint_0_max_power_uw is its maximum power"),
    Relied(RAPL_FILE, "max_energy_reading", "the counter's range (Energy.kWh): how soon it wraps"),
    Relied(RAPL_FILE, "sample_skipped", "it could not read or correct the counter once: cpu-sample-skipped"),
    Relied("codecarbon.core.hardware_cache", "get_cached_tdp", "its shared TDP table, asked whether a CPU is listed"),
    Relied("codecarbon.core.cpu.TDP", "_get_cpu_power_from_registry", "the TDP table's look-up by CPU model"),
    Relied(GPU, "_get_gpu_ids", "the physical indices a GPU object meters: must be exactly the pinned GPU"),
    Relied(GPU, "devices", "its AllGPUDevices"),
    Relied("codecarbon.core.gpu.AllGPUDevices", "devices", "the GPU devices, asked for their energy counter; "
           "cut to the worker's own, or it polls every GPU's utilisation (NVML refuses on MIG-enabled ones)"),
    Relied("codecarbon.core.gpu.AllGPUDevices", "device_count", "kept equal to the devices left"),
    Relied("codecarbon.core.gpu_nvidia.NvidiaGPUDevice", "gpu_index", "its physical NVML index: which are ours"),
    Relied("codecarbon.core.gpu_nvidia.NvidiaGPUDevice", "_get_total_energy_consumption",
           "answers when NVML has an energy counter (nvml-energy-counter), else power is sampled"),
    Relied("codecarbon.core.gpu_nvidia.NvidiaGPUDevice", "last_energy",
           "its energy counter at CodeCarbon's last reading of it (None without one): each GPU's own energy in a "
           "window is the difference between the readings that opened and closed it"),
    Relied(RAM, "_force_ram_power", "a forced RAM power makes ram_method constant"),
)


@dataclass(frozen=True)
class RaplCounter:
    """One RAPL counter CodeCarbon reads."""

    path: str  # its energy_uj file
    range_j: float  # the energy it holds before it wraps
    _file: Any = field(repr=False, compare=False)

    @property
    def skipped(self) -> bool:
        """CodeCarbon could not read (or could not correct) this counter at some reading."""
        return bool(getattr(self._file, "sample_skipped", False))


@dataclass(frozen=True)
class CpuFacts:
    """How CodeCarbon meters the CPU, in its own words."""

    mode: str | None  # intel_rapl | cpu_load | constant | ...
    model: str | None
    tdp_w: float | None
    generic_tdp_marked: bool
    rapl: tuple[RaplCounter, ...]


class CodeCarbonTracker:
    """One OfflineEmissionsTracker, reached only through these methods; `made` gives one with wattsweep's settings."""

    def __init__(self, tracker: Any) -> None:
        self._tracker = tracker

    @classmethod
    def made(cls, **settings) -> CodeCarbonTracker:
        """A tracker with `explicit_settings(**settings)`; RuntimeError if it holds anything else."""
        from codecarbon import OfflineEmissionsTracker, emissions_tracker

        logging.getLogger(LOGGER).setLevel(logging.WARNING)  # its INFO chatter off, its warnings captured
        quiet_console()
        values = explicit_settings(**settings)
        with mock.patch.object(emissions_tracker, "get_hierarchical_config", dict):  # files and CODECARBON_*: unread
            tracker = OfflineEmissionsTracker(**values)
        tracker._electricitymaps_api_token = None
        made = cls(tracker)
        wrong = {HELD[name]: value for name, value in made.held_settings().items()
                 if value != expected_held(values)[name]}
        if wrong:
            raise RuntimeError(f"CodeCarbon did not take wattsweep's settings: {wrong}")
        return made

    @property
    def emissions_tracker(self) -> Any:
        """The OfflineEmissionsTracker itself (the contract test checks the names above on it)."""
        return self._tracker

    # -- public API ---------------------------------------------------------------------------------------------

    def start_task(self, name: str) -> None:
        self._tracker.start_task(name)

    def stop_task(self, name: str) -> Any:
        """Its EmissionsData for the task, or None (CodeCarbon logs and swallows its errors)."""
        return self._tracker.stop_task(name)

    def stop(self) -> None:
        self._tracker.stop()

    # -- its internals (each name read below is in RELIED_ON) --------------------------------------------------

    def held_settings(self) -> dict[str, Any]:
        return {name: getattr(self._tracker, attribute, "?") for name, attribute in HELD.items()}

    def prepare_hardware(self) -> None:
        self._tracker._ensure_hardware_ready()

    @property
    def active_task(self) -> str | None:
        return self._tracker._active_task

    def close_task(self) -> None:
        """Stop the open task, if any, even when stopping it fails; drop finished tasks."""
        tracker = self._tracker
        if tracker._active_task is not None:
            with suppress(Exception):
                tracker.stop_task(tracker._active_task)
        if tracker._active_task is not None:  # stop_task raised half-way: undo what it could not
            with suppress(Exception):
                tracker._tasks[tracker._active_task].is_active = False
            tracker._active_task = None
            tracker._active_task_emissions_at_start = None
            with suppress(Exception):
                tracker._scheduler_monitor_power.stop()
        tracker._tasks.clear()  # finished tasks' data: kept by CodeCarbon for ever, read by nobody here

    def measure_now(self) -> None:
        """One reading of the hardware, added to the open task (what CodeCarbon's scheduler does outside tasks)."""
        self._tracker._measure_power_and_energy()

    def last_reading_epoch_s(self) -> float:
        """Epoch seconds of its last hardware reading: its own perf_counter clock, set just before a task's first
        reading (start_task) and just after every later one."""
        return self._tracker._last_measured_time + _epoch_minus_perf_counter()

    def totals_kwh(self) -> tuple[float, float]:
        """Its running CPU and RAM energy."""
        return self._tracker._total_cpu_energy.kWh, self._tracker._total_ram_energy.kWh

    # -- its hardware objects -----------------------------------------------------------------------------------

    def hardware(self) -> list[Any]:
        """Its hardware objects (CPU, GPU, RAM, ...), e.g. for their repr."""
        return list(self._tracker._hardware)

    def hardware_kinds(self) -> list[str]:
        return [type(h).__name__ for h in self._tracker._hardware]

    def remove_gpus(self) -> None:
        """Meter no GPU, whatever CodeCarbon's hardware cache handed this tracker."""
        tracker = self._tracker
        tracker._hardware = [h for h in tracker._hardware if type(h).__name__ != "GPU"]
        tracker._conf["gpu_count"], tracker._conf["gpu_model"], tracker._conf["gpu_ids"] = 0, "", []

    def metered_gpu_ids(self) -> list[int]:
        """The physical indices of the GPUs it meters, sorted."""
        gpus = [h for h in self._tracker._hardware if type(h).__name__ == "GPU"]
        return sorted({i for g in gpus for i in g._get_gpu_ids()})

    def keep_only_gpus(self, gpu_ids: list[int]) -> None:
        """Its GPU objects hold only these physical GPUs' devices. CodeCarbon keeps a device for every GPU on the
        node and polls each one's utilisation every second, whatever gpu_ids says: NVML refuses that on a
        MIG-enabled GPU, so one such GPU anywhere on the node would put a warning into every worker's windows."""
        for gpu in (h for h in self._tracker._hardware if type(h).__name__ == "GPU"):
            devices = gpu.devices
            devices.devices = [d for d in devices.devices if getattr(d, "gpu_index", None) in gpu_ids]
            devices.device_count = len(devices.devices)

    def gpu_counters_kwh(self) -> dict[int, float | None]:
        """Each metered GPU's energy counter (kWh) as CodeCarbon last read it, by physical index; None for a GPU
        without a counter. Read right after start_task and stop_task, these are the window's opening and closing
        reads: their differences add up to the window's GPU energy (before the PUE)."""
        counters: dict[int, float | None] = {}
        for gpu in (h for h in self._tracker._hardware if type(h).__name__ == "GPU"):
            metered = set(gpu._get_gpu_ids())
            for device in gpu.devices.devices:
                if getattr(device, "gpu_index", None) in metered:
                    last = getattr(device, "last_energy", None)
                    counters[device.gpu_index] = float(last.kWh) if last is not None else None
        return counters

    def gpu_energy_counter(self) -> bool | None:
        """Whether its (last) GPU object reads NVML's energy counter on every GPU it meters (a group: on each of the
        worker's GPUs); None when it has no GPU object. Another GPU of the node without a counter says nothing
        about this worker's."""
        answer = None
        for gpu in (h for h in self._tracker._hardware if type(h).__name__ == "GPU"):
            answer = _has_energy_counter(gpu)
        return answer

    def ram_power_forced(self) -> bool:
        return any(type(h).__name__ == "RAM" and getattr(h, "_force_ram_power", None) for h in self._tracker._hardware)

    def cpu(self) -> CpuFacts | None:
        """Its (first) CPU object's mode, model, TDP and RAPL counters; None when it has none."""
        cpu = next((h for h in self._tracker._hardware if type(h).__name__ == "CPU"), None)
        return cpu_facts(cpu) if cpu is not None else None

    def cpu_tdp(self) -> tuple[float | None, bool]:
        """(TDP in W its CPU estimate uses, whether it is a generic fallback); (None, False) when measured (RAPL).

        CodeCarbon falls back to 85 W, or 4 W per thread, for a CPU its table
        does not list, saying so only in a warning at the first tracker's
        set-up; its hardware cache forgets the "generic" mark. So the table is
        asked again (once per process).
        """
        cpu = self.cpu()
        if cpu is None:
            return None, False
        if cpu.mode not in ("cpu_load", "constant"):
            return None, False  # measured (RAPL, ...): no TDP enters the figure
        return cpu.tdp_w, cpu.generic_tdp_marked or not cpu_listed(cpu.model)


def cpu_facts(cpu: Any) -> CpuFacts:
    """What one of CodeCarbon's CPU objects says of itself."""
    files = getattr(getattr(cpu, "_intel_interface", None), "_rapl_files", None) or []
    tdp = getattr(cpu, "_tdp", None)
    return CpuFacts(mode=getattr(cpu, "_mode", None), model=getattr(cpu, "_model", None),
                    tdp_w=float(tdp) if tdp is not None else None,
                    generic_tdp_marked=bool(getattr(cpu, "_is_generic_tdp", False)),
                    rapl=tuple(RaplCounter(f.path, f.max_energy_reading.kWh * J_PER_KWH, f) for f in files))


@lru_cache(maxsize=8)
def cpu_listed(model: str | None) -> bool:
    """Whether CodeCarbon's CPU table has a TDP for this model."""
    if not model or model == "Unknown":
        return False
    try:
        from codecarbon.core import cpu
        from codecarbon.core.hardware_cache import get_cached_tdp

        return get_cached_tdp(cpu)._get_cpu_power_from_registry(model) is not None
    except Exception:  # CodeCarbon's internals moved: say generic rather than pass an estimate as known
        return False


def _has_energy_counter(gpu: Any) -> bool:
    devices = getattr(getattr(gpu, "devices", None), "devices", []) or []
    try:
        metered = set(gpu._get_gpu_ids())
        devices = [d for d in devices if getattr(d, "gpu_index", None) in metered]
        return bool(devices) and all(d._get_total_energy_consumption() is not None for d in devices)
    except Exception:
        return False


def _epoch_minus_perf_counter() -> float:
    """time.time() - time.perf_counter(), with time.time() read between two perf_counter reads (the tightest of
    three tries): a thread switch between two plain reads would shift a window's end by that long, and the last
    GPU reading sits a fraction of a millisecond before it."""
    tries = []
    for _ in range(3):
        before = time.perf_counter()
        epoch = time.time()
        after = time.perf_counter()
        tries.append((after - before, epoch - (before + after) / 2))
    return min(tries)[1]
