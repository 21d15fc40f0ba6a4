"""Distributed mode, scheduler side: submit, reconcile, cancel, retry. Plain functions; the CLI wires them up.

Postgres is the source of truth and Redis only a dispatch channel that may lose
or repeat messages. A job goes to the queue of its hardware class's workers
holding the GPUs it needs (worker.contract.celery_app.job_queue: `h100`,
`h100-x4`). Messages carry job ids; the database decides which unit a
worker takes (db.queue.policy). A repeated message is harmless (the unit leases
decide), so when in doubt we send again. `reconcile` compares the two:

- candidates come from the database (db.queue.reconcile.dispatch_candidates): jobs of
  distributed, non-cancelled sweeps with units left to claim (pending, or under
  a stale lease with attempts left) and no live worker on them, not sent in the
  last grace period; units whose worker died on every attempt fail first;
- counts first: a queue whose Redis lists hold at least as many messages as it
  has candidates (less those reserved within the grace period) is not read;
  the rest of this list applies to the queues whose counts disagree;
- a queued candidate is left alone if its id is in its queue's Redis list, or
  was reserved by a worker within the grace period (about to be claimed);
- a stale-lease candidate is left alone only if its id is in the list (a copy
  in `unacked` belongs to the dead worker and would come back only after the
  visibility timeout, hours later);
- everything else is sent again, and its dispatch time recorded.

Nothing here imports torch, transformers, diffusers or codecarbon.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from db.queue.leases import fail_dead_units
from db.queue.reconcile import (
    cancel_sweep,
    candidate_counts,
    dispatch_candidates,
    mark_dispatched,
    requeue_failed,
    sweep_dispatches,
    unfinished_sweep,
)
from db.stale_sessions import end_stale_sessions
from scheduler.plan.submit import create_sweep, planned_jobs
from scheduler.spec.schema import SweepSpec
from worker.contract.broker import queue_lengths, ready_job_ids, reserved_job_ids
from worker.contract.celery_app import SendFailed, dispatch_queue, job_queue, send_job_ids

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submitted:
    sweep_id: int
    hardware_class: str
    jobs: int
    runs: int
    sent: int
    queues: dict[str, int] = field(default_factory=dict)  # queue -> jobs sent there (one per group size)


class SweepUnfinished(RuntimeError):
    """A sweep of this name still has work queued or running: submitting it again would measure it twice."""


class NotSent(RuntimeError):
    """The sweep is stored but some of its messages did not reach the broker; `reconcile` sends them."""

    def __init__(self, *, name: str, sweep_id: int, not_sent: int, cause: str) -> None:
        super().__init__(f"sweep {name} stored as id {sweep_id}; {not_sent} job messages not sent; "
                         f"`wattsweep reconcile` sends them (broker: {cause})")
        self.sweep_id, self.not_sent = sweep_id, not_sent


def submit_sweep(
    sessions: sessionmaker[Session], spec: SweepSpec, *, app, hardware_class: str | None = None, max_attempts: int = 3,
    new: bool = False,
) -> Submitted:
    """Write every job and run in one transaction, then send one message (the job id) per job.

    Refused (SweepUnfinished, nothing written) while a sweep of the same name has jobs queued or running, unless
    `new`. NotSent if the broker fails after the commit.
    """
    with sessions.begin() as session:
        if not new and (unfinished := unfinished_sweep(session, name=spec.name)) is not None:
            raise SweepUnfinished(
                f"sweep {spec.name} (id {unfinished.sweep_id}) is unfinished ({unfinished.queued} job(s) queued, "
                f"{unfinished.running} running): `wattsweep status {unfinished.sweep_id}` shows it and `wattsweep "
                "reconcile` sends what the broker lost; submit with --new to measure it all again as a second sweep")
        jobs = planned_jobs(session, spec, hardware_class)
        # Marked dispatched as they are written: the messages go once this commits.
        sweep = create_sweep(session, spec, mode="distributed", hardware_class=hardware_class,
                             max_attempts=max_attempts, jobs=jobs, dispatched=True)
        sweep_id, sweep_hardware = sweep.id, sweep.hardware_class
        dispatches = sweep_dispatches(session, sweep_id=sweep_id)
        runs = sum(len(job.runs) for job in jobs)
    # After the commit: a worker must find the job in the database when its message arrives. If sending
    # fails half-way, the jobs are queued in Postgres and `reconcile` sends the rest.
    try:
        sent = send_job_ids(app, dispatches)
    except SendFailed as error:
        unsent = [d.job_id for d in dispatches[error.sent:]]
        try:  # not sent after all: reconcile may send them at once instead of after the grace period
            with sessions.begin() as session:
                mark_dispatched(session, job_ids=unsent, at=None)
        except Exception as db_error:  # the grace period then only delays them
            log.warning("could not clear the dispatch time of unsent jobs: %s", db_error)
        raise NotSent(name=spec.name, sweep_id=sweep_id, not_sent=len(unsent), cause=str(error)) from None
    queues = Counter(map(dispatch_queue, dispatches))
    return Submitted(sweep_id, sweep_hardware, len(dispatches), runs, sent, dict(sorted(queues.items())))


@dataclass(frozen=True)
class Reconciled:
    checked: int  # jobs the database says need a message
    resent_queued: list[int] = field(default_factory=list)  # queued jobs the broker had lost
    resent_stale: list[int] = field(default_factory=list)  # jobs whose worker stopped heart-beating
    scanned: list[str] = field(default_factory=list)  # queues whose messages were read (their counts disagreed)

    @property
    def resent(self) -> int:
        return len(self.resent_queued) + len(self.resent_stale)


def reconcile_once(
    sessions: sessionmaker[Session], *, app, redis, lease_timeout_s: float, grace_s: float, scan: bool = False
) -> Reconciled:
    """One pass: send again what the database says is to do and the broker does not hold.

    Counts first: per queue, the jobs that need a message (one row per queue from the database) against the
    queue's length (LLEN) plus the candidates a worker reserved within the grace period (a few, read from
    `unacked`). Only a queue whose list is shorter than that is read message by message (`scan` reads every
    queue with candidates). At 100,000 waiting jobs that is ~100 bytes per pass instead of ~100 MB.

    Counts can agree while a message is missing: the list may also hold messages no job needs any more
    (duplicates, a job a worker already joined), one for each lost one. Those are consumed like any other
    message, in order, and the counts then disagree: a lost job is found no later than the messages that
    were in its queue at the time are taken, and its message goes to the back of the queue, as a message
    re-sent then would.
    """
    with sessions.begin() as session:  # its own transaction: the failed units are committed
        fail_dead_units(session, lease_timeout_s=lease_timeout_s)
        counts = candidate_counts(session, lease_timeout_s=lease_timeout_s, grace_s=grace_s)
    if not counts:
        return Reconciled(0)
    reserved = reserved_job_ids(redis, within_s=grace_s)
    names = {group: job_queue(*group) for group in sorted(counts)}  # (hardware class, GPUs) -> queue
    groups = list(names)
    if not scan:
        lengths = queue_lengths(redis, list(names.values()))
        in_lists = dict(counts)
        if reserved:  # about to be claimed: in `unacked`, not in the lists (a stale-lease job needs a list copy)
            with sessions() as session:
                for c in dispatch_candidates(session, lease_timeout_s=lease_timeout_s, grace_s=grace_s,
                                             job_ids=sorted(reserved)):
                    in_lists[c.group] -= not c.stale_lease
        groups = [group for group in groups if lengths[names[group]] < in_lists[group]]
    checked = sum(counts.values())
    if not groups:
        return Reconciled(checked)
    queues = [names[group] for group in groups]
    with sessions() as session:
        candidates = dispatch_candidates(session, lease_timeout_s=lease_timeout_s, grace_s=grace_s, groups=groups)
    ready = ready_job_ids(redis, queues)
    lost = [c for c in candidates if c.job_id not in ready and (c.stale_lease or c.job_id not in reserved)]
    if lost:
        with sessions.begin() as session:
            mark_dispatched(session, job_ids=[c.job_id for c in lost])
        send_job_ids(app, lost)
    return Reconciled(
        checked,
        [c.job_id for c in lost if not c.stale_lease],
        [c.job_id for c in lost if c.stale_lease],
        queues,
    )


def watch(
    sessions: sessionmaker[Session],
    *,
    app,
    redis,
    lease_timeout_s: float,
    grace_s: float,
    interval_s: float,
    on_pass: Callable[[Reconciled], None],
    stop: threading.Event | None = None,
    session_limits_s: tuple[float, float] | None = None,
) -> None:
    """Reconcile every `interval_s` until `stop` is set; a failed pass (database or Redis down) is logged.

    `session_limits_s` (idle in a transaction, in one statement): each pass also ends the reader and node sessions
    past them (db/stale_sessions.py), so that no session that turned its own timeouts off holds a lock for long.
    """
    stop = stop or threading.Event()
    while True:
        try:
            on_pass(reconcile_once(sessions, app=app, redis=redis, lease_timeout_s=lease_timeout_s, grace_s=grace_s))
        except Exception as error:  # services come and go; the next pass tries again
            log.warning("reconcile pass failed: %s: %s", type(error).__name__, error)
        if session_limits_s is not None:
            try:
                with sessions.begin() as session:
                    end_stale_sessions(session, idle_s=session_limits_s[0], statement_s=session_limits_s[1])
            except Exception as error:  # e.g. a database not yet at revision 0020: reconciling goes on
                log.warning("ending stale sessions failed: %s: %s", type(error).__name__, error)
        if stop.wait(interval_s):
            return


def cancel(sessions: sessionmaker[Session], *, sweep_id: int) -> int:
    """Cancel a sweep's unfinished jobs; messages still in Redis are dropped by the workers' claim."""
    with sessions.begin() as session:
        return cancel_sweep(session, sweep_id=sweep_id)


def retry_failed(sessions: sessionmaker[Session], *, app, sweep_id: int) -> int:
    """Give a sweep's failed jobs fresh attempts and send them again; returns how many."""
    with sessions.begin() as session:
        dispatches = requeue_failed(session, sweep_id=sweep_id)
        mark_dispatched(session, job_ids=[d.job_id for d in dispatches])
    return send_job_ids(app, dispatches)
