"""Test 5: a worker started after `submit` joins and takes jobs; and a worker stopped with SIGTERM mid-job
hands its job back at a run boundary (no half-written run, no attempt used up) and exits cleanly."""

from __future__ import annotations

import signal

from sqlalchemy import func, select

from db.models import Job, Run
from tests.distributed.conftest import sweep_yaml


def test_late_worker_joins_and_sigterm_hands_back(cluster, tiny_bert_dir):
    models = cluster.model_copies(tiny_bert_dir, 8)
    early = cluster.start_worker("early")
    early.wait_ready()
    # Runs of ~0.5 s: the early worker cannot drain the sweep while the late one starts (seconds of imports).
    sweep_id = cluster.submit(sweep_yaml("scale", models, queries=500, repetitions=4))
    late = cluster.start_worker("late")  # joins a sweep already under way

    def runs_by(worker_name: str) -> int:
        with cluster.sessions() as session:
            return session.scalar(select(func.count()).select_from(Run).where(Run.worker_id == worker_name))

    cluster.wait_for(lambda: runs_by(late.name) >= 1, "the late worker to take a job", logs=[late])
    assert runs_by(early.name) >= 1  # the sweep was under way when it joined

    def early_mid_job() -> int | None:
        """The job the early worker holds once one of its runs is stored and more are left."""
        with cluster.sessions() as session:
            row = session.execute(
                select(Job.id, func.count(Run.id)).join(Run, (Run.job_id == Job.id) & (Run.status == "done"))
                .where(Job.lease_worker_id == early.name).group_by(Job.id)
            ).first()
        return row[0] if row and 1 <= row[1] <= 2 else None

    cluster.wait_for(lambda: early_mid_job() is not None, "the early worker to be mid-job", logs=[early])
    early.signal(signal.SIGTERM)
    assert early.wait(30) == 0, early.log()[-3000:]
    assert "handed back before its next run" in early.log()

    cluster.wait_for(cluster.finished, "the late worker to finish the sweep", logs=[late])
    with cluster.sessions() as session:
        assert dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all()) == {"done": 8}
        assert session.scalar(select(func.max(Job.attempts))) == 1  # handing back does not use up an attempt
        by_worker = dict(session.execute(select(Run.worker_id, func.count()).group_by(Run.worker_id)).all())
        shared = session.scalar(select(func.count(func.distinct(Run.job_id))).where(Run.worker_id == early.name)
                                .where(Run.job_id.in_(select(Run.job_id).where(Run.worker_id == late.name))))
    assert set(by_worker) == {early.name, late.name} and sum(by_worker.values()) == 32
    assert shared == 1, "the job the early worker handed back was finished by the late one"
    cluster.assert_every_run_stored_once(sweep_id)
