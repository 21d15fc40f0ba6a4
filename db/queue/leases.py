"""Leases on units (shards): claim, join a job, beat, store, hand back, fail. Keyword-only; the caller owns the
transaction.

A unit is claimable when it is pending, or running under a stale lease while
attempts remain (`CLAIMABLE`). Staleness is judged by the database server's
clock (db.clock). Every write a lease holder makes names its token in the
WHERE clause: a process that lost its lease (taken over, cancelled, or a twin
under the same worker id) changes nothing. The choice of unit is db.queue.policy's;
this module gathers the facts and applies the choice atomically (Postgres:
FOR UPDATE SKIP LOCKED on the unit, a transaction lock per hardware class
while a worker joins a job).

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

from db.clock import lease_is_live, lease_is_stale, seconds_ago, server_now
from db.models import Job, Run, Shard, Sweep, Unavailable, Worker
from db.queue.policy import JobFacts, choose_job, recruit_target
from db.queue.splitting import may_split, split_claimed

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


@dataclass(frozen=True)
class JoinResult:
    claim: UnitClaim | None
    hint_needs_message: bool = False  # the message's job was passed over and nobody works on it: send it again
    host_busy: bool = False  # exclusivity kept this worker from joining work that is left


def claimable(lease_timeout_s: float, may_take_over: bool = True):
    """A unit nobody holds: pending, or (when takeovers are allowed) under a stale lease with attempts left."""
    stale = and_(Shard.status == "running", lease_is_stale(Shard.lease_heartbeat_at, lease_timeout_s),
                 Shard.attempts < Job.max_attempts)
    return or_(Shard.status == "pending", stale) if may_take_over else Shard.status == "pending"


def _open_jobs(mode: str | None, sweep_id: int | None):
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
               Run.n_queries.label("run_queries"), Job.hardware_class, Job.split_units)
        .join(Job, Job.id == Shard.job_id).join(Sweep, Sweep.id == Job.sweep_id).join(Run, Run.id == Shard.run_id)
        .where(Shard.job_id == bindparam("job_id"), claimable(lease_timeout_s, may_take_over), _open_jobs(None, None))
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
            n_queries, expected_s, n_shards = row.n_queries, row.expected_s, row.n_shards
            # Near the end of a sweep, take only part of a long unit (db.queue.splitting).
            if row.split_units and may_split(expected_s):
                split = split_claimed(connection, shard_id=row.id, run_id=row.run_id, job_id=job_id,
                                      hardware_class=row.hardware_class, query_start=row.query_start,
                                      n_queries=n_queries, expected_s=expected_s, batch_size=row.batch_size,
                                      warmup=row.warmup, lease_timeout_s=lease_timeout_s)
                if split is not None:
                    n_queries, expected_s, n_shards = split.n_queries, split.expected_s, split.n_shards
            return UnitClaim(row.id, row.run_id, job_id, row.shard_index, row.query_start, n_queries,
                             n_shards, row.dataset, row.batch_size, row.warmup, attempts, expected_s,
                             row.run_queries, joined=joined, takeover=row.status == "running")
    return None


def job_facts(session: Session, *, hardware_class: str, lease: Lease, lease_timeout_s: float, mode: str | None,
              sweep_id: int | None = None, only_job_id: int | None = None, may_take_over: bool = True,
              exclude_exclusive: bool = False) -> list[JobFacts]:
    """Per job of this hardware class with claimable units: their expected work, its longest unit, its workers."""
    declined = select(Unavailable.job_id).where(Unavailable.worker_id == lease.worker_id,
                                                Unavailable.token == lease.token)
    query = (
        select(Shard.job_id, func.sum(func.coalesce(Shard.expected_s, 0.0)),
               func.max(func.coalesce(Shard.expected_s, 0.0)), Job.load_expected_s)
        .join(Job, Job.id == Shard.job_id).join(Sweep, Sweep.id == Job.sweep_id)
        .where(Job.hardware_class == hardware_class, _open_jobs(mode, sweep_id),
               claimable(lease_timeout_s, may_take_over), Job.id.not_in(declined))
        .group_by(Shard.job_id, Job.load_expected_s)
    )
    if only_job_id is not None:
        query = query.where(Shard.job_id == only_job_id)
    if exclude_exclusive:
        query = query.where(Sweep.exclusive.is_(False))
    rows = session.execute(query).all()
    staff = _staff(session, lease=lease, lease_timeout_s=lease_timeout_s, job_ids=[row[0] for row in rows])
    return [JobFacts(job_id, float(total or 0.0), float(longest or 0.0), staff.get(job_id, 0), float(load_s or 0.0))
            for job_id, total, longest, load_s in rows]


def _staff(session: Session, *, lease: Lease, lease_timeout_s: float, job_ids: Iterable[int]) -> dict[int, int]:
    """Live workers (other than `lease`'s) that have joined each job."""
    job_ids = list(job_ids)
    if not job_ids:
        return {}
    return dict(session.execute(
        select(Worker.current_job_id, func.count())
        .where(Worker.current_job_id.is_not(None), Worker.id != lease.worker_id,
               lease_is_live(Worker.heartbeat_at, lease_timeout_s))
        .group_by(Worker.current_job_id)
    ).all())


def _host_state(session: Session, *, lease: Lease, lease_timeout_s: float) -> tuple[bool, bool]:
    """(an exclusive job runs beside us on this host, some job runs beside us on this host)."""
    from db.results.attribution import lock_host

    exclusive_open = select(Job.id).join(Sweep, Sweep.id == Job.sweep_id).where(
        Sweep.exclusive.is_(True), Sweep.cancelled.is_(False), Job.status.in_(ACTIVE_JOB)).limit(1)
    if session.scalar(exclusive_open) is None:  # the common case: no lock, no host check
        return False, False
    host = func.coalesce(Worker.host_id, Worker.hostname)  # one kernel (db.models.Worker.host_id)
    host_id = session.scalar(select(host).where(Worker.id == lease.worker_id))
    if host_id is None:
        return False, False
    lock_host(session, host_id)  # this check and the join that follows are atomic between workers of one host
    rows = session.execute(
        select(Sweep.exclusive)
        .select_from(Worker).join(Job, Job.id == Worker.current_job_id).join(Sweep, Sweep.id == Job.sweep_id)
        .where(host == host_id, Worker.id != lease.worker_id, Job.status == "running",
               lease_is_live(Worker.heartbeat_at, lease_timeout_s))
    ).scalars().all()
    return any(rows), bool(rows)


def join_job(session: Session, *, lease: Lease, hardware_class: str, lease_timeout_s: float, mode: str | None,
             hint: int | None = None, sweep_id: int | None = None, only_job_id: int | None = None,
             may_take_over: bool = True) -> JoinResult:
    """Choose a job by db.queue.policy, claim its longest unit, and record that this worker has joined it."""
    if session.get_bind().dialect.name == "postgresql":  # joins of one queue one at a time: staffing stays true
        session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"wattsweep-join:{hardware_class}"))))
    exclusive_beside, busy_beside = _host_state(session, lease=lease, lease_timeout_s=lease_timeout_s)
    facts_args = dict(hardware_class=hardware_class, lease=lease, lease_timeout_s=lease_timeout_s, mode=mode,
                      sweep_id=sweep_id, only_job_id=only_job_id, may_take_over=may_take_over)
    facts = [] if exclusive_beside else job_facts(session, exclude_exclusive=busy_beside, **facts_args)
    host_busy = (exclusive_beside or busy_beside) and (
        exclusive_beside or len(job_facts(session, **facts_args)) > len(facts))
    passed_over = set()
    while True:
        chosen = choose_job([f for f in facts if f.job_id not in passed_over], hint=hint)
        if chosen is None:
            return JoinResult(None, hint_needs_message=False, host_busy=host_busy)
        claim = claim_next(session, lease=lease, job_id=chosen.job_id, lease_timeout_s=lease_timeout_s,
                           may_take_over=may_take_over, joined=True)
        if claim is not None:
            break
        passed_over.add(chosen.job_id)
    session.execute(
        update(Job).where(Job.id == chosen.job_id)
        .values(status="running", attempts=Job.attempts + 1, lease_worker_id=lease.worker_id,
                started_at=func.coalesce(Job.started_at, server_now()))
    )
    session.execute(update(Worker).where(Worker.id == lease.worker_id, Worker.token == lease.token)
                    .values(current_job_id=chosen.job_id, heartbeat_at=server_now()))
    hint_fact = next((f for f in facts if f.job_id == hint), None)
    passed = hint_fact is not None and hint != chosen.job_id and hint_fact.staff == 0
    return JoinResult(claim, hint_needs_message=passed)


