"""What is happening now: running jobs and who works on them, workers, the pace of a sweep (`status`, `workers`).

Ages are computed by the database server (db.clock), like the leases they describe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from db.clock import age_s, seconds_ago, server_now
from db.models import Job, Run, Shard, Worker


@dataclass(frozen=True)
class UnitLease:
    shard_id: int
    run_id: int
    worker_id: str | None
    heartbeat_age_s: float | None
    progress_age_s: float | None
    stalled: bool  # its worker's watchdog gave it up, or no progress while the heartbeat goes on


@dataclass(frozen=True)
class RunningJob:
    job_id: int
    task: str
    model: str
    worker_id: str | None  # the worker that joined it last
    heartbeat_at: datetime | None
    runs_done: int
    runs_total: int
    units: list[UnitLease] = field(default_factory=list)  # leased units: who, how fresh


def running_jobs(session: Session, *, sweep_id: int, stall_after_s: float | None = None) -> list[RunningJob]:
    """Running jobs with their runs done and their leased units; `stall_after_s`: progress older than this
    while the lease is beaten counts as stalled."""
    done = func.coalesce(func.sum(case((Run.status == "done", 1), else_=0)), 0)
    rows = session.execute(
        select(Job.id, Job.task, Job.model, Job.lease_worker_id, Job.lease_heartbeat_at, done, func.count(Run.id))
        .join(Run, Run.job_id == Job.id)
        .where(Job.sweep_id == sweep_id, Job.status == "running")
        .group_by(Job.id)
        .order_by(Job.id)
    ).all()
    units: dict[int, list[UnitLease]] = {}
    for row in session.execute(
        select(Shard.job_id, Shard.id, Shard.run_id, Shard.lease_worker_id, age_s(Shard.lease_heartbeat_at),
               age_s(Shard.progress_at), Shard.stalled_at)
        .join(Job, Job.id == Shard.job_id)
        .where(Job.sweep_id == sweep_id, Job.status == "running", Shard.status == "running")
        .order_by(Shard.id)
    ):
        job_id, shard_id, run_id, worker_id, beat_age, progress_age, stalled_at = row
        stalled = stalled_at is not None or (stall_after_s is not None and progress_age is not None
                                             and progress_age > stall_after_s)
        units.setdefault(job_id, []).append(UnitLease(shard_id, run_id, worker_id, beat_age, progress_age, stalled))
    return [RunningJob(*row, units=units.get(row[0], [])) for row in rows]


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
    heartbeat_age_s: float | None = None


def list_workers(session: Session, *, alive_within_s: float, include_gone: bool = False) -> list[WorkerView]:
    """Workers by id; `alive` means a heartbeat within `alive_within_s` by the server's clock."""
    rows = session.execute(
        select(Worker, Job.task, Job.model, age_s(Worker.heartbeat_at))
        .outerjoin(Job, Job.id == Worker.current_job_id).order_by(Worker.id)
    )
    views = []
    for worker, task, model, beat_age in rows:
        alive = beat_age is not None and beat_age <= alive_within_s
        if alive or include_gone:
            views.append(WorkerView(worker, f"{task} / {model}" if task else None, alive, beat_age))
    return views


def heartbeat_age_s(session: Session, *, worker_id: str) -> float | None:
    """Seconds since this worker id last beat (server clock), or None if it never registered."""
    return session.scalar(select(age_s(Worker.heartbeat_at)).where(Worker.id == worker_id))


RELEASED = ""  # the token of a worker id whose process exited cleanly: free at once


def register_worker(session: Session, *, worker_id: str, token: str, hostname: str, device: str,
                    hardware_class: str, inventory: dict, twin_window_s: float | None,
                    host_id: str | None = None, gpu_indexes: list[int] | None = None) -> bool:
    """Insert or take over the worker's row for this process (its token), in one statement.

    Refused (False, nothing written) while another process holding the id beats within `twin_window_s`: two
    live processes under one id would share leases and, on a GPU, skew each other's meters.
    """
    insert = (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(Worker)
    values = dict(id=worker_id, hostname=hostname, host_id=host_id, device=device, hardware_class=hardware_class,
                  inventory=inventory, token=token, started_at=server_now(), heartbeat_at=server_now(),
                  current_job_id=None, stopped_reason=None, gpu_indexes=gpu_indexes or None)
    statement = insert.values(**values)
    takeover = {key: statement.excluded[key] for key in values if key != "id"}
    condition = None if twin_window_s is None else (
        (Worker.token == RELEASED) | (Worker.token == token) | (Worker.heartbeat_at < seconds_ago(twin_window_s)))
    statement = statement.on_conflict_do_update(index_elements=[Worker.id], set_=takeover, where=condition)
    return session.execute(statement.returning(Worker.id)).first() is not None


@dataclass(frozen=True)
class GpuHolder:
    worker_id: str
    gpu_indexes: list[int]  # the GPUs both workers asked for
    heartbeat_age_s: float


def gpu_holder(session: Session, *, host_id: str, gpu_indexes: list[int], worker_id: str,
               alive_within_s: float) -> GpuHolder | None:
    """Another live worker on this host (one kernel) that holds one of these physical GPUs, or None.

    Live: its process has not exited cleanly (token not released) and it beat within `alive_within_s`; a worker
    that stopped taking work still holds its GPUs. Holds the host's lock until the transaction ends, so that this
    check and the registration that follows it are one step between workers starting at once (Postgres).
    """
    from db.results.attribution import lock_host

    lock_host(session, host_id)
    rows = session.execute(
        select(Worker.id, Worker.gpu_indexes, age_s(Worker.heartbeat_at)).where(
            Worker.host_id == host_id, Worker.id != worker_id, Worker.gpu_indexes.is_not(None),
            Worker.token.is_not(None), Worker.token != RELEASED, Worker.heartbeat_at >= seconds_ago(alive_within_s))
        .order_by(Worker.id))
    for other, held, beat_age in rows:
        shared = sorted(set(held or ()) & set(gpu_indexes))
        if shared:
            return GpuHolder(other, shared, float(beat_age or 0.0))
    return None


def unregister_worker(session: Session, *, worker_id: str, token: str) -> None:
    """A clean exit: the id is free at once for the next process (the row and its history stay)."""
    session.execute(update(Worker).where(Worker.id == worker_id, Worker.token == token)
                    .values(token=RELEASED, current_job_id=None))


def set_stopped_reason(session: Session, *, worker_id: str, token: str, reason: str | None) -> None:
    session.execute(update(Worker).where(Worker.id == worker_id, Worker.token == token)
                    .values(stopped_reason=reason))


def set_worker_device(session: Session, *, worker_id: str, device: str) -> None:
    """Record the physical device (cuda:3), not the one the pinned process sees (always cuda:0)."""
    session.execute(update(Worker).where(Worker.id == worker_id).values(device=device))
