"""The heartbeat thread keeps a long run's lease fresh, keeps idle workers visible, and never steals a lease."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import update

from db.jobs import claim_job
from db.models import Job, Worker
from tests.db.test_jobs import first_job_id, make_sweep
from worker.heartbeat import HeartbeatThread


def stale(sessions, job_id) -> None:
    old = datetime.now(timezone.utc) - timedelta(minutes=10)
    with sessions.begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(lease_heartbeat_at=old))
        session.execute(update(Worker).values(heartbeat_at=old))


def fresh(moment: datetime) -> bool:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return datetime.now(timezone.utc) - moment < timedelta(seconds=5)


def test_heartbeat_thread_refreshes_the_lease_it_holds_and_only_that(sessions):
    job_id = first_job_id(sessions, make_sweep(sessions))
    with sessions.begin() as session:
        session.add(Worker(id="w1", hostname="h", device="cpu", hardware_class="cpu", inventory={}))
        session.flush()
        claim_job(session, job_id=job_id, worker_id="w1", lease_timeout_s=60)
    stale(sessions, job_id)
    thread = HeartbeatThread(sessions, "w1", interval_s=0.05)
    thread.start()
    try:
        time.sleep(0.3)  # idle: the worker row is refreshed, the job's lease is not
        with sessions() as session:
            assert fresh(session.get(Worker, "w1").heartbeat_at)
            assert not fresh(session.get(Job, job_id).lease_heartbeat_at)
        with thread.holding(job_id):
            time.sleep(0.3)
            with sessions() as session:
                assert fresh(session.get(Job, job_id).lease_heartbeat_at)
        time.sleep(0.2)  # let a beat that started inside the block finish
        stale(sessions, job_id)
        with sessions.begin() as session:  # another worker takes the job over
            session.execute(update(Job).where(Job.id == job_id).values(lease_worker_id="w2"))
        with thread.holding(job_id):
            time.sleep(0.3)
        with sessions() as session:
            job = session.get(Job, job_id)
            assert job.lease_worker_id == "w2" and not fresh(job.lease_heartbeat_at)
    finally:
        thread.stop()
        thread.join(5)
