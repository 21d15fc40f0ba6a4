"""The host's CPU and RAM energy as a time series, read by the worker's own CodeCarbon tracker while a window is open.

In task mode CodeCarbon reads RAPL at a window's start and end only, and
corrects at most one counter wrap in between: a window longer than the
counter's range (minutes at full power) loses energy, and co-located windows
cannot be attributed fairly from their totals alone (db/results/attribution.py).
The sampler has the tracker take its own measurement (what CodeCarbon's
periodic scheduler does outside task mode) every `period_s` while a window
is open: every 0.5 s, and at most half the time the fastest RAPL counter
takes to wrap at its domain's maximum power, so every RAPL delta spans at
most one wrap and CodeCarbon's correction always holds. CodeCarbon stays
the reader of the hardware; the window's figures are still its task's
figures, now the sum of sampled increments, and the increments are kept as
the window's `host_samples`. One sampler per meter is enough: every worker
of a host reads the same host counters.

The meter makes the tracker's task calls through the sampler (start_task,
stop_task), and calls `abandon` before touching the tracker otherwise, so
that a measurement of the sampler's thread never runs inside one of theirs.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from worker.measure.codecarbon_adapter import CodeCarbonTracker, CpuFacts

MAX_PERIOD_S = 0.5  # and the default: at 1 s the attribution error doubled (bench/attribution.py error)
MIN_PERIOD_S = 0.02
J_PER_KWH = 3.6e6


def rapl_wrap_s(cpu: CpuFacts | None) -> float | None:
    """Seconds the fastest RAPL counter CodeCarbon reads takes to wrap at its domain's maximum power.

    The maximum is the package domain's `constraint_0_max_power_uw` (a DRAM domain: its package's), else
    the TDP CodeCarbon uses. None when CodeCarbon does not read RAPL (nothing wraps).
    """
    if cpu is None or cpu.mode != "intel_rapl" or not cpu.rapl:
        return None
    wraps = []
    for counter in cpu.rapl:
        watts = _max_power_w(os.path.dirname(counter.path)) or (cpu.tdp_w or 0.0)
        if counter.range_j > 0 and watts > 0:
            wraps.append(counter.range_j / watts)
    return min(wraps, default=None)


def _max_power_w(domain: str) -> float | None:
    for folder in (domain, os.path.dirname(domain)):
        try:
            with open(os.path.join(folder, "constraint_0_max_power_uw")) as handle:
                watts = int(handle.read()) / 1e6
        except (OSError, ValueError):
            continue
        if watts > 0:
            return watts
    return None


def _round(value: float) -> float:
    return float(f"{value:.6g}")


@dataclass
class _Open:
    """The window being sampled: where it started and the tracker's totals at its last sample."""

    start_s: float
    last_s: float
    cpu_kwh: float
    ram_kwh: float
    t_s: list[float] = field(default_factory=list)
    cpu_j: list[float] = field(default_factory=list)
    ram_j: list[float] = field(default_factory=list)
    longest_s: float = 0.0
    skipped: bool = False


