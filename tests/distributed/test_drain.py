"""Test 1: three CPU workers drain a 30-job sweep; every run stored exactly once; every worker did some work."""

from __future__ import annotations

from sqlalchemy import func, select

from db.models import Job, Run
from tests.distributed.conftest import sweep_yaml


def test_three_workers_drain_a_30_job_sweep(cluster, tiny_bert_dir):
    models = cluster.model_copies(tiny_bert_dir, 30)
    workers = [cluster.start_worker(f"cpu{i}") for i in range(3)]
    for worker in workers:
        worker.wait_ready()

    sweep_id = cluster.submit(sweep_yaml("drain", models, queries=2, repetitions=2))
    cluster.wait_for(cluster.finished, "the sweep to finish", logs=workers)

    with cluster.sessions() as session:
        statuses = session.execute(select(Job.status, func.count()).where(Job.sweep_id == sweep_id)
                                   .group_by(Job.status)).all()
        assert dict(statuses) == {"done": 30}
        assert session.scalar(select(func.max(Job.attempts)).where(Job.sweep_id == sweep_id)) == 1
        by_worker = dict(session.execute(select(Run.worker_id, func.count()).join(Job)
                                         .where(Job.sweep_id == sweep_id).group_by(Run.worker_id)).all())
    assert sum(by_worker.values()) == 60
    assert set(by_worker) == {w.name for w in workers}, f"some worker did nothing: {by_worker}"
    cluster.assert_every_run_stored_once(sweep_id)

    status = cluster.wattsweep("status", str(sweep_id))
    assert "jobs: 30 done, 0 running, 0 failed, 0 queued, 30 total" in status.stdout
    listing = cluster.wattsweep("workers")
    assert all(w.name in listing.stdout for w in workers), listing.stdout
