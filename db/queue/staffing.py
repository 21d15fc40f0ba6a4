"""Job staffing: which job a worker joins, who else works on it, and leaving it. Keyword-only; the caller owns the
transaction.

Workers do not lease jobs: a worker joins a job by claiming one of its units
(db.queue.leases) and records the job as its current one, so that other workers
see how many work on it. The choice of job is db.queue.policy's; this module
gathers the facts and applies the choice atomically (Postgres: a transaction
lock per hardware class while a worker joins a job, and per host while an
exclusive sweep runs). A job nobody works on any more, with work left, is
`queued` again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from db.clock import lease_is_live, server_now
from db.models import Job, Shard, Sweep, Unavailable, Worker
from db.queue.leases import (
    ACTIVE_JOB,
    Lease,
    UnitClaim,
    claim_next,
    claimable,
    fail_job,
    finish_if_complete,
    open_jobs,
    release,
)
from db.queue.policy import JobFacts, choose_job, recruit_target


@dataclass(frozen=True)
class JoinResult:
    claim: UnitClaim | None
    hint_needs_message: bool = False  # the message's job was passed over and nobody works on it: send it again
    host_busy: bool = False  # exclusivity kept this worker from joining work that is left


def job_facts(session: Session, *, hardware_class: str, lease: Lease, lease_timeout_s: float, mode: str | None,
              sweep_id: int | None = None, only_job_id: int | None = None, may_take_over: bool = True,
              exclude_exclusive: bool = False, gpus: int = 1) -> list[JobFacts]:
    """Per job of this hardware class needing `gpus` GPUs (the asking worker's group size), with claimable units:
    their expected work, its longest unit, its workers."""
    declined = select(Unavailable.job_id).where(Unavailable.worker_id == lease.worker_id,
                                                Unavailable.token == lease.token)
    query = (
        select(Shard.job_id, func.sum(func.coalesce(Shard.expected_s, 0.0)),
               func.max(func.coalesce(Shard.expected_s, 0.0)), Job.load_expected_s)
        .join(Job, Job.id == Shard.job_id).join(Sweep, Sweep.id == Job.sweep_id)
        .where(Job.hardware_class == hardware_class, Job.gpus == gpus, open_jobs(mode, sweep_id),
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
             may_take_over: bool = True, gpus: int = 1) -> JoinResult:
    """Choose a job by db.queue.policy among those needing `gpus` GPUs (this worker's group size: a job needing
    four is never joined by a one-GPU worker, nor the other way round), claim its longest unit, and record that
    this worker has joined it."""
    if session.get_bind().dialect.name == "postgresql":  # joins of one queue one at a time: staffing stays true
        session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"wattsweep-join:{hardware_class}"))))
    exclusive_beside, busy_beside = _host_state(session, lease=lease, lease_timeout_s=lease_timeout_s)
    facts_args = dict(hardware_class=hardware_class, lease=lease, lease_timeout_s=lease_timeout_s, mode=mode,
                      sweep_id=sweep_id, only_job_id=only_job_id, may_take_over=may_take_over, gpus=gpus)
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
            mode: str | None = "distributed", gpus: int = 1) -> int | None:
    """A job needing `gpus` GPUs with workers on it that is worth one more (db.queue.policy.recruit_target), or
    None: its id goes to the queue of the workers holding that many."""
    facts = job_facts(session, hardware_class=hardware_class, lease=Lease("", ""), lease_timeout_s=lease_timeout_s,
                      mode=mode, gpus=gpus)
    target = recruit_target(facts)
    return target.job_id if target else None


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


def mark_unavailable(session: Session, *, lease: Lease, job_id: int, shard_id: int, error: str,
                     hardware_class: str, lease_timeout_s: float) -> str:
    """Not on this node (model or dataset missing): the unit goes back without an attempt, this process stops
    taking the job, and the job fails only once every live worker of its class that could take it (holding as many
    GPUs as it needs) has said the same."""
    release(session, lease=lease, shard_id=shard_id)
    session.add(Unavailable(job_id=job_id, worker_id=lease.worker_id, token=lease.token, error=error[-4000:]))
    session.flush()
    status = leave(session, lease=lease, job_id=job_id, handed_back=True)
    gpus = session.scalar(select(Job.gpus).where(Job.id == job_id))
    live = select(Worker.id, Worker.token, Worker.gpu_indexes).where(
        Worker.hardware_class == hardware_class, lease_is_live(Worker.heartbeat_at, lease_timeout_s))
    # Only the workers that could take it: those holding as many GPUs as it needs (a CPU worker: one).
    workers = {(worker_id, token) for worker_id, token, held in session.execute(live)
               if len(held or ()) == gpus or (not held and gpus == 1)}
    declined = {tuple(row) for row in session.execute(
        select(Unavailable.worker_id, Unavailable.token).where(Unavailable.job_id == job_id))}
    if workers and workers <= declined:
        return fail_job(session, job_id=job_id,
                        error=f"not available on any of the {len(workers)} live worker(s): {error}")
    return status


def group_drained(session: Session, *, lease: Lease, hardware_class: str, gpus: int, lease_timeout_s: float) -> bool:
    """`wattsweep worker --split-when-drained`: whether a worker holding `gpus` GPUs would now serve better as that
    many one-GPU workers. True when no open job of the class needing `gpus` GPUs has work left (a claimable unit, or
    one held under a live lease: its holder may die or hand it back, and this group would then take it over), and
    one-GPU jobs of the class have claimable units (before anything is submitted, or once everything is done,
    splitting would gain nothing and lose the group for the next sweep). Jobs this process declined (not on its
    node) do not keep it a group. bench/replay.py --dissolve asks this same question."""
    declined = select(Unavailable.job_id).where(Unavailable.worker_id == lease.worker_id,
                                                Unavailable.token == lease.token)
    held = and_(Shard.status == "running", lease_is_live(Shard.lease_heartbeat_at, lease_timeout_s))

    def units(size: int, condition) -> bool:
        return session.scalar(
            select(Shard.id).join(Job, Job.id == Shard.job_id).join(Sweep, Sweep.id == Job.sweep_id)
            .where(Job.hardware_class == hardware_class, Job.gpus == size, open_jobs("distributed", None),
                   condition, Job.id.not_in(declined)).limit(1)) is not None

    return (not units(gpus, or_(claimable(lease_timeout_s), held))
            and units(1, claimable(lease_timeout_s)))