class HostEnergySampler:
    def __init__(self, tracker: CodeCarbonTracker, *, period_s: float | None = None) -> None:
        self._tracker = tracker
        self._lock = threading.Lock()
        self._asked_period_s = period_s
        self.period_s: float | None = None  # known once CodeCarbon has found its hardware (first window)
        self.wrap_s: float | None = None
        self._window: _Open | None = None
        self._opened = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_flags: list[str] = []
        self.last_samples: dict[str, list[float]] | None = None
        self.last_started_s: float | None = None  # when the window's first and last readings were taken
        self.last_stopped_s: float | None = None
        # Each metered GPU's energy counter (kWh) at those two readings, taken under the lock: no reading between.
        self.gpu_started_kwh: dict[int, float | None] = {}
        self.gpu_stopped_kwh: dict[int, float | None] = {}

    # -- the tracker's task calls, for the meter -----------------------------------------------------------------

    def start_task(self, name: str) -> None:
        """CodeCarbon's start_task, then sample the host until `stop_task`."""
        with self._lock:
            self._window, self.last_started_s, self.gpu_started_kwh = None, None, {}
            self._tracker.start_task(name)
            if self._tracker.active_task is None:
                return  # the meter says why
            if self.period_s is None:
                self._configure()
            started_s = self._read_at()
            self._window = _Open(started_s, started_s, *self._totals())
            self.last_started_s = started_s
            self.gpu_started_kwh, self.gpu_stopped_kwh = self._tracker.gpu_counters_kwh(), {}
        self._opened.set()
        if self._thread is None:
            self._thread = threading.Thread(target=self._sample_while_open, name="wattsweep-host-energy",
                                            daemon=True)
            self._thread.start()

    def stop_task(self, name: str) -> Any:
        """CodeCarbon's stop_task (its last reading closes the series); `last_samples` / `last_flags` describe it."""
        with self._lock:
            window, self._window = self._window, None
            self._opened.clear()
            self.last_samples, self.last_flags, self.last_stopped_s = None, [], None
            data = self._tracker.stop_task(name)
            self.last_stopped_s = self._read_at() if data is not None else None
            self.gpu_stopped_kwh = self._tracker.gpu_counters_kwh() if data is not None else {}
            if window is not None:
                self._record(window, self.last_stopped_s)
            self.last_samples = ({"t_s": window.t_s, "cpu_j": window.cpu_j, "ram_j": window.ram_j}
                                 if window is not None and window.t_s else None)
            self.last_flags = self._flags(window) if window is not None else []
        return data

    def abandon(self) -> None:
        """Stop sampling the open window, if any (it will not be read)."""
        with self._lock:
            self._window = None
            self._opened.clear()

    def annotate(self, reading: Any) -> Any:
        """`reading` (worker.measure.meter.Reading) with the last window's samples and flags (both flags: unreliable),
        its
        start and end the moments CodeCarbon read the hardware (on a loaded host, task set-up and the device state
        and flags read around them take tens of ms, which a window's interval must not include)."""
        flags = [*(reading.flags.split(",") if reading.flags else []), *self.last_flags]
        times = {}
        if self.last_started_s is not None and self.last_stopped_s is not None:
            times = {"started_at": datetime.fromtimestamp(self.last_started_s, timezone.utc),
                     "ended_at": datetime.fromtimestamp(self.last_stopped_s, timezone.utc)}
        return replace(reading, host_samples=self.last_samples, flags=",".join(flags)[:300] or None,
                       is_unreliable=reading.is_unreliable or bool(self.last_flags), **times)

    def close(self) -> None:
        self._stopping.set()
        self._opened.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- inside ----------------------------------------------------------------------------------------------------

    def _configure(self) -> None:
        cpu = self._tracker.cpu()
        self.wrap_s = rapl_wrap_s(cpu)
        period = self._asked_period_s or MAX_PERIOD_S
        if self.wrap_s is not None:
            period = min(period, self.wrap_s / 2)
        self.period_s = max(min(period, MAX_PERIOD_S), MIN_PERIOD_S)
        self._rapl = cpu.rapl if cpu is not None else ()

    def _read_at(self) -> float:
        """Epoch seconds of CodeCarbon's last reading of the hardware: its own clock, set just before a task's
        first reading (start_task) and just after every later one (a measurement)."""
        return self._tracker.last_reading_epoch_s()

    def _totals(self) -> tuple[float, float]:
        return self._tracker.totals_kwh()

    def _record(self, window: _Open, now_s: float) -> None:
        cpu_kwh, ram_kwh = self._totals()
        window.t_s.append(_round(now_s - window.start_s))
        window.cpu_j.append(_round((cpu_kwh - window.cpu_kwh) * J_PER_KWH))
        window.ram_j.append(_round((ram_kwh - window.ram_kwh) * J_PER_KWH))
        window.longest_s = max(window.longest_s, now_s - window.last_s)
        window.skipped = window.skipped or any(counter.skipped for counter in self._rapl)
        window.last_s, window.cpu_kwh, window.ram_kwh = now_s, cpu_kwh, ram_kwh

    def _flags(self, window: _Open) -> list[str]:
        """`cpu-sample-gap`: two readings further apart than a RAPL wrap at full power, so one may be lost;
        `cpu-sample-skipped`: CodeCarbon could not read (or could not correct) a RAPL counter once."""
        flags = []
        if self.wrap_s is not None and window.longest_s > self.wrap_s:
            flags.append("cpu-sample-gap")
        if window.skipped:
            flags.append("cpu-sample-skipped")
        return flags

    def _sample_while_open(self) -> None:
        while not self._stopping.is_set():
            self._opened.wait()
            with self._lock:
                window = self._window
            if window is None or self._stopping.is_set():
                continue
            delay = window.last_s + self.period_s - time.time()
            if delay > 0 and self._stopping.wait(delay):
                break
            with self._lock:
                if self._window is not window or time.time() < window.last_s + self.period_s:
                    continue
                try:
                    self._tracker.measure_now()
                except Exception:  # the window's end reads again; a gap shows in its flags
                    continue
                self._record(window, self._read_at())