def recruit(session: Session, *, lease: Lease, hardware_class: str, lease_timeout_s: float,
            mode: str | None = "distributed") -> int | None:
    """A job with workers on it that is worth one more (db.queue.policy.recruit_target), or None."""
    facts = job_facts(session, hardware_class=hardware_class, lease=Lease("", ""), lease_timeout_s=lease_timeout_s,
                      mode=mode)
    target = recruit_target(facts)
    return target.job_id if target else None


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


def leave(session: Session, *, lease: Lease, job_id: int, handed_back: bool = False) -> str:
    """This worker stops working on the job (nothing left for it, shutdown, failure). Returns the job's status.

    A job nobody works on any more, with work left, is `queued` again. A hand-back does not count as an attempt.
    """
    session.execute(update(Worker).where(Worker.id == lease.worker_id, Worker.token == lease.token,
                                         Worker.current_job_id == job_id).values(current_job_id=None))
    if handed_back:
        session.execute(update(Job).where(Job.id == job_id, Job.attempts > 0).values(attempts=Job.attempts - 1))
    finished = finish_if_complete(session, job_id=job_id)
    if finished is not None:
        return finished
    return _queue_if_unstaffed(session, job_id=job_id, leaving=lease.worker_id)


def rejoin(session: Session, *, lease: Lease, job_id: int) -> None:
    """Work on a job again whose model this process still holds (its units came back): no load, no attempt."""
    session.execute(update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE_JOB))
                    .values(status="running", lease_worker_id=lease.worker_id))
    session.execute(update(Worker).where(Worker.id == lease.worker_id, Worker.token == lease.token)
                    .values(current_job_id=job_id))


