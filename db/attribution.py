"""Sharing machine-wide CPU and RAM energy between windows that overlapped on one host.

CodeCarbon reads CPU (RAPL or load-based estimate) and RAM for the whole
machine. Two workers measuring at once on one host would each report the
host's full CPU and RAM energy, counting it twice. Each window's shared
components are scaled by the average of 1/k(t) over the window, where k(t) is
the number of this host's windows active at time t. At every instant the
shares of the active windows add up to one, so their attributed energy never
exceeds the host's reading. GPU energy is per device and is never shared.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Measurement


def concurrency_share(window: tuple[datetime, datetime], others: list[tuple[datetime, datetime]]) -> tuple[float, int]:
    """(average of 1/k over `window`, max k) where k counts `window` itself and the `others` active at each instant."""
    start, end = _utc(window[0]), _utc(window[1])
    others = [(_utc(s), _utc(e)) for s, e in others]
    total_s = (end - start).total_seconds()
    clipped = [(max(s, start), min(e, end)) for s, e in others if s < end and e > start]
    if total_s <= 0 or not clipped:
        return 1.0, 1
    edges = sorted({start, end, *(t for interval in clipped for t in interval)})
    weighted, most = 0.0, 1
    for left, right in zip(edges, edges[1:], strict=False):
        k = 1 + sum(1 for s, e in clipped if s <= left and e >= right)
        weighted += (right - left).total_seconds() / k
        most = max(most, k)
    return weighted / total_s, most


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite returns naive UTC


def attribute_shared_energy(session: Session, *, windows: list[Measurement]) -> None:
    """Set the attributed CPU/RAM energy of one worker's new `windows` (not yet added) and of every stored
    window they overlap.

    Call it last before commit: on Postgres it takes the host's transaction
    lock, so that two windows stored at the same instant still see each other,
    and holds it until commit. One query when nothing overlaps (one worker per
    host, or windows that follow each other); otherwise a second one for the
    windows overlapping those, and the shares are computed here.
    """
    host_id = windows[0].host_id
    if host_id is None or any(w.ended_at is None for w in windows):
        return
    lock_host(session, host_id)
    affected = _on_host(session, host_id, min(_utc(w.started_at) for w in windows),
                        max(_utc(w.ended_at) for w in windows))
    nearby = []
    if affected:  # other windows overlap: the shares of those depend on what overlaps them in turn
        span = [*windows, *affected]
        nearby = _on_host(session, host_id, min(_utc(m.started_at) for m in span), max(_utc(m.ended_at) for m in span))
    everyone = [*windows, *nearby]
    for window in [*windows, *affected]:
        others = [(m.started_at, m.ended_at) for m in everyone if m is not window]  # one object per row in a session
        _set_share(window, *concurrency_share((window.started_at, window.ended_at), others))


def lock_host(session: Session, host_id: str) -> None:
    """Postgres: hold this host's transaction lock until commit (SQLite serialises writers anyway)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"wattsweep-host:{host_id}"))))


def _set_share(window: Measurement, share: float, most: int) -> None:
    window.cpu_energy_attributed_kwh = window.cpu_energy_kwh * share
    window.ram_energy_attributed_kwh = window.ram_energy_kwh * share
    window.max_concurrent_windows = most


def _on_host(session: Session, host_id: str, start: datetime, end: datetime) -> list[Measurement]:
    """Stored windows of host `host_id` overlapping [start, end], in id order (a stable row-lock order)."""
    return list(
        session.scalars(
            select(Measurement)
            .where(Measurement.host_id == host_id, Measurement.ended_at > start, Measurement.started_at < end)
            .order_by(Measurement.id)
        )
    )
