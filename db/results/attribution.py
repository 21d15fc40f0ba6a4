"""Sharing the host's CPU and RAM energy between the windows that overlapped on it, so that no joule counts twice.

CodeCarbon reads CPU (RAPL or a load-based estimate) and RAM for the whole
machine, so every co-located worker reads the host's full CPU and RAM energy.
Each window carries that reading as a time series (worker/measure/host_energy.py):
the energy of consecutive sample intervals, 1 s or shorter. A window is
attributed

    sum over its sample intervals i of  dE_i * mean(1/k(t) for t in interval i)

where k(t) counts the host's windows active at t (the window itself
included). At every instant the shares 1/k of the active windows add up to
one, so the attributed energies of co-located windows add up to what the
host drew while any of them was open, whatever the host's power did (the
time average of 1/k over a whole window, used before, is right only at
constant power). Each window reads the host through its own worker's
sampler, so the sum is exact up to how power changed inside one sample
interval where another window started or ended. The samples say how the
window's stored CPU and RAM energy was spread in time; that energy is what
is shared (a window alone keeps exactly its own, whatever the samples'
rounding). A window stored without samples counts as one interval: its
energy spread evenly over its duration.
GPU energy is per device and is never shared. A worker on a group of GPUs
stores one window for the group (its GPUs' energies inside it), so for this
sharing it is one window, like any other worker's.

A host is one kernel (`host_id`). A window stored later that overlaps
stored ones changes their k, so those are attributed again.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Measurement

J_PER_KWH = 3.6e6


class Concurrency:
    """k(t), the number of windows active at t, for a set of [start, end) intervals (epoch seconds).

    Touching is not overlapping: a window ending at t and another starting at t are never active together.
    """

    def __init__(self, intervals: Sequence[tuple[float, float]]) -> None:
        events = sorted([(s, 1) for s, e in intervals if e > s] + [(e, -1) for s, e in intervals if e > s])
        self.points: list[float] = []  # k is constant on [points[j], points[j + 1])
        self.k: list[int] = []
        active = 0
        for at, step in events:  # ends (-1) sort before starts (+1) at one instant
            active += step
            if self.points and self.points[-1] == at:
                self.k[-1] = active
            else:
                self.points.append(at)
                self.k.append(active)
        # integral of 1/k from points[0] to points[j]; segments with k = 0 add nothing
        self._inverse = [0.0]
        for j in range(len(self.points) - 1):
            width = self.points[j + 1] - self.points[j]
            self._inverse.append(self._inverse[-1] + (width / self.k[j] if self.k[j] else 0.0))

    def _integral(self, t: float) -> float:
        j = bisect_right(self.points, t) - 1
        if j < 0:
            return 0.0
        k = self.k[j] if j < len(self.k) else 0
        return self._inverse[j] + ((t - self.points[j]) / k if k else 0.0)

    def mean_inverse(self, left: float, right: float) -> float:
        """The mean of 1/k(t) over [left, right] (a point interval: 1/k at that point)."""
        if right <= left:
            j = bisect_right(self.points, left) - 1
            k = self.k[j] if 0 <= j < len(self.k) else 0
            return 1.0 / k if k else 0.0
        return (self._integral(right) - self._integral(left)) / (right - left)

    def most(self, left: float, right: float) -> int:
        """The largest k(t) for t in [left, right)."""
        first = max(bisect_right(self.points, left) - 1, 0)
        last = bisect_left(self.points, right)
        return max(self.k[first:last], default=0)


@dataclass(frozen=True)
class Share:
    cpu_kwh: float
    ram_kwh: float
    most: int  # the largest number of the host's windows open at once during this window


def intervals_of(window: Measurement) -> list[tuple[float, float, float]]:
    """The window's host samples as (interval end offset s, CPU kWh, RAM kWh), in time order, ending at its end.

    No samples: one interval holding the whole window's CPU and RAM energy.
    """
    duration = (_utc(window.ended_at) - _utc(window.started_at)).total_seconds()
    samples = window.host_samples
    if not samples or not samples.get("t_s"):
        return [(duration, window.cpu_energy_kwh or 0.0, window.ram_energy_kwh or 0.0)]
    out = [(min(max(t, 0.0), duration), cpu_j / J_PER_KWH, ram_j / J_PER_KWH)
           for t, cpu_j, ram_j in zip(samples["t_s"], samples["cpu_j"], samples["ram_j"], strict=True)]
    out[-1] = (duration, *out[-1][1:])  # the window's last reading is at its end, whatever the clocks said
    return out


def share(start_s: float, samples: Sequence[tuple[float, float, float]], concurrency: Concurrency,
          totals: tuple[float, float] | None = None) -> Share:
    """Window starting at `start_s` with `samples` (see `intervals_of`): its attributed CPU and RAM energy.

    `totals` (the window's stored CPU and RAM kWh): the samples only say how that energy was spread in time
    (their sum can differ from the stored figure by their rounding), so a window alone gets exactly its own.
    """
    cpu = ram = cpu_read = ram_read = time_weighted = 0.0
    left = 0.0
    for right, cpu_kwh, ram_kwh in samples:
        right = max(right, left)
        inverse = concurrency.mean_inverse(start_s + left, start_s + right) or 1.0  # the window itself is active
        cpu, cpu_read = cpu + cpu_kwh * inverse, cpu_read + cpu_kwh
        ram, ram_read = ram + ram_kwh * inverse, ram_read + ram_kwh
        time_weighted += (right - left) * inverse
        left = right
    end_s = start_s + (samples[-1][0] if samples else 0.0)
    if totals is not None:
        mean_inverse = time_weighted / left if left > 0 else 1.0  # nothing read: spread evenly
        cpu = totals[0] * (cpu / cpu_read if cpu_read > 0 else mean_inverse)
        ram = totals[1] * (ram / ram_read if ram_read > 0 else mean_inverse)
    return Share(cpu, ram, max(concurrency.most(start_s, end_s), 1))


def attribute_shared_energy(session: Session, *, windows: list[Measurement]) -> None:
    """Set the attributed CPU/RAM energy of one worker's new `windows` (not yet added) and of every stored
    window they overlap.

    Call it last before commit: on Postgres it takes the host's transaction
    lock, so that two windows stored at the same instant still see each other,
    and holds it until commit. One query when nothing overlaps (one worker per
    host, or windows that follow each other); otherwise the overlapped windows
    (with their samples) and the intervals of every window overlapping those.
    """
    host_id = windows[0].host_id
    if host_id is None or any(w.ended_at is None for w in windows):
        return
    lock_host(session, host_id)
    start, end = min(_utc(w.started_at) for w in windows), max(_utc(w.ended_at) for w in windows)
    affected = _on_host(session, host_id, start, end)
    both = [*windows, *affected]
    origin = min(_utc(m.started_at) for m in both)  # seconds from here: epoch floats are too coarse

    def seconds(moment: datetime) -> float:
        return (_utc(moment) - origin).total_seconds()

    def span(window: Measurement) -> tuple[float, float]:
        return seconds(window.started_at), seconds(window.ended_at)

    intervals = {("new", i): span(w) for i, w in enumerate(windows)}
    if affected:  # their k depends on everything that overlaps them in turn
        rows = session.execute(
            select(Measurement.id, Measurement.started_at, Measurement.ended_at)
            .where(Measurement.host_id == host_id, Measurement.ended_at > origin,
                   Measurement.started_at < max(_utc(m.ended_at) for m in both))
        ).all()
        intervals |= {row.id: (seconds(row.started_at), seconds(row.ended_at)) for row in rows}
        intervals |= {m.id: span(m) for m in affected}  # as this session has them
    concurrency = Concurrency(list(intervals.values()))
    for window in both:
        totals = (window.cpu_energy_kwh or 0.0, window.ram_energy_kwh or 0.0)
        _set_share(window, share(seconds(window.started_at), intervals_of(window), concurrency, totals))


def lock_host(session: Session, host_id: str) -> None:
    """Postgres: hold this host's transaction lock until commit (SQLite serialises writers anyway)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"wattsweep-host:{host_id}"))))


def _set_share(window: Measurement, attributed: Share) -> None:
    window.cpu_energy_attributed_kwh = attributed.cpu_kwh
    window.ram_energy_attributed_kwh = attributed.ram_kwh
    window.max_concurrent_windows = attributed.most


def _on_host(session: Session, host_id: str, start: datetime, end: datetime) -> list[Measurement]:
    """Stored windows of host `host_id` overlapping [start, end], in id order (a stable row-lock order)."""
    return list(
        session.scalars(
            select(Measurement)
            .where(Measurement.host_id == host_id, Measurement.ended_at > start, Measurement.started_at < end)
            .order_by(Measurement.id)
        )
    )


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite returns naive UTC
