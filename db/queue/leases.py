"""Leases on units (shards): claim, beat, store, hand back, fail. Keyword-only; the caller owns the transaction.

A unit is claimable when it is pending, or running under a stale lease while
attempts remain (`claimable`). Staleness is judged by the database server's
clock (db.clock). Every write a lease holder makes names its token in the
WHERE clause: a process that lost its lease (taken over, cancelled, or a twin
under the same worker id) changes nothing. A claim is atomic (Postgres: FOR
UPDATE SKIP LOCKED on the unit). Which job a worker works on, and who else
works on it, is db.queue.staffing's, which claims through this module.

The statements every unit runs (claim, beat, complete) are built once and run
as Core statements on the session's connection: the ORM's per-statement work
(about 0.7 ms of CPU each here) cost more than the statements. Nothing here
keeps ORM objects of the rows they change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import Float, and_, bindparam, exists, func, or_, select, text, update
from sqlalchemy.orm import Session

from db.clock import lease_is_stale, seconds_ago, server_now
from db.models import Job, Run, Shard, Sweep, Worker

ACTIVE_JOB = ("queued", "running")


class LeaseLost(RuntimeError):
    """This process no longer holds the unit's lease (taken over, or the sweep cancelled): nothing was written."""


@dataclass(frozen=True)
class Lease:
    """Who holds a lease: a worker id and the token of the one process running under it."""

    worker_id: str
    token: str


@dataclass(frozen=True)
class UnitClaim:
    shard_id: int
    run_id: int
    job_id: int
    shard_index: int
    query_start: int
    n_queries: int
    n_shards: int
    dataset: str
    batch_size: int
    warmup: int
    attempts: int
    expected_s: float | None
    run_queries: int = 0  # the whole run's measured queries
    joined: bool = False  # this claim joined the job: the worker must load its model first
    takeover: bool = False  # the unit was under a stale lease


def claimable(lease_timeout_s: float, may_take_over: bool = True):
    """A unit nobody holds: pending, or (when takeovers are allowed) under a stale lease with attempts left."""
    stale = and_(Shard.status == "running", lease_is_stale(Shard.lease_heartbeat_at, lease_timeout_s),
                 Shard.attempts < Job.max_attempts)
    return or_(Shard.status == "pending", stale) if may_take_over else Shard.status == "pending"


def open_jobs(mode: str | None, sweep_id: int | None):
    """Jobs still to run, of sweeps not cancelled (of one mode and sweep when given)."""
    conditions = [Job.status.in_(ACTIVE_JOB), Sweep.cancelled.is_(False)]
    if mode is not None:
        conditions.append(Sweep.mode == mode)
    if sweep_id is not None:
        conditions.append(Job.sweep_id == sweep_id)
    return and_(*conditions)


@lru_cache(maxsize=64)
def _claim_statements(lease_timeout_s: float, may_take_over: bool):
    """The two statements of an affinity claim, built once per lease timeout (building costs more than running
    them): the longest claimable unit of a job, then its conditional lease."""
    find = (
        select(Shard.id, Shard.run_id, Shard.shard_index, Shard.query_start, Shard.n_queries, Shard.expected_s,
               Shard.status, Job.max_attempts, Run.n_shards, Run.dataset, Run.batch_size, Run.warmup,
               Run.n_queries.label("run_queries"))
        .join(Job, Job.id == Shard.job_id).join(Sweep, Sweep.id == Job.sweep_id).join(Run, Run.id == Shard.run_id)
        .where(Shard.job_id == bindparam("job_id"), claimable(lease_timeout_s, may_take_over), open_jobs(None, None))
        .order_by(Shard.expected_s.desc().nulls_last(), Shard.id)
        .limit(1)
        .with_for_update(of=Shard, skip_locked=True)
    )
    still = or_(Shard.status == "pending",
                and_(Shard.status == "running", lease_is_stale(Shard.lease_heartbeat_at, lease_timeout_s),
                     Shard.attempts < bindparam("max_attempts")))
    take = (
        update(Shard).where(Shard.id == bindparam("b_shard"), still)
        .values(status="running", lease_worker_id=bindparam("b_worker"), lease_token=bindparam("b_token"),
                lease_heartbeat_at=server_now(), progress_at=server_now(), stalled_at=None,
                attempts=Shard.attempts + 1)
        .returning(Shard.attempts)
    )
    return find, take


