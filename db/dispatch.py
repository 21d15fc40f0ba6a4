"""What the broker should hold, according to the database (distributed mode).

Postgres decides what is left to do; these functions find the jobs that must
be (re)sent and record when they were. Keyword-only; the caller owns the
transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from db.models import Job, Run, Sweep, utcnow


@dataclass(frozen=True)
class Dispatch:
    """A job id to send, and the queue (its hardware class) to send it to."""

    job_id: int
    queue: str
    stale_lease: bool = False  # running on a worker that stopped heart-beating


def sweep_dispatches(session: Session, *, sweep_id: int) -> list[Dispatch]:
    """Every queued job of a sweep, in id order (what `submit` sends)."""
    rows = session.execute(
        select(Job.id, Job.hardware_class).where(Job.sweep_id == sweep_id, Job.status == "queued").order_by(Job.id)
    )
    return [Dispatch(job_id, queue) for job_id, queue in rows]


def mark_dispatched(session: Session, *, job_ids: Sequence[int] = (), sweep_id: int | None = None) -> None:
    """Record that these jobs (or every queued job of `sweep_id`) were just sent."""
    now = utcnow()
    if sweep_id is not None:
        session.execute(update(Job).where(Job.sweep_id == sweep_id, Job.status == "queued").values(dispatched_at=now))
    for start in range(0, len(job_ids), 5000):  # bounded IN lists
        chunk = list(job_ids[start : start + 5000])
        session.execute(update(Job).where(Job.id.in_(chunk)).values(dispatched_at=now))


def dispatch_candidates(session: Session, *, lease_timeout_s: float, grace_s: float) -> list[Dispatch]:
    """Jobs that may need sending again: queued, or running under a stale lease; not sent in the last `grace_s`.

    Only distributed, non-cancelled sweeps. The caller then drops those the
    broker already holds.
    """
    now = utcnow()
    stale = now - timedelta(seconds=lease_timeout_s)
    sent_before = now - timedelta(seconds=grace_s)
    rows = session.execute(
        select(Job.id, Job.hardware_class, Job.status)
        .join(Sweep, Sweep.id == Job.sweep_id)
        .where(
            Sweep.mode == "distributed",
            Sweep.cancelled.is_(False),
            or_(Job.status == "queued", and_(Job.status == "running", Job.lease_heartbeat_at < stale)),
            or_(Job.dispatched_at.is_(None), Job.dispatched_at < sent_before),
        )
        .order_by(Job.id)
    )
    return [Dispatch(job_id, queue, status == "running") for job_id, queue, status in rows]


def cancel_sweep(session: Session, *, sweep_id: int) -> int:
    """Mark the sweep cancelled and its unfinished jobs `cancelled`; returns how many jobs that stopped.

    A worker running one of them notices at its next run boundary (its
    heartbeat no longer matches) and stops without storing more; runs already
    stored are kept.
    """
    session.execute(update(Sweep).where(Sweep.id == sweep_id).values(cancelled=True))
    result = session.execute(
        update(Job)
        .where(Job.sweep_id == sweep_id, Job.status.in_(("queued", "running")))
        .values(status="cancelled", lease_worker_id=None, lease_heartbeat_at=None, finished_at=utcnow())
    )
    return result.rowcount


def requeue_failed(session: Session, *, sweep_id: int) -> list[Dispatch]:
    """Failed jobs back to `queued` with fresh attempts, their failed runs back to pending."""
    rows = session.execute(
        update(Job)
        .where(Job.sweep_id == sweep_id, Job.status == "failed")
        .values(status="queued", attempts=0, finished_at=None, lease_worker_id=None, lease_heartbeat_at=None)
        .returning(Job.id, Job.hardware_class)
    ).all()
    job_ids = [job_id for job_id, _ in rows]
    for start in range(0, len(job_ids), 5000):
        chunk = job_ids[start : start + 5000]
        session.execute(
            update(Run).where(Run.job_id.in_(chunk), Run.status == "failed").values(status="pending", error=None)
        )
    return sorted((Dispatch(job_id, queue) for job_id, queue in rows), key=lambda d: d.job_id)
