"""What the broker should hold, according to the database (distributed mode).

Postgres decides what is left to do; these functions find the jobs that must
be (re)sent and record when they were. Keyword-only; the caller owns the
transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, delete, exists, false, func, or_, select, update
from sqlalchemy.orm import Session

from db.clock import lease_is_live, lease_is_stale, seconds_ago, server_now
from db.models import Job, Run, Shard, Sweep, Unavailable, Worker
from db.queue.leases import claimable


@dataclass(frozen=True)
class Dispatch:
    """A job id to send, and where: the queue of its hardware class's workers holding `gpus` GPUs
    (worker.contract.celery_app.job_queue names it; db does not import the worker's contract)."""

    job_id: int
    hardware_class: str
    stale_lease: bool = False  # running on a worker that stopped heart-beating
    gpus: int = 1

    @property
    def group(self) -> tuple[str, int]:
        return self.hardware_class, self.gpus


def sweep_dispatches(session: Session, *, sweep_id: int) -> list[Dispatch]:
    """Every queued job of a sweep, longest expected work first (what `submit` sends, in that order)."""
    rows = session.execute(
        select(Job.id, Job.hardware_class, Job.gpus).where(Job.sweep_id == sweep_id, Job.status == "queued")
        .order_by(Job.expected_s.desc().nulls_last(), Job.id)
    )
    return [Dispatch(job_id, hardware_class, gpus=gpus) for job_id, hardware_class, gpus in rows]


_NOW = object()


def mark_dispatched(session: Session, *, job_ids: Sequence[int] = (), sweep_id: int | None = None, at=_NOW) -> None:
    """Record that these jobs (or every queued job of `sweep_id`) were just sent (`at=None`: were not sent)."""
    now = server_now() if at is _NOW else at
    if sweep_id is not None:
        session.execute(update(Job).where(Job.sweep_id == sweep_id, Job.status == "queued").values(dispatched_at=now))
    for start in range(0, len(job_ids), 5000):  # bounded IN lists
        chunk = list(job_ids[start : start + 5000])
        session.execute(update(Job).where(Job.id.in_(chunk)).values(dispatched_at=now))


@dataclass(frozen=True)
class Unfinished:
    sweep_id: int
    queued: int
    running: int


def unfinished_sweep(session: Session, *, name: str) -> Unfinished | None:
    """The latest sweep of this name that is not cancelled and still has jobs queued or running, if any.

    On Postgres, two submits of one name are serialised here (a transaction lock on the name), so that both
    cannot pass this check before either has written its sweep.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"wattsweep-submit:{name}"))))
    row = session.execute(
        select(Sweep.id, func.count().filter(Job.status == "queued"), func.count().filter(Job.status == "running"))
        .join(Job, Job.sweep_id == Sweep.id)
        .where(Sweep.name == name, Sweep.cancelled.is_(False), Job.status.in_(("queued", "running")))
        .group_by(Sweep.id).order_by(Sweep.id.desc()).limit(1)
    ).one_or_none()
    return Unfinished(*row) if row is not None else None


def _needs_message(lease_timeout_s: float, grace_s: float):
    """The conditions of a job that needs a message (see `dispatch_candidates`), for SELECTs joined to Sweep."""
    staffed = exists(select(Worker.id).where(Worker.current_job_id == Job.id,
                                             lease_is_live(Worker.heartbeat_at, lease_timeout_s)))
    left = exists(select(Shard.id).where(Shard.job_id == Job.id, claimable(lease_timeout_s)))
    return (
        Sweep.mode == "distributed",
        Sweep.cancelled.is_(False),
        Job.status.in_(("queued", "running")),
        left,
        ~staffed,
        or_(Job.dispatched_at.is_(None), Job.dispatched_at < seconds_ago(grace_s)),
    )


def dispatch_candidates(session: Session, *, lease_timeout_s: float, grace_s: float,
                        groups: Sequence[tuple[str, int]] | None = None,
                        job_ids: Sequence[int] | None = None) -> list[Dispatch]:
    """Jobs that need a message: units left to claim and no live worker on them; not sent in the last `grace_s`.

    Units left to claim: pending, or under a stale lease with attempts left (`stale_lease`: a worker died on it).
    A job a live worker has joined needs no message: that worker claims its units (affinity). Only distributed,
    non-cancelled sweeps; only these queues ((hardware class, GPUs) pairs) or job ids when given. The caller then
    drops the jobs the broker already holds (and has failed the units whose worker died on every attempt:
    fail_dead_units).
    """
    stale = exists(select(Shard.id).where(Shard.job_id == Job.id, Shard.status == "running",
                                          lease_is_stale(Shard.lease_heartbeat_at, lease_timeout_s)))
    query = (select(Job.id, Job.hardware_class, stale, Job.gpus).join(Sweep, Sweep.id == Job.sweep_id)
             .where(*_needs_message(lease_timeout_s, grace_s))
             .order_by(Job.expected_s.desc().nulls_last(), Job.id))
    if groups is not None:
        query = query.where(or_(false(), *(and_(Job.hardware_class == hardware_class, Job.gpus == gpus)
                                           for hardware_class, gpus in groups)))
    if job_ids is not None:
        query = query.where(Job.id.in_(list(job_ids)))
    return [Dispatch(job_id, hardware_class, bool(is_stale), gpus)
            for job_id, hardware_class, is_stale, gpus in session.execute(query)]


def candidate_counts(session: Session, *, lease_timeout_s: float, grace_s: float) -> dict[tuple[str, int], int]:
    """How many jobs need a message, per queue ((hardware class, GPUs)): what the broker's lists should hold at
    least (one row per queue crosses the wire, however many jobs wait)."""
    rows = session.execute(
        select(Job.hardware_class, Job.gpus, func.count()).join(Sweep, Sweep.id == Job.sweep_id)
        .where(*_needs_message(lease_timeout_s, grace_s)).group_by(Job.hardware_class, Job.gpus)
    )
    return {(hardware_class, gpus): count for hardware_class, gpus, count in rows}


def cancel_sweep(session: Session, *, sweep_id: int) -> int:
    """Mark the sweep cancelled and its unfinished jobs `cancelled`; returns how many jobs that stopped.

    A worker running one of them notices at its next run boundary (its
    heartbeat no longer matches) and stops without storing more; runs already
    stored are kept.
    """
    session.execute(update(Sweep).where(Sweep.id == sweep_id).values(cancelled=True))
    job_ids = select(Job.id).where(Job.sweep_id == sweep_id, Job.status.in_(("queued", "running")))
    session.execute(update(Shard).where(Shard.job_id.in_(job_ids), Shard.status == "running")
                    .values(status="pending", lease_token=None, lease_heartbeat_at=None))  # leases end now
    result = session.execute(
        update(Job)
        .where(Job.sweep_id == sweep_id, Job.status.in_(("queued", "running")))
        .values(status="cancelled", lease_worker_id=None, lease_heartbeat_at=None, finished_at=server_now())
    )
    return result.rowcount


def requeue_failed(session: Session, *, sweep_id: int) -> list[Dispatch]:
    """Failed jobs back to `queued` with fresh attempts, their failed runs and units back to pending."""
    rows = session.execute(
        update(Job)
        .where(Job.sweep_id == sweep_id, Job.status == "failed")
        .values(status="queued", attempts=0, load_failures=0, finished_at=None, lease_worker_id=None,
                lease_heartbeat_at=None)
        .returning(Job.id, Job.hardware_class, Job.gpus)
    ).all()
    job_ids = [job_id for job_id, _, _ in rows]
    for start in range(0, len(job_ids), 5000):
        chunk = job_ids[start : start + 5000]
        session.execute(
            update(Run).where(Run.job_id.in_(chunk), Run.status == "failed").values(status="pending", error=None)
        )
        session.execute(update(Shard).where(Shard.job_id.in_(chunk), Shard.status == "failed")
                        .values(status="pending", attempts=0, error=None, lease_token=None, finished_at=None))
        session.execute(delete(Unavailable).where(Unavailable.job_id.in_(chunk)))
    return sorted((Dispatch(job_id, hardware_class, gpus=gpus) for job_id, hardware_class, gpus in rows),
                  key=lambda d: d.job_id)
