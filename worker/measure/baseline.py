"""Idle baseline: what this worker's node draws while the worker runs nothing, per component.

Measured as an ordinary meter window around a sleep, so it goes through the
same CodeCarbon methods as the runs it is subtracted from. A baseline that
stays true needs more than a sleep:

- the GPU must have settled first: a device still hot from the last job
  draws more at idle than a cold one. The baseline starts once its power has
  stayed within a tolerance (2%) over a settle window (5 s), or after a
  timeout, and then says so (`gpu-not-settled`);
- co-located neighbours (workers on the same kernel) must not be running a
  window, or their CPU and RAM draw counts as this worker's idle: the
  baseline waits for them a while, then is taken anyway and flagged
  (`neighbours-busy`);
- it is measured again when it no longer describes the device: older than
  its maximum age, a device temperature at a run's start more than 10 °C from
  the baseline's, or before every run of a sweep with `baseline: per-run`;
- the device's temperature, SM clock, power limit and throttle reasons are
  stored with it (worker.measure.device_state), as each window stores its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from db.models import IdleBaseline
from worker.measure.meter import Meter, Reading

PER_RUN = "per-run"  # the sweep file's `baseline: per-run`


@dataclass(frozen=True)
class BaselinePolicy:
    """When a baseline is measured and how long it may wait (db.settings: WATTSWEEP_BASELINE_*)."""

    window_s: float = 20.0
    max_age_s: float = 3600.0
    settle_tolerance: float = 0.02
    settle_window_s: float = 5.0
    settle_timeout_s: float = 120.0
    settle_interval_s: float = 0.25
    drift_c: float = 10.0
    neighbour_wait_s: float = 60.0

    @classmethod
    def from_settings(cls, **overrides: Any) -> BaselinePolicy:
        from db.settings import get_settings

        s = get_settings()
        values = dict(window_s=s.baseline_window_s, max_age_s=s.baseline_max_age_s,
                      settle_tolerance=s.baseline_settle_tolerance, settle_window_s=s.baseline_settle_window_s,
                      settle_timeout_s=s.baseline_settle_timeout_s, settle_interval_s=s.baseline_settle_interval_s,
                      drift_c=s.baseline_drift_c, neighbour_wait_s=s.baseline_neighbour_wait_s)
        return cls(**(values | {k: v for k, v in overrides.items() if v is not None}))


@dataclass(frozen=True)
class Settling:
    settled: bool | None  # None: nothing to settle (no GPU, or its power cannot be read)
    waited_s: float
    power_w: float | None  # the last power read


def wait_until_settled(read_power: Callable[[], float | None], *, tolerance: float, window_s: float,
                       timeout_s: float, interval_s: float, clock: Callable[[], float] = time.monotonic,
                       sleep: Callable[[float], None] = time.sleep) -> Settling:
    """Read power every `interval_s` until every reading of the last `window_s` or more stayed within
    `tolerance` of their mean (max - min <= tolerance x mean), or `timeout_s` has passed (settled False)."""
    start = clock()
    samples: list[tuple[float, float]] = []
    while True:
        now, power = clock(), read_power()
        if power is None:
            return Settling(None, now - start, None)
        samples.append((now, power))
        if now - stable_since(samples, tolerance) >= window_s:
            return Settling(True, now - start, power)
        if now - start >= timeout_s:
            return Settling(False, now - start, power)
        samples = [(t, p) for t, p in samples if t >= now - window_s - interval_s]  # older ones cannot matter
        sleep(interval_s)


def stable_since(samples: list[tuple[float, float]], tolerance: float) -> float:
    """The time of the earliest of the (time, watts) `samples` from which all later ones are within `tolerance`."""
    low = high = total = samples[-1][1]
    since = samples[-1][0]
    for count, (t, power) in enumerate(reversed(samples[:-1]), start=2):
        low, high, total = min(low, power), max(high, power), total + power
        if high - low > tolerance * abs(total / count):
            break
        since = t
    return since


def remeasure_reason(*, current: dict[str, Any] | None, now: float, temperature_c: float | None,
                     policy: BaselinePolicy, per_run: bool = False) -> str | None:
    """Why a new baseline is needed before a run, or None. `current`: the baseline in use, as
    {"at": time.monotonic() when measured, "temperature_c": ..., "used": whether a run has used it}."""
    if current is None:
        return "first"
    if now - current["at"] >= policy.max_age_s:
        return "age"
    if per_run and current["used"]:
        return PER_RUN
    then = current.get("temperature_c")
    if then is not None and temperature_c is not None and abs(temperature_c - then) > policy.drift_c:
        return "temperature-drift"
    return None


def measure_idle(meter: Meter, duration_s: float) -> Reading:
    with meter.window("idle") as window:
        time.sleep(duration_s)
    return window.reading


def store_baseline(session: Session, *, worker_id: str, hostname: str, reading: Reading,
                   host_id: str | None = None, state: Any = None, settling: Settling | None = None,
                   reason: str | None = None, flags: tuple[str, ...] = ()) -> IdleBaseline:
    """The baseline row: powers and energies per component, the device's `state` (worker.measure.device_state) when it
    began, how it settled, why it was taken and what was wrong with it."""
    def watts(kwh: float) -> float:
        return kwh * 3.6e6 / reading.duration_s

    baseline = IdleBaseline(
        worker_id=worker_id,
        hostname=hostname,
        host_id=host_id or hostname,
        measured_at=reading.started_at,
        duration_s=reading.duration_s,
        cpu_power_w=watts(reading.cpu_energy_kwh),
        gpu_power_w=watts(reading.gpu_energy_kwh),
        ram_power_w=watts(reading.ram_energy_kwh),
        cpu_energy_kwh=reading.cpu_energy_kwh,
        gpu_energy_kwh=reading.gpu_energy_kwh,
        ram_energy_kwh=reading.ram_energy_kwh,
        cpu_method=reading.cpu_method,
        gpu_method=reading.gpu_method,
        ram_method=reading.ram_method,
        gpu_temperature_c=getattr(state, "temperature_c", None),
        gpu_sm_clock_mhz=getattr(state, "sm_clock_mhz", None),
        gpu_power_limit_w=getattr(state, "power_limit_w", None),
        gpu_throttle_reasons=getattr(state, "throttle_reasons", None),
        settled=settling.settled if settling else None,
        settle_s=settling.waited_s if settling else None,
        reason=reason,
        flags=",".join(dict.fromkeys(flags)) or None,
    )
    session.add(baseline)
    session.flush()
    return baseline


def take_baseline(meter: Meter, *, transact: Callable[[Callable[[Session], Any]], Any], worker_id: str,
                  hostname: str, host_id: str, policy: BaselinePolicy, reason: str, lease_timeout_s: float,
                  sleep: Callable[[float], None] = time.sleep) -> tuple[int, Any]:
    """Measure and store one baseline as the module docstring says; returns its id and the device's state
    when it began (None without a GPU). `transact(work)` runs `work(session)` in a transaction, retried."""
    from db.results.baselines import begin_baseline, busy_neighbours, end_baseline, overlapping_windows

    def neighbours() -> list[str]:
        return transact(lambda s: busy_neighbours(s, worker_id=worker_id, host_id=host_id,
                                                  lease_timeout_s=lease_timeout_s))

    flags: list[str] = []
    transact(lambda s: begin_baseline(s, worker_id=worker_id))
    try:
        deadline = time.monotonic() + policy.neighbour_wait_s
        while neighbours():
            if time.monotonic() >= deadline:
                flags.append("neighbours-busy")
                break
            sleep(min(1.0, max(deadline - time.monotonic(), 0.05)))
        settling = None
        if meter.device_state() is not None:
            settling = wait_until_settled(lambda: getattr(meter.device_state(), "power_w", None),
                                          tolerance=policy.settle_tolerance, window_s=policy.settle_window_s,
                                          timeout_s=policy.settle_timeout_s, interval_s=policy.settle_interval_s,
                                          sleep=sleep)
            if settling.settled is False:
                flags.append("gpu-not-settled")
        state = meter.device_state()
        reading = measure_idle(meter, policy.window_s)
        if "neighbours-busy" not in flags and (neighbours() or transact(lambda s: overlapping_windows(
                s, worker_id=worker_id, host_id=host_id, started_at=reading.started_at, ended_at=reading.ended_at))):
            flags.append("neighbours-busy")

        def store(session: Session) -> int:
            end_baseline(session, worker_id=worker_id)
            return store_baseline(session, worker_id=worker_id, hostname=hostname, host_id=host_id,
                                  reading=reading, state=state, settling=settling, reason=reason,
                                  flags=tuple(flags)).id

        return transact(store), state
    except BaseException:
        try:
            transact(lambda s: end_baseline(s, worker_id=worker_id))
        except Exception:  # pragma: no cover - the database is gone too: the marker goes with the worker
            pass
        raise