def claim_next(session: Session, *, lease: Lease, job_id: int, lease_timeout_s: float, may_take_over: bool = True,
               joined: bool = False) -> UnitClaim | None:
    """Affinity: the longest claimable unit of `job_id`, leased to `lease` (None when the job has none left)."""
    find, take = _claim_statements(float(lease_timeout_s), bool(may_take_over))
    connection = session.connection()  # Core: a unit's statements skip the ORM's per-statement work (db.queue.leases)
    for _ in range(5):  # SQLite has no SKIP LOCKED: a unit taken between the read and the update is retried
        row = connection.execute(find, {"job_id": job_id}).one_or_none()
        if row is None:
            return None
        attempts = connection.execute(take, {"b_shard": row.id, "max_attempts": row.max_attempts,
                                             "b_worker": lease.worker_id, "b_token": lease.token}).scalar()
        if attempts is not None:
            return UnitClaim(row.id, row.run_id, job_id, row.shard_index, row.query_start, row.n_queries,
                             row.n_shards, row.dataset, row.batch_size, row.warmup, attempts, row.expected_s,
                             row.run_queries, joined=joined, takeover=row.status == "running")
    return None


_ASYNC_COMMIT = text("SET LOCAL synchronous_commit = off")


@lru_cache(maxsize=1)
def _beat_statements():
    worker = (update(Worker).where(Worker.id == bindparam("b_worker"), Worker.token == bindparam("b_token"))
              .values(heartbeat_at=server_now()))
    unit = (update(Shard).where(Shard.id == bindparam("b_shard"), Shard.lease_token == bindparam("b_token"),
                                Shard.status == "running")
            .values(lease_heartbeat_at=server_now(), progress_at=seconds_ago(bindparam("b_age", type_=Float))))
    return worker, unit


def beat(session: Session, *, lease: Lease, shard_id: int | None, progress_age_s: float = 0.0) -> tuple[bool, bool]:
    """Refresh the worker's row and its unit's lease; returns (the worker id is still ours, the unit is still ours).

    On Postgres a beat's commit does not wait for the disk (synchronous_commit off for this transaction only): a
    beat lost in a server crash makes a lease look a beat older, and after a restart no lease goes stale for one
    lease period anyway (db.clock). That fsync was most of a beat's cost (about 4 ms of 4.5 here).
    """
    worker, unit = _beat_statements()
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(_ASYNC_COMMIT)
    mine = connection.execute(worker, {"b_worker": lease.worker_id, "b_token": lease.token}).rowcount == 1
    if shard_id is None:
        return mine, False
    held = connection.execute(unit, {"b_shard": shard_id, "b_token": lease.token,
                                     "b_age": max(progress_age_s, 0.0)}).rowcount == 1
    return mine, held


def holds(session: Session, *, lease: Lease, shard_id: int) -> bool:
    """Whether this process still holds the unit's lease, in this transaction (row locked on Postgres)."""
    return session.scalar(
        select(Shard.id).join(Job, Job.id == Shard.job_id)
        .where(Shard.id == shard_id, Shard.lease_token == lease.token, Shard.status == "running",
               Job.status.in_(ACTIVE_JOB))
        .with_for_update(of=Shard)
    ) is not None


@lru_cache(maxsize=1)
def _complete_statement():
    return (
        update(Shard)
        .where(Shard.id == bindparam("b_shard"), Shard.lease_token == bindparam("b_token"), Shard.status == "running",
               exists(select(Job.id).where(Job.id == Shard.job_id, Job.status.in_(ACTIVE_JOB))))
        .values(status="done", worker_id=bindparam("b_worker"), finished_at=server_now(), lease_token=None,
                lease_heartbeat_at=None, error=None)
    )


def complete(session: Session, *, lease: Lease, shard_id: int) -> None:
    """Mark the unit done under its lease, or raise LeaseLost (the caller then rolls back its windows)."""
    done = session.connection().execute(_complete_statement(), {"b_shard": shard_id, "b_token": lease.token,
                                                                "b_worker": lease.worker_id}).rowcount
    if done != 1:
        raise LeaseLost(f"unit {shard_id}: lease lost (taken over by another worker, or cancelled)")


def release(session: Session, *, lease: Lease, shard_id: int) -> bool:
    """Hand the unit back unmeasured, without using its attempt (shutdown, or not available on this node)."""
    return session.execute(
        update(Shard).where(Shard.id == shard_id, Shard.lease_token == lease.token, Shard.status == "running")
        .values(status="pending", lease_worker_id=None, lease_token=None, lease_heartbeat_at=None,
                attempts=Shard.attempts - 1)
    ).rowcount == 1