def _queue_if_unstaffed(session: Session, *, job_id: int, leaving: str) -> str:
    others = session.scalar(select(func.count()).select_from(Worker)
                            .where(Worker.current_job_id == job_id, Worker.id != leaving))
    held = session.scalar(select(Shard.id).where(Shard.job_id == job_id, Shard.status == "running").limit(1))
    if not others and held is None:
        session.execute(update(Job).where(Job.id == job_id, Job.status == "running")
                        .values(status="queued", lease_worker_id=None))
    return session.scalar(select(Job.status).where(Job.id == job_id))


def fail_load(session: Session, *, lease: Lease, job_id: int, shard_id: int, error: str, final: bool) -> str:
    """The model would not load: the unit goes back untouched, the job counts a load failure; returns its status."""
    release(session, lease=lease, shard_id=shard_id)
    job = session.execute(
        update(Job).where(Job.id == job_id).values(load_failures=Job.load_failures + 1, last_error=error[-4000:])
        .returning(Job.load_failures, Job.max_attempts)
    ).one()
    session.execute(update(Worker).where(Worker.id == lease.worker_id, Worker.token == lease.token,
                                         Worker.current_job_id == job_id).values(current_job_id=None))
    if final or job.load_failures >= job.max_attempts:
        return fail_job(session, job_id=job_id, error=error)
    return _queue_if_unstaffed(session, job_id=job_id, leaving=lease.worker_id)


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


def mark_unavailable(session: Session, *, lease: Lease, job_id: int, shard_id: int, error: str,
                     hardware_class: str, lease_timeout_s: float) -> str:
    """Not on this node (model or dataset missing): the unit goes back without an attempt, this process stops
    taking the job, and the job fails only once every live worker of its class has said the same."""
    release(session, lease=lease, shard_id=shard_id)
    session.add(Unavailable(job_id=job_id, worker_id=lease.worker_id, token=lease.token, error=error[-4000:]))
    session.flush()
    status = leave(session, lease=lease, job_id=job_id, handed_back=True)
    live = select(Worker.id, Worker.token).where(Worker.hardware_class == hardware_class,
                                                 lease_is_live(Worker.heartbeat_at, lease_timeout_s))
    workers = {tuple(row) for row in session.execute(live)}
    declined = {tuple(row) for row in session.execute(
        select(Unavailable.worker_id, Unavailable.token).where(Unavailable.job_id == job_id))}
    if workers and workers <= declined:
        return fail_job(session, job_id=job_id,
                        error=f"not available on any of the {len(workers)} live worker(s): {error}")
    return status


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
