"""The steady state of a served run: the part in which the engine holds its target load, and its energy.

Following ML.ENERGY, a serving figure is read where the server is as full as the load asks: without the
ramp-up (the first requests arriving to an empty server) and the drain (the last ones finishing with nobody
behind them). The run's window is metered whole, as every window is; the steady part is cut from it with the
time series the meter already keeps: the host's CPU and RAM energy per sample interval (`host_samples`,
worker/measure/host_energy.py) and the GPU's energy counter, read with the load samples. Cutting, rather than a
second window, because the meter holds one CodeCarbon task at a time, and because where the steady part begins
is known only afterwards, from the samples.

Closed loop (concurrency N): the client holds N requests in flight from the moment it has sent the N-th until
the first of its N senders finds no prompt left. Inside that span the engine's own count (running + waiting, its
Prometheus gauges) bounds the steady part where the engine has one and its median there reaches 90% of N: from
its first sample at 90% of N to its last, leaving out the engine's ramp-up (the first prefills) and its drain.
Where the engine's count does not show the target, the client's span is the steady part, flagged
`engine-below-target` (also when the engine's mean count over the steady part is below 90% of N): on two CPU
cores, where the client, vLLM's API server and its engine core share the cores, the engine core finishes
requests faster than the API server feeds them, and its gauges read near 0 while N requests are outstanding.
`no-steady-state`: the client's span is empty or held under half of N on average; `steady-short`: the steady
part is shorter than `steady_min_s`.
Open loop (request_rate): from the first sample whose in-flight count reaches the median of the arrival period,
to the last arrival.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.engines.records import LoadRun, LoadSample

HOLD_SHARE = 0.9  # of the target count: an engine sample at or above it holds the load
MIN_MEAN_LOAD = 0.5  # of the target, the client's mean in flight: below it the load never settled
J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class Steady:
    start: float | None  # epoch seconds
    end: float | None
    flags: tuple[str, ...] = ()
    engine_load_mean: float | None = None  # the engine's running + waiting over the steady part, where it says

    @property
    def duration_s(self) -> float | None:
        return self.end - self.start if self.start is not None and self.end is not None else None


def _engine_load(sample: LoadSample) -> float | None:
    if sample.running is None:
        return None
    return sample.running + (sample.waiting or 0.0)


def steady_part(run: LoadRun, *, concurrency: int | None, steady_min_s: float) -> Steady:
    low, high = run.full_at, run.drain_at
    inside = [s for s in run.samples if low is not None and high is not None and low <= s.at <= high]
    if len(inside) < 2 or high <= low:
        return Steady(None, None, ("no-steady-state",))
    engine = [(s.at, load) for s in inside if (load := _engine_load(s)) is not None]
    flags: tuple[str, ...] = ()
    if concurrency is not None:
        need = max(1, math.floor(HOLD_SHARE * concurrency))
        holding = [at for at, load in engine if load >= need]
        if len(holding) >= 2 and statistics.median(load for _, load in engine) >= need:
            start, end = holding[0], holding[-1]  # the engine's own count bounds it: its ramp-up and drain left out
        else:  # the engine's gauges do not show the load the client holds: the client's span, flagged below
            start, end = low, high
        within = [load for at, load in engine if start <= at <= end]
        mean = sum(within) / len(within) if within else None
        if mean is not None and mean < HOLD_SHARE * concurrency:
            flags += ("engine-below-target",)
        client = [s.in_flight for s in inside if start <= s.at <= end]
        if not client or sum(client) / len(client) < MIN_MEAN_LOAD * concurrency:
            return Steady(None, None, ("no-steady-state",), mean)
    else:
        client = [s.in_flight for s in inside]
        median = statistics.median(client)
        start = next(s.at for s in inside if s.in_flight >= median)
        end = high
        within = [load for at, load in engine if start <= at <= end]
        mean = sum(within) / len(within) if within else None
    if end <= start:
        return Steady(None, None, ("no-steady-state",), mean)
    flags += ("steady-short",) if end - start < steady_min_s else ()
    return Steady(start, end, flags, mean)


@dataclass(frozen=True)
class SteadyEnergy:
    energy_kwh: float
    cpu_kwh: float
    gpu_kwh: float
    ram_kwh: float
    flags: tuple[str, ...] = ()


def _overlap_share(t_s: list[float], joules: list[float], left: float, right: float) -> float | None:
    """The share of a sampled series' energy inside [left, right] (seconds after the window's start); each
    interval's energy spread evenly over it. None when the series holds no energy to share."""
    total = sum(joules)
    if not t_s or total <= 0:
        return None
    inside, previous = 0.0, 0.0
    for end, energy in zip(t_s, joules, strict=True):
        width = end - previous
        if width > 0:
            inside += energy * max(0.0, min(end, right) - max(previous, left)) / width
        previous = end
    return inside / total


def steady_energy(reading: Any, steady: Steady, samples: list[LoadSample]) -> SteadyEnergy:
    """The metered window's energy inside the steady part, component by component."""
    origin = _epoch(reading.started_at)
    left, right = steady.start - origin, steady.end - origin
    time_share = max(0.0, min(right, reading.duration_s) - max(left, 0.0)) / reading.duration_s \
        if reading.duration_s > 0 else 0.0
    flags: list[str] = []
    host = reading.host_samples or {}
    cpu_share = _overlap_share(host.get("t_s") or [], host.get("cpu_j") or [], left, right)
    ram_share = _overlap_share(host.get("t_s") or [], host.get("ram_j") or [], left, right)
    if (cpu_share is None and reading.cpu_energy_kwh > 0) or (ram_share is None and reading.ram_energy_kwh > 0):
        flags.append("steady-prorated")  # no host series: spread evenly over the window
    cpu = reading.cpu_energy_kwh * (time_share if cpu_share is None else cpu_share)
    ram = reading.ram_energy_kwh * (time_share if ram_share is None else ram_share)
    gpu = _gpu_between(samples, steady.start, steady.end)
    if gpu is None:
        gpu = reading.gpu_energy_kwh * time_share
        if reading.gpu_energy_kwh > 0:
            flags.append("gpu-steady-prorated")
    else:
        gpu *= getattr(reading, "pue", 1.0) or 1.0  # as CodeCarbon applied it to the window's GPU energy
    return SteadyEnergy(cpu + gpu + ram, cpu, gpu, ram, tuple(flags))


def _gpu_between(samples: list[LoadSample], start: float, end: float) -> float | None:
    """kWh the GPU's energy counter advanced between `start` and `end` (linear between samples); None without."""
    points = [(s.at, s.gpu_energy_mj) for s in samples if s.gpu_energy_mj is not None]
    if len(points) < 2 or start < points[0][0] - 1.0 or end > points[-1][0] + 1.0:
        return None

    def at(t: float) -> float:
        for (t0, e0), (t1, e1) in zip(points, points[1:], strict=False):
            if t <= t1:
                return e0 + (e1 - e0) * (min(max(t, t0), t1) - t0) / (t1 - t0) if t1 > t0 else e1
        return points[-1][1]

    return max(0.0, at(end) - at(start)) / 1000.0 / J_PER_KWH


def _epoch(moment: datetime | float) -> float:
    return moment.timestamp() if isinstance(moment, datetime) else float(moment)