def fail(session: Session, *, lease: Lease, shard_id: int, error: str) -> str:
    """The unit raised: back to pending while attempts remain, else `failed` with its run. Returns its status."""
    row = session.execute(
        select(Shard.attempts, Job.max_attempts, Shard.run_id, Shard.job_id).join(Job, Job.id == Shard.job_id)
        .where(Shard.id == shard_id, Shard.lease_token == lease.token, Shard.status == "running")
    ).one_or_none()
    if row is None:
        return "lost"
    status = "failed" if row.attempts >= row.max_attempts else "pending"
    session.execute(update(Shard).where(Shard.id == shard_id)
                    .values(status=status, lease_token=None, lease_heartbeat_at=None, error=error[-4000:],
                            finished_at=server_now() if status == "failed" else None))
    session.execute(update(Job).where(Job.id == row.job_id).values(last_error=error[-4000:]))
    if status == "failed":
        session.execute(update(Run).where(Run.id == row.run_id, Run.status != "done")
                        .values(status="failed", error=error[-4000:]))
    return status


def finish_if_complete(session: Session, *, job_id: int) -> str | None:
    """Once no unit of the job is left to run: `done` (every run stored) or `failed`; None while work remains."""
    left = session.scalar(select(Shard.id).where(Shard.job_id == job_id, Shard.status.in_(("pending", "running")))
                          .limit(1))
    if left is not None:
        return None
    failed = session.scalar(select(Shard.error).where(Shard.job_id == job_id, Shard.status == "failed").limit(1))
    has_failed = failed is not None or session.scalar(
        select(Shard.id).where(Shard.job_id == job_id, Shard.status == "failed").limit(1)) is not None
    status = "failed" if has_failed else "done"
    values = dict(status=status, finished_at=server_now(), lease_worker_id=None)
    if failed is not None:
        values["last_error"] = failed
    result = session.execute(update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE_JOB)).values(**values))
    return status if result.rowcount else None


def fail_job(session: Session, *, job_id: int, error: str) -> str:
    """The whole job fails: its units not done fail with it (runs already stored are kept)."""
    session.execute(update(Shard).where(Shard.job_id == job_id, Shard.status.in_(("pending", "running")))
                    .values(status="failed", lease_token=None, lease_heartbeat_at=None, error=error[-4000:]))
    session.execute(update(Run).where(Run.job_id == job_id, Run.status == "pending")
                    .values(status="failed", error=error[-4000:]))
    session.execute(update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE_JOB))
                    .values(status="failed", last_error=error[-4000:], finished_at=server_now(),
                            lease_worker_id=None))
    return "failed"


def mark_stalled(session: Session, *, lease: Lease, shard_id: int | None, reason: str) -> None:
    """A worker's watchdog gives its unit up: `status` shows it stalled until the lease expires and it moves on."""
    if shard_id is not None:
        session.execute(update(Shard).where(Shard.id == shard_id, Shard.lease_token == lease.token)
                        .values(stalled_at=server_now(), error=reason[-4000:]))
    session.execute(update(Worker).where(Worker.id == lease.worker_id, Worker.token == lease.token)
                    .values(stopped_reason=f"stalled: {reason}"[:4000]))


def fail_dead_units(session: Session, *, lease_timeout_s: float) -> list[int]:
    """Units whose holder died on every attempt (stale lease, attempts used up) fail with `worker died N times`;
    their jobs finish if nothing else is left. Returns the ids of the jobs that changed."""
    rows = session.execute(
        select(Shard.id, Shard.job_id, Shard.run_id, Shard.attempts).join(Job, Job.id == Shard.job_id)
        .where(Shard.status == "running", lease_is_stale(Shard.lease_heartbeat_at, lease_timeout_s),
               Shard.attempts >= Job.max_attempts)
    ).all()
    for shard_id, _, run_id, attempts in rows:
        error = f"worker died {attempts} times (no heartbeat for {lease_timeout_s:g} s on each attempt, or stalled)"
        session.execute(update(Shard).where(Shard.id == shard_id, Shard.status == "running")
                        .values(status="failed", lease_token=None, error=error, finished_at=server_now()))
        session.execute(update(Run).where(Run.id == run_id, Run.status != "done").values(status="failed", error=error))
    jobs = sorted({job_id for _, job_id, _, _ in rows})
    for job_id in jobs:
        finish_if_complete(session, job_id=job_id)
    return jobs


def unit_counts(session: Session, *, job_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """Units per status per job (for status displays)."""
    job_ids = list(job_ids)
    counts: dict[int, dict[str, int]] = {}
    if not job_ids:
        return counts
    for job_id, status, n in session.execute(
        select(Shard.job_id, Shard.status, func.count()).where(Shard.job_id.in_(job_ids))
        .group_by(Shard.job_id, Shard.status)
    ):
        counts.setdefault(job_id, {})[status] = n
    return counts
