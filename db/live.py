"""What is happening now: running jobs and where, workers, and the pace of a sweep (for `status`, `workers`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from db.models import Job, Run, Worker


@dataclass(frozen=True)
class RunningJob:
    job_id: int
    task: str
    model: str
    worker_id: str | None
    heartbeat_at: datetime | None
    runs_done: int
    runs_total: int


def running_jobs(session: Session, *, sweep_id: int) -> list[RunningJob]:
    done = func.coalesce(func.sum(case((Run.status == "done", 1), else_=0)), 0)
    rows = session.execute(
        select(Job.id, Job.task, Job.model, Job.lease_worker_id, Job.lease_heartbeat_at, done, func.count(Run.id))
        .join(Run, Run.job_id == Job.id)
        .where(Job.sweep_id == sweep_id, Job.status == "running")
        .group_by(Job.id)
        .order_by(Job.id)
    )
    return [RunningJob(*row) for row in rows]


def job_status_counts(session: Session, *, sweep_id: int) -> dict[str, int]:
    """Jobs per status, including `cancelled`."""
    rows = session.execute(select(Job.status, func.count()).where(Job.sweep_id == sweep_id).group_by(Job.status))
    return dict(rows.all())


def sweep_started_at(session: Session, *, sweep_id: int) -> datetime | None:
    return session.scalar(select(func.min(Job.started_at)).where(Job.sweep_id == sweep_id))


def eta_s(*, runs_done: int, runs_left: int, started_at: datetime | None, now: datetime | None = None) -> float | None:
    """Seconds to go at the pace so far (runs done per second since the first job started); None if unknown."""
    if not runs_left:
        return 0.0
    if started_at is None or runs_done == 0:
        return None
    now = now or datetime.now(UTC)
    if started_at.tzinfo is None:  # SQLite returns naive UTC
        started_at = started_at.replace(tzinfo=UTC)
    elapsed_s = (now - started_at).total_seconds()
    return runs_left * elapsed_s / runs_done if elapsed_s > 0 else None


@dataclass(frozen=True)
class WorkerView:
    worker: Worker
    current: str | None  # "task / model" of its current job
    alive: bool


def list_workers(session: Session, *, alive_within_s: float, include_gone: bool = False) -> list[WorkerView]:
    """Workers by id; `alive` means a heartbeat within `alive_within_s`."""
    since = datetime.now(UTC) - timedelta(seconds=alive_within_s)
    rows = session.execute(
        select(Worker, Job.task, Job.model).outerjoin(Job, Job.id == Worker.current_job_id).order_by(Worker.id)
    )
    views = []
    for worker, task, model in rows:
        beat = worker.heartbeat_at if worker.heartbeat_at.tzinfo else worker.heartbeat_at.replace(tzinfo=UTC)
        alive = beat >= since
        if alive or include_gone:
            views.append(WorkerView(worker, f"{task} / {model}" if task else None, alive))
    return views


def heartbeat_age_s(session: Session, *, worker_id: str) -> float | None:
    """Seconds since this worker id last beat, or None if it never registered."""
    beat = session.scalar(select(Worker.heartbeat_at).where(Worker.id == worker_id))
    if beat is None:
        return None
    beat = beat if beat.tzinfo else beat.replace(tzinfo=UTC)
    return (datetime.now(UTC) - beat).total_seconds()


def set_worker_device(session: Session, *, worker_id: str, device: str) -> None:
    """Record the physical device (cuda:3), not the one the pinned process sees (always cuda:0)."""
    session.execute(update(Worker).where(Worker.id == worker_id).values(device=device))
