"""Idle baseline: what the host draws while this worker runs nothing.

Measured as an ordinary meter window around a sleep, so it goes through the
same CodeCarbon methods as the runs it is subtracted from.
"""

from __future__ import annotations

import time

from sqlalchemy.orm import Session

from db.models import IdleBaseline
from worker.meter import Meter, Reading


def measure_idle(meter: Meter, duration_s: float) -> Reading:
    with meter.window("idle") as window:
        time.sleep(duration_s)
    return window.reading


def store_baseline(session: Session, *, worker_id: str, hostname: str, reading: Reading,
                   host_id: str | None = None) -> IdleBaseline:
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
        cpu_method=reading.cpu_method,
        gpu_method=reading.gpu_method,
        ram_method=reading.ram_method,
    )
    session.add(baseline)
    session.flush()
    return baseline
