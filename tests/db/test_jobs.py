"""Unit leases and idempotency on real SQLite and Postgres: claim, takeover, the attempts cap, store, failures."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from db.clock import seconds_ago
from db.models import Job, Measurement, Run, Shard, Worker
from db.queue.leases import (
    LeaseLost,
    beat,
    claim_next,
    fail,
    fail_dead_units,
    finish_if_complete,
)
from db.queue.staffing import join_job
from db.queue.sweeps import sweep_progress
from db.queue.unit_store import store_unit
from db.results.store import record_run
from tests.helpers import W1, W2, first_job_id, make_sweep, reading
from worker.workloads.base import WorkDone


def age(sessions, shard_id, seconds=600):
    with sessions.begin() as session:
        session.execute(update(Shard).where(Shard.id == shard_id)
                        .values(lease_heartbeat_at=seconds_ago(seconds)))


def test_insert_sweep_writes_every_job_run_and_unit(sessions):
    sweep_id = make_sweep(sessions, n_jobs=3, n_runs=4)
    with sessions() as session:
        progress = sweep_progress(session, sweep_id=sweep_id)
        units = session.scalar(select(func.count()).select_from(Shard))
    assert (progress.jobs_total, progress.jobs_queued, progress.runs_total, progress.runs_pending) == (3, 3, 12, 12)
    assert units == 12  # one unit per run when nothing asks for shards


def test_a_live_lease_blocks_others_a_stale_one_is_taken_over_and_the_old_holder_writes_nothing(sessions):
    job_id = first_job_id(sessions, make_sweep(sessions, n_runs=1))
    with sessions.begin() as session:
        claim = claim_next(session, lease=W1, job_id=job_id, lease_timeout_s=60)
        assert claim is not None and claim.attempts == 1
    with sessions.begin() as session:
        assert claim_next(session, lease=W2, job_id=job_id, lease_timeout_s=60) is None
    age(sessions, claim.shard_id)  # w1 stopped beating
    with sessions.begin() as session:
        taken = claim_next(session, lease=W2, job_id=job_id, lease_timeout_s=60)
        assert taken.shard_id == claim.shard_id and taken.attempts == 2 and taken.takeover
    with sessions.begin() as session:  # the old holder notices it lost the lease, and cannot store
        assert beat(session, lease=W1, shard_id=claim.shard_id) == (True, False)
        assert beat(session, lease=W2, shard_id=claim.shard_id) == (True, True)
    with pytest.raises(LeaseLost), sessions.begin() as session:
        store_unit(session, lease=W1, claim=claim, reading=reading(), units=WorkDone(queries=4))
    with sessions.begin() as session:
        store_unit(session, lease=W2, claim=taken, reading=reading(), units=WorkDone(queries=4))
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Measurement)) == 1
        assert session.get(Job, job_id).status == "done"


def test_takeover_respects_the_attempts_cap_and_reconcile_fails_the_poison_unit(sessions):
    """Issue 11, defect 2: a unit whose worker dies on every attempt ends `failed`, not `running` for ever."""
    job_id = first_job_id(sessions, make_sweep(sessions, n_jobs=1, n_runs=1, max_attempts=2))
    for lease in (W1, W2):  # each holder dies mid-unit
        with sessions.begin() as session:
            claim = claim_next(session, lease=lease, job_id=job_id, lease_timeout_s=60)
            assert claim is not None
        age(sessions, claim.shard_id)
    with sessions.begin() as session:
        assert claim_next(session, lease=W1, job_id=job_id, lease_timeout_s=60) is None  # attempts used up
        assert fail_dead_units(session, lease_timeout_s=60) == [job_id]
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job.status == "failed" and "worker died 2 times" in job.last_error
        assert session.scalars(select(Run.status).where(Run.job_id == job_id)).all() == ["failed"]


def test_a_run_is_stored_once_even_if_recorded_twice(sessions):
    job_id = first_job_id(sessions, make_sweep(sessions))
    with sessions() as session:
        run_id = session.scalar(select(Run.id).where(Run.job_id == job_id).order_by(Run.id))
    units = WorkDone(queries=4, input_tokens=40)
    with sessions.begin() as session:
        assert record_run(session, run_id=run_id, worker_id="w1", reading=reading(), units=units) is True
    with sessions.begin() as session:
        assert record_run(session, run_id=run_id, worker_id="w2", reading=reading(), units=units) is False
    with sessions() as session:
        stored = session.scalars(select(Measurement).where(Measurement.run_id == run_id)).all()
        assert len(stored) == 1
        assert stored[0].kwh_per_1k_queries == 2e-6 * 1000 / 4
        assert stored[0].input_tokens == 40


def test_a_failing_unit_is_retried_until_its_attempts_run_out_then_its_run_and_job_fail(sessions):
    job_id = first_job_id(sessions, make_sweep(sessions, n_jobs=1, n_runs=2, max_attempts=2))
    outcomes = []
    for _ in range(2):
        with sessions.begin() as session:
            claim = claim_next(session, lease=W1, job_id=job_id, lease_timeout_s=60)
            outcomes.append(fail(session, lease=W1, shard_id=claim.shard_id, error="boom"))
    assert outcomes == ["pending", "failed"]
    with sessions.begin() as session:  # the other run is measured; then the job is finished, as failed
        claim = claim_next(session, lease=W1, job_id=job_id, lease_timeout_s=60)
        stored = store_unit(session, lease=W1, claim=claim, reading=reading(), units=WorkDone(queries=4))
        assert stored.next is None and stored.job_status == "failed"
    with sessions() as session:
        job = session.get(Job, job_id)
        assert (job.status, job.last_error) == ("failed", "boom")
        assert sorted(session.scalars(select(Run.status).where(Run.job_id == job_id))) == ["done", "failed"]


def test_storing_claims_the_next_unit_longest_first_and_finishes_the_job_with_its_last(sessions):
    sweep_id = make_sweep(sessions, n_jobs=1, n_runs=3)
    job_id = first_job_id(sessions, sweep_id)
    with sessions.begin() as session:  # give the units different expected durations
        ids = session.scalars(select(Shard.id).where(Shard.job_id == job_id).order_by(Shard.id)).all()
        for shard_id, expected in zip(ids, (1.0, 9.0, 5.0), strict=True):
            session.execute(update(Shard).where(Shard.id == shard_id).values(expected_s=expected))
    order = []
    with sessions.begin() as session:
        claim = claim_next(session, lease=W1, job_id=job_id, lease_timeout_s=60)
    while claim is not None:
        order.append(claim.shard_id)
        with sessions.begin() as session:
            stored = store_unit(session, lease=W1, claim=claim, reading=reading(), units=WorkDone(queries=4))
        claim = stored.next
    assert order == [ids[1], ids[2], ids[0]]
    assert stored.job_status == "done"
    with sessions() as session:
        assert finish_if_complete(session, job_id=job_id) is None  # already finished: nothing changes


def test_joining_chooses_the_biggest_job_and_a_second_worker_another_one(sessions):
    make_sweep(sessions, n_jobs=3, n_runs=2)
    with sessions.begin() as session:  # job 2 has the most expected work
        jobs = session.scalars(select(Job.id).order_by(Job.id)).all()
        session.execute(update(Shard).values(expected_s=1.0))
        session.execute(update(Shard).where(Shard.job_id == jobs[1]).values(expected_s=50.0))
        session.execute(update(Job).values(load_expected_s=30.0))
    with sessions.begin() as session:
        first = join_job(session, lease=W1, hardware_class="cpu", lease_timeout_s=60, mode="distributed").claim
    with sessions.begin() as session:
        second = join_job(session, lease=W2, hardware_class="cpu", lease_timeout_s=60, mode="distributed",
                          hint=jobs[2]).claim
    # Joining job 2 as well would be worth 50 s of work for a 30 s load (< 2x): the hint (job 3) wins the tie.
    assert (first.job_id, first.joined, second.job_id) == (jobs[1], True, jobs[2])
    with sessions() as session:
        assert session.get(Worker, W1.worker_id).current_job_id == jobs[1]
        assert (session.get(Job, jobs[1]).status, session.get(Job, jobs[1]).attempts) == ("running", 1)


def test_exclusive_sweeps_run_alone_on_their_host(sessions):
    make_sweep(sessions, n_jobs=1, n_runs=1, name="shared")
    make_sweep(sessions, n_jobs=1, n_runs=1, name="alone", exclusive=True)

    def join(lease):
        with sessions.begin() as session:
            return join_job(session, lease=lease, hardware_class="cpu", lease_timeout_s=60, mode="distributed")

    first = join(W1)  # the older, ordinary job
    with sessions() as session:
        assert session.get(Job, first.claim.job_id).model == "tiny:m0" and first.claim.job_id == 1
    second = join(W2)  # an exclusive job never starts beside another one on its host
    assert second.claim is None and second.host_busy
    with sessions.begin() as session:  # a worker on another host may take it
        session.execute(update(Worker).where(Worker.id == W2.worker_id).values(hostname="other"))
    assert join(W2).claim is not None
