"""The heartbeat thread keeps a long unit's lease fresh, keeps idle workers visible, never steals a lease, and its
watchdog gives up a unit whose progress stopped."""

from __future__ import annotations

import time

from sqlalchemy import select, update

from db.clock import age_s, seconds_ago
from db.models import Job, Shard, Worker
from db.queue.leases import claim_next
from tests.helpers import W1, first_job_id, make_sweep
from worker.process.executor import Progress
from worker.process.heartbeat import HeartbeatThread, stall_timeout_s


def ages(sessions, shard_id) -> tuple[float, float]:
    with sessions() as session:
        worker = session.scalar(select(age_s(Worker.heartbeat_at)).where(Worker.id == W1.worker_id))
        lease = session.scalar(select(age_s(Shard.lease_heartbeat_at)).where(Shard.id == shard_id))
    return worker, lease


def stale(sessions) -> None:
    with sessions.begin() as session:
        session.execute(update(Shard).where(Shard.lease_heartbeat_at.is_not(None))
                        .values(lease_heartbeat_at=seconds_ago(600)))
        session.execute(update(Worker).values(heartbeat_at=seconds_ago(600)))


def test_heartbeat_thread_refreshes_the_lease_it_holds_and_only_that(sessions):
    job_id = first_job_id(sessions, make_sweep(sessions))
    with sessions.begin() as session:
        shard_id = claim_next(session, lease=W1, job_id=job_id, lease_timeout_s=60).shard_id
    stale(sessions)
    thread = HeartbeatThread(sessions, W1, interval_s=0.05)
    thread.start()
    try:
        time.sleep(0.3)  # idle: the worker row is refreshed, the unit's lease is not
        worker, lease = ages(sessions, shard_id)
        assert worker < 5 and lease > 500
        with thread.holding(shard_id):
            time.sleep(0.3)
            assert ages(sessions, shard_id)[1] < 5
        time.sleep(0.2)  # let a beat that started inside the block finish
        stale(sessions)
        with sessions.begin() as session:  # another process takes the unit over
            session.execute(update(Shard).where(Shard.id == shard_id).values(lease_token="someone-else"))
        with thread.holding(shard_id):
            time.sleep(0.3)
        assert ages(sessions, shard_id)[1] > 500  # never beaten for a lease it lost
    finally:
        thread.stop()
        thread.join(5)


def test_the_watchdog_stops_beating_marks_the_unit_stalled_and_calls_for_an_exit(sessions):
    """Issue 11, defect 3: a hung main thread no longer keeps its lease fresh for ever."""
    job_id = first_job_id(sessions, make_sweep(sessions))
    with sessions.begin() as session:
        shard_id = claim_next(session, lease=W1, job_id=job_id, lease_timeout_s=60).shard_id
    progress, stalls = Progress(), []
    thread = HeartbeatThread(sessions, W1, interval_s=0.05, progress=progress, stall_timeout_s=0.3,
                             on_stall=stalls.append)
    thread.start()
    try:
        thread.hold(shard_id)
        deadline = time.monotonic() + 10
        while not stalls and time.monotonic() < deadline:
            time.sleep(0.05)  # the main thread makes no progress
        assert stalls and "no progress for" in stalls[0]
        time.sleep(0.3)
        with sessions() as session:
            shard = session.get(Shard, shard_id)
            assert shard.stalled_at is not None and "stall timeout" in shard.error
            assert session.get(Worker, W1.worker_id).stopped_reason.startswith("stalled: ")
            assert session.get(Job, job_id).status == "queued"  # untouched: the lease expires, then a takeover
        assert ages(sessions, shard_id)[1] >= 0.3  # the beats stopped
    finally:
        thread.stop()
        thread.join(5)


def test_stall_timeout_defaults_are_generous_and_follow_the_expected_duration():
    assert stall_timeout_s(None, None) == 1800
    assert stall_timeout_s(None, 3600) == 4 * 3600
    assert stall_timeout_s(42, 3600) == 42


def test_status_shows_a_stalled_unit_and_a_worker_that_stopped_taking_work(sessions):
    from db.models import Sweep
    from db.queue.leases import mark_stalled
    from db.queue.live import set_stopped_reason
    from db.queue.staffing import join_job
    from scheduler.report.live_view import status_lines, workers_table

    sweep_id = make_sweep(sessions, n_jobs=1, n_runs=2)
    with sessions.begin() as session:
        claim = join_job(session, lease=W1, hardware_class="cpu", lease_timeout_s=60, mode="distributed").claim
        mark_stalled(session, lease=W1, shard_id=claim.shard_id, reason="no progress for 1900 s")
        set_stopped_reason(session, worker_id=W1.worker_id, token=W1.token, reason="3 units failed in a row")
    with sessions() as session:
        text = "\n".join(status_lines(session, session.get(Sweep, sweep_id)))
        table = workers_table(session, alive_within_s=60, include_gone=True)
    assert f"running: job {claim.job_id}" in text and W1.worker_id in text
    assert f"stalled:[/yellow] unit {claim.shard_id}" in text
    assert f"not taking work:[/red] worker {W1.worker_id}" in text
    assert "state" in [column.header for column in table.columns]


def test_a_worker_idle_longer_than_its_stall_timeout_is_not_stalled_by_its_next_unit(sessions):
    """Idle time is not a stall: a worker that waited an hour for work starts its next unit with a fresh clock
    (the first step of a unit, e.g. an idle baseline of 20 s, comes before the unit's own first progress)."""
    job_id = first_job_id(sessions, make_sweep(sessions))
    with sessions.begin() as session:
        shard_id = claim_next(session, lease=W1, job_id=job_id, lease_timeout_s=60).shard_id
    progress, stalls = Progress(), []
    progress.at -= 3600  # its last progress: the end of its previous unit, an hour ago
    thread = HeartbeatThread(sessions, W1, interval_s=0.05, progress=progress, stall_timeout_s=5,
                             on_stall=stalls.append)
    thread.hold(shard_id)
    assert thread.beat() is True and thread.stalled_for() is None and stalls == []
    with sessions() as session:
        assert session.get(Shard, shard_id).stalled_at is None
