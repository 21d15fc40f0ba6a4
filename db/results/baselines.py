"""Idle baselines and the neighbours they must not overlap: which co-located workers are running a window now.

A baseline measures what a worker's node draws while this worker runs
nothing; CPU and RAM readings are node-wide, so a neighbour's window (a
worker on the same kernel, `workers.host_id`) would be counted as idle. A
neighbour is busy while it holds a live unit lease (it loads, warms up or
measures under it) and is not measuring a baseline itself
(`workers.baseline_since`): two workers taking their baselines at once are
both idle, and each holds its next unit while it does.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db.clock import lease_is_live, server_now
from db.models import Measurement, Shard, Worker


def begin_baseline(session: Session, *, worker_id: str) -> None:
    """Say that this worker measures its idle baseline from now on (server clock)."""
    session.execute(update(Worker).where(Worker.id == worker_id).values(baseline_since=server_now()))


def end_baseline(session: Session, *, worker_id: str) -> None:
    session.execute(update(Worker).where(Worker.id == worker_id).values(baseline_since=None))


def busy_neighbours(session: Session, *, worker_id: str, host_id: str, lease_timeout_s: float) -> list[str]:
    """Co-located workers holding a live unit lease while not measuring a baseline, by id."""
    return list(session.scalars(
        select(Worker.id).distinct().join(Shard, Shard.lease_worker_id == Worker.id)
        .where(Worker.host_id == host_id, Worker.id != worker_id, Worker.baseline_since.is_(None),
               Shard.status == "running", lease_is_live(Shard.lease_heartbeat_at, lease_timeout_s))
        .order_by(Worker.id)))


def overlapping_windows(session: Session, *, worker_id: str, host_id: str, started_at: datetime,
                        ended_at: datetime) -> int:
    """Stored windows of co-located workers that overlap [started_at, ended_at] (a neighbour's short unit
    that began and ended while the baseline ran)."""
    return int(session.scalar(
        select(func.count()).select_from(Measurement)
        .where(Measurement.host_id == host_id, Measurement.worker_id != worker_id,
               Measurement.started_at < ended_at, Measurement.ended_at > started_at)) or 0)
