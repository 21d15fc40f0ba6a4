"""Test 2: SIGKILL a worker in the middle of a run: the job finishes on another worker, nothing is duplicated."""

from __future__ import annotations

import signal
import time

from sqlalchemy import func, select

from db.models import Job, Measurement, Run
from tests.distributed.conftest import sweep_yaml


def test_sigkill_mid_run_job_finishes_on_another_worker(cluster, tiny_bert_dir):
    workers = {w.name: w for w in (cluster.start_worker("a"), cluster.start_worker("b"))}
    reconciler, _ = cluster.spawn("reconcile", "--watch", "--interval", "1", log_name="reconcile")
    for worker in workers.values():
        worker.wait_ready()
    # Runs of 800 queries last a second or more, so "the middle of a run" is a wide target.
    sweep_id = cluster.submit(sweep_yaml("killed", [f"path:{tiny_bert_dir}"], queries=800, repetitions=3))

    def job() -> Job:
        with cluster.sessions() as session:
            return session.scalars(select(Job).where(Job.sweep_id == sweep_id)).one()

    def runs_done() -> int:
        with cluster.sessions() as session:
            return session.scalar(select(func.count()).select_from(Run).where(Run.status == "done"))

    cluster.wait_for(lambda: runs_done() >= 1, "the first run to be stored", logs=list(workers.values()))
    time.sleep(0.2)  # inside the second run's window
    doomed = workers.pop(job().lease_worker_id)
    survivor = workers.popitem()[1]
    doomed.signal(signal.SIGKILL)
    doomed.wait(10)
    stored_before_kill = runs_done()
    assert stored_before_kill in (1, 2) and job().status == "running"  # killed mid-job, inside a run

    # The dead worker's lease goes stale; the reconciler sends the job again and the survivor takes it over.
    cluster.wait_for(cluster.finished, "the job to finish on the survivor", logs=[survivor])
    finished = job()
    assert (finished.status, finished.attempts, finished.lease_worker_id) == ("done", 2, None)
    with cluster.sessions() as session:
        runs = session.scalars(select(Run).where(Run.job_id == finished.id).order_by(Run.id)).all()
        loads = session.scalar(select(func.count()).select_from(Measurement).where(Measurement.phase == "load"))
    k = stored_before_kill
    assert [r.worker_id for r in runs] == [doomed.name] * k + [survivor.name] * (3 - k)
    assert loads == 2  # one load window per attempt
    cluster.assert_every_run_stored_once(sweep_id)
    assert "1 stale lease(s) sent again" in (cluster.folder / "reconcile.log").read_text()
    assert reconciler.poll() is None
