"""Leases and idempotency on real SQLite and Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from db.jobs import claim_job, finish_job, heartbeat, pending_runs
from db.models import Job, Measurement, Run
from db.results import record_run
from db.sweeps import NewJob, insert_sweep, sweep_progress
from tests.factories import make_reading
from worker.workloads.base import WorkUnits


def make_sweep(sessions, n_jobs=2, n_runs=2, max_attempts=2):
    runs = [dict(dataset="builtin:texts", repetition=r, n_queries=4, batch_size=1, warmup=0) for r in range(n_runs)]
    with sessions.begin() as session:
        sweep = insert_sweep(
            session, name="s", spec={}, hardware_class="cpu", mode="local",
            carbon=dict(country_iso_code=None, region=None, grid_intensity_g_per_kwh=100.0),
            jobs=[NewJob("fill-mask", f"tiny:m{i}", "cpu", {}, runs) for i in range(n_jobs)],
            max_attempts=max_attempts,
        )
        return sweep.id


def reading(energy_kwh=2e-6):
    return make_reading(energy_kwh)


def first_job_id(sessions, sweep_id):
    with sessions() as session:
        return session.scalar(select(func.min(Job.id)).where(Job.sweep_id == sweep_id))


def test_insert_sweep_writes_every_job_and_run(sessions):
    sweep_id = make_sweep(sessions, n_jobs=3, n_runs=4)
    with sessions() as session:
        progress = sweep_progress(session, sweep_id=sweep_id)
    assert (progress.jobs_total, progress.jobs_queued, progress.runs_total, progress.runs_pending) == (3, 3, 12, 12)


def test_a_live_lease_blocks_a_second_worker_and_a_stale_one_is_taken_over(sessions):
    job_id = first_job_id(sessions, make_sweep(sessions))
    with sessions.begin() as session:
        assert claim_job(session, job_id=job_id, worker_id="w1", lease_timeout_s=60) is not None
    with sessions.begin() as session:
        assert claim_job(session, job_id=job_id, worker_id="w2", lease_timeout_s=60) is None
    with sessions.begin() as session:  # w1 stops heart-beating
        old = datetime.now(UTC) - timedelta(seconds=120)
        session.execute(update(Job).where(Job.id == job_id).values(lease_heartbeat_at=old))
    with sessions.begin() as session:
        job = claim_job(session, job_id=job_id, worker_id="w2", lease_timeout_s=60)
        assert job.lease_worker_id == "w2" and job.attempts == 2
    with sessions.begin() as session:  # the old holder notices it lost the lease
        assert heartbeat(session, job_id=job_id, worker_id="w1") is False
        assert heartbeat(session, job_id=job_id, worker_id="w2") is True


def test_a_run_is_stored_once_even_if_recorded_twice(sessions):
    job_id = first_job_id(sessions, make_sweep(sessions))
    with sessions.begin() as session:
        claim_job(session, job_id=job_id, worker_id="w1", lease_timeout_s=60)
        run_id = pending_runs(session, job_id=job_id)[0].id
    units = WorkUnits(queries=4, input_tokens=40)
    with sessions.begin() as session:
        assert record_run(session, run_id=run_id, worker_id="w1", reading=reading(), units=units) is True
    with sessions.begin() as session:
        assert record_run(session, run_id=run_id, worker_id="w2", reading=reading(), units=units) is False
    with sessions() as session:
        stored = session.scalars(select(Measurement).where(Measurement.run_id == run_id)).all()
        assert len(stored) == 1
        assert stored[0].kwh_per_1k_queries == 2e-6 * 1000 / 4
        assert stored[0].input_tokens == 40


def test_finish_requeues_until_attempts_run_out_then_fails_pending_runs(sessions):
    job_id = first_job_id(sessions, make_sweep(sessions, max_attempts=2))
    for attempt, expected in ((1, "queued"), (2, "failed")):
        with sessions.begin() as session:
            job = claim_job(session, job_id=job_id, worker_id="w1", lease_timeout_s=60)
            assert job.attempts == attempt
        with sessions.begin() as session:
            assert finish_job(session, job_id=job_id, worker_id="w1", error="boom") == expected
    with sessions() as session:
        job = session.get(Job, job_id)
        assert (job.status, job.last_error, job.lease_worker_id) == ("failed", "boom", None)
        statuses = session.scalars(select(Run.status).where(Run.job_id == job_id)).all()
        assert set(statuses) == {"failed"}
    with sessions.begin() as session:  # a failed job is not claimable again
        assert claim_job(session, job_id=job_id, worker_id="w1", lease_timeout_s=60) is None


def test_finish_without_error_is_done_only_when_every_run_is(sessions):
    job_id = first_job_id(sessions, make_sweep(sessions, n_runs=2))
    with sessions.begin() as session:
        claim_job(session, job_id=job_id, worker_id="w1", lease_timeout_s=60)
        first = pending_runs(session, job_id=job_id)[0].id
    with sessions.begin() as session:
        record_run(session, run_id=first, worker_id="w1", reading=reading(), units=WorkUnits(queries=4))
        assert finish_job(session, job_id=job_id, worker_id="w1") == "queued"


def test_exclusive_sweeps_run_alone_on_their_host(sessions):
    from db.jobs import host_is_busy
    from db.models import Worker

    runs = [dict(dataset="builtin:texts", repetition=0, n_queries=4, batch_size=1, warmup=0)]
    carbon = dict(country_iso_code=None, region=None, grid_intensity_g_per_kwh=100.0)
    with sessions.begin() as session:
        for worker_id, host in (("w1@h", "h"), ("w2@h", "h"), ("w3@other", "other")):
            session.add(Worker(id=worker_id, hostname=host, device="cpu", hardware_class="cpu", inventory={}))
        ids = {}
        for name, exclusive in (("shared", False), ("alone", True)):
            sweep = insert_sweep(session, name=name, spec={}, hardware_class="cpu", mode="distributed",
                                 carbon=carbon, exclusive=exclusive,
                                 jobs=[NewJob("fill-mask", f"tiny:m{i}", "cpu", {}, runs) for i in range(2)])
            session.flush()
            ids[name] = [job.id for job in sweep.jobs]

    def busy(job_id, worker_id):
        with sessions.begin() as session:
            return host_is_busy(session, job_id=job_id, worker_id=worker_id, lease_timeout_s=60)

    def claim(job_id, worker_id):
        with sessions.begin() as session:
            assert claim_job(session, job_id=job_id, worker_id=worker_id, lease_timeout_s=60)

    claim(ids["shared"][0], "w1@h")
    assert not busy(ids["shared"][1], "w2@h")  # two ordinary jobs may share a host
    assert busy(ids["alone"][0], "w2@h")  # an exclusive job waits for the host to be free
    assert not busy(ids["alone"][0], "w3@other")  # ... of this host only
    with sessions.begin() as session:
        finish_job(session, job_id=ids["shared"][0], worker_id="w1@h")
    assert not busy(ids["alone"][0], "w2@h")
    claim(ids["alone"][0], "w2@h")
    assert busy(ids["shared"][1], "w1@h")  # nothing starts beside an exclusive job
    with sessions.begin() as session:  # unless its lease went stale (its worker died)
        old = datetime.now(UTC) - timedelta(seconds=120)
        session.execute(update(Job).where(Job.id == ids["alone"][0]).values(lease_heartbeat_at=old))
    assert not busy(ids["shared"][1], "w1@h")
