"""Leases on jobs: claim, heartbeat, finish. Each is one conditional UPDATE.

A conditional update is atomic on SQLite and Postgres alike, so two workers
that receive the same job id cannot both claim it: the second sees rowcount 0.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from db.attribution import lock_host
from db.models import Job, Run, Sweep, Worker, utcnow


def claim_job(session: Session, *, job_id: int, worker_id: str, lease_timeout_s: float) -> Job | None:
    """Take the lease on a queued job, or on a running one whose lease went stale.

    Returns the job, or None when someone else holds a live lease, the job is
    finished, or it does not exist. Counts the attempt.
    """
    now = utcnow()
    stale = now - timedelta(seconds=lease_timeout_s)
    claimable = or_(
        Job.status == "queued",
        and_(Job.status == "running", or_(Job.lease_heartbeat_at < stale, Job.lease_worker_id == worker_id)),
    )
    job = session.scalars(
        update(Job)
        .where(Job.id == job_id, claimable)
        .values(status="running", lease_worker_id=worker_id, lease_heartbeat_at=now, attempts=Job.attempts + 1,
                started_at=func.coalesce(Job.started_at, now))
        .returning(Job)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if job is None:
        return None
    session.execute(update(Worker).where(Worker.id == worker_id).values(current_job_id=job_id, heartbeat_at=now))
    return job


def host_is_busy(session: Session, *, job_id: int, worker_id: str, lease_timeout_s: float) -> bool:
    """Whether exclusivity forbids this worker to start `job_id` now.

    An exclusive sweep's job runs alone on its host, and nothing starts beside
    one: CPU and RAM are machine-wide readings. On Postgres a transaction lock
    per host makes this check and the claim that follows atomic between
    workers of one host (SQLite serialises writers anyway).
    """
    host_id = session.scalar(select(func.coalesce(Worker.host_id, Worker.hostname)).where(Worker.id == worker_id))
    if host_id is None:
        return False
    lock_host(session, host_id)
    other, other_sweep, mine = aliased(Job), aliased(Sweep), aliased(Sweep)
    stale = utcnow() - timedelta(seconds=lease_timeout_s)
    exclusive_involved = or_(
        other_sweep.exclusive,
        select(mine.exclusive).join(Job, Job.sweep_id == mine.id).where(Job.id == job_id).scalar_subquery(),
    )
    busy = (
        select(other.id)
        .join(Worker, Worker.id == other.lease_worker_id)
        .join(other_sweep, other_sweep.id == other.sweep_id)
        .where(other.status == "running", other.id != job_id, other.lease_heartbeat_at >= stale,
               func.coalesce(Worker.host_id, Worker.hostname) == host_id, exclusive_involved)
        .limit(1)
    )
    return session.scalar(busy) is not None


def heartbeat(session: Session, *, job_id: int, worker_id: str) -> bool:
    """Refresh the lease; False means it was taken over and the worker must stop."""
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_worker_id == worker_id, Job.status == "running")
        .values(lease_heartbeat_at=now)
    )
    session.execute(update(Worker).where(Worker.id == worker_id).values(heartbeat_at=now))
    return result.rowcount == 1


def finish_job(session: Session, *, job_id: int, worker_id: str, error: str | None = None, final: bool = False) -> str:
    """Release the lease and set the outcome; returns the new status.

    With no error the job is done when all its runs are. With an error it goes
    back to the queue for another attempt, or ends `failed` once its attempts
    are used up (or at once with `final`).
    """
    job = session.get(Job, job_id, populate_existing=True)
    if job.lease_worker_id != worker_id or job.status != "running":
        return job.status  # the lease was taken over: the new holder decides
    if error is None:
        pending = session.scalar(select(Run.id).where(Run.job_id == job_id, Run.status != "done").limit(1))
        status = "done" if pending is None else "queued"
    else:
        status = "failed" if final or job.attempts >= job.max_attempts else "queued"
        job.last_error = error[-4000:]
    job.status = status
    job.lease_worker_id = None
    job.lease_heartbeat_at = None
    if status in ("done", "failed"):
        job.finished_at = utcnow()
    if status == "failed":  # its unfinished runs will not happen unless retried
        session.execute(
            update(Run)
            .where(Run.job_id == job_id, Run.status == "pending")
            .values(status="failed", error=job.last_error)
        )
    session.execute(update(Worker).where(Worker.id == worker_id).values(current_job_id=None))
    return status


def pending_runs(session: Session, *, job_id: int) -> list[Run]:
    return list(session.scalars(select(Run).where(Run.job_id == job_id, Run.status != "done").order_by(Run.id)))


def release_job(session: Session, *, job_id: int, worker_id: str) -> bool:
    """Hand a job back to the queue (worker shutting down): no error, and the attempt does not count.

    Runs already stored stay done; False when this worker no longer held the lease.
    """
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_worker_id == worker_id, Job.status == "running")
        .values(status="queued", lease_worker_id=None, lease_heartbeat_at=None, attempts=Job.attempts - 1)
    )
    session.execute(update(Worker).where(Worker.id == worker_id).values(current_job_id=None))
    return result.rowcount == 1


def job_exists(session: Session, *, job_id: int) -> bool:
    return session.scalar(select(Job.id).where(Job.id == job_id)) is not None


def touch_worker(
    session: Session, *, worker_id: str, current_job_id: int | None = None, clear_job: bool = False
) -> None:
    """Refresh the worker's own heartbeat (also while idle, so `wattsweep workers` shows it alive)."""
    values: dict = {"heartbeat_at": utcnow()}
    if clear_job:
        values["current_job_id"] = current_job_id
    session.execute(update(Worker).where(Worker.id == worker_id).values(**values))
