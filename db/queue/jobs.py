"""Job-level helpers. Keyword-only; the caller owns the transaction.

Workers do not lease jobs: they lease units (db.queue.leases) and join jobs through
db.queue.policy's choice (db.queue.staffing). What is left here is for code that handles a job as a
whole: checking a message's job id, marking a job started for code that
stores runs directly (tests, imports), and listing a job's runs not done.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db.clock import server_now
from db.models import Job, Run, Worker


def job_exists(session: Session, *, job_id: int) -> bool:
    return session.scalar(select(Job.id).where(Job.id == job_id)) is not None


def claim_job(session: Session, *, job_id: int, worker_id: str, lease_timeout_s: float = 0.0) -> Job | None:
    """Mark an unfinished job running for `worker_id` (counts an attempt); None if it is finished or unknown.

    Takes no unit lease: for code that stores runs itself with db.results.store.record_run.
    """
    return session.scalars(
        update(Job).where(Job.id == job_id, Job.status.in_(("queued", "running")))
        .values(status="running", lease_worker_id=worker_id, attempts=Job.attempts + 1,
                started_at=func.coalesce(Job.started_at, server_now()))
        .returning(Job).execution_options(populate_existing=True)
    ).one_or_none()


def pending_runs(session: Session, *, job_id: int) -> list[Run]:
    return list(session.scalars(select(Run).where(Run.job_id == job_id, Run.status != "done").order_by(Run.id)))


def touch_worker(session: Session, *, worker_id: str) -> None:
    """Refresh the worker's own heartbeat (server clock)."""
    session.execute(update(Worker).where(Worker.id == worker_id).values(heartbeat_at=server_now()))
