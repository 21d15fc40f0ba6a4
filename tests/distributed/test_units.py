"""Issue 10 on real workers: the units of one job spread over several workers, each loading the model once; the
same job id delivered to many workers; a late joiner; SIGKILL mid-shard; the longest unit first.

Duration estimates here are the prior (a fresh database has no earlier measurements): for a fill-mask `path:`
model about 0.011 s per query and a 5.9 s load, so a worker joins a job that already has workers when its share
of the job's remaining work is at least 2 x 5.9 s (db.queue.policy.JOIN_FACTOR): about 1,100 queries.
"""

from __future__ import annotations

import signal
import time

from sqlalchemy import func, select

from db.models import Job, Measurement, Run, Shard
from tests.distributed.conftest import sweep_yaml


def runs_by_worker(cluster, sweep_id: int) -> dict[str, int]:
    with cluster.sessions() as session:
        return dict(session.execute(select(Run.worker_id, func.count()).join(Job).where(
            Job.sweep_id == sweep_id, Run.status == "done").group_by(Run.worker_id)).all())


def loads_per_worker(cluster, sweep_id: int) -> dict[tuple[int, str], int]:
    with cluster.sessions() as session:
        return {(job_id, worker): n for job_id, worker, n in session.execute(
            select(Measurement.job_id, Measurement.worker_id, func.count()).join(Job)
            .where(Job.sweep_id == sweep_id, Measurement.phase == "load")
            .group_by(Measurement.job_id, Measurement.worker_id)).all()}


def test_a_job_of_8_runs_spreads_over_4_workers_each_loading_the_model_once(cluster, tiny_bert_dir):
    workers = [cluster.start_worker(f"u{i}") for i in range(4)]
    for worker in workers:
        worker.wait_ready()
    sweep_id = cluster.submit(sweep_yaml("spread", [f"path:{tiny_bert_dir}"], queries=1000, repetitions=8))
    cluster.wait_for(cluster.finished, "the job to finish", timeout_s=600, logs=workers)

    assert cluster.job_statuses() == {"done": 1}
    cluster.assert_every_run_stored_once(sweep_id)
    by_worker = runs_by_worker(cluster, sweep_id)
    assert sum(by_worker.values()) == 8
    assert len(by_worker) >= 2, f"one worker did the whole job: {by_worker}"
    loads = loads_per_worker(cluster, sweep_id)
    assert set(loads.values()) == {1}, f"a worker loaded the model twice: {loads}"  # affinity
    assert {worker for _, worker in loads} >= set(by_worker)  # every worker that stored a run loaded once
    with cluster.sessions() as session:
        assert session.scalar(select(Job.attempts).where(Job.sweep_id == sweep_id)) == len(loads)


def test_the_same_job_id_delivered_to_several_workers_at_once_stores_every_unit_once(cluster, tiny_bert_dir):
    from db.queue.reconcile import Dispatch
    from worker.contract.celery_app import make_app, send_job_ids

    sweep_id = cluster.submit(sweep_yaml("many", [f"path:{tiny_bert_dir}"], queries=600, repetitions=6))
    with cluster.sessions() as session:
        job_id = session.scalar(select(Job.id).where(Job.sweep_id == sweep_id))
    send_job_ids(make_app(cluster.broker_url), [Dispatch(job_id, cluster.queue)] * 3)  # 4 copies in all
    workers = [cluster.start_worker(f"d{i}") for i in range(3)]  # all start on a full queue
    cluster.wait_for(lambda: cluster.finished() and cluster.redis.llen(cluster.queue) == 0,
                     "the job to finish and the queue to empty", timeout_s=600, logs=workers)
    cluster.assert_every_run_stored_once(sweep_id)
    with cluster.sessions() as session:
        shards = session.execute(select(Shard.status, Shard.attempts).where(Shard.job_id == job_id)).all()
    assert shards and all(status == "done" and attempts == 1 for status, attempts in shards)
    assert set(loads_per_worker(cluster, sweep_id).values()) == {1}


def test_a_late_joiner_takes_remaining_units_of_a_running_job(cluster, tiny_bert_dir):
    early = cluster.start_worker("early")
    early.wait_ready()
    # Enough work that what remains when the late worker is up (it takes as long to start as the early one did)
    # is worth a load: the join rule rightly keeps a worker off a job that is nearly done.
    sweep_id = cluster.submit(sweep_yaml("late", [f"path:{tiny_bert_dir}"], queries=1000, repetitions=16))
    cluster.wait_for(lambda: runs_by_worker(cluster, sweep_id).get(early.name, 0) >= 1, "the first run",
                     logs=[early])
    late = cluster.start_worker("late")  # the job is already running elsewhere
    cluster.wait_for(cluster.finished, "the job to finish", timeout_s=600, logs=[early, late])
    by_worker = runs_by_worker(cluster, sweep_id)
    assert by_worker.get(late.name, 0) >= 1, f"the late worker took nothing: {by_worker}"
    assert sum(by_worker.values()) == 16
    cluster.assert_every_run_stored_once(sweep_id)


def test_sigkill_mid_shard_redoes_that_shard_and_keeps_the_others(cluster, tiny_bert_dir):
    workers = {w.name: w for w in (cluster.start_worker("s1"), cluster.start_worker("s2"))}
    cluster.spawn("reconcile", "--watch", "--interval", "1", log_name="reconcile")
    for worker in workers.values():
        worker.wait_ready()
    text = sweep_yaml("sharded", [f"path:{tiny_bert_dir}"], queries=3000, repetitions=1).replace(
        "warmup: 0,", "warmup: 0, shard_queries: 500,")
    sweep_id = cluster.submit(text)
    with cluster.sessions() as session:
        run_id = session.scalar(select(Run.id).join(Job).where(Job.sweep_id == sweep_id))
        assert session.get(Run, run_id).n_shards == 6

    def victim() -> tuple[str, int] | None:
        """A worker that has stored a shard and is inside another one."""
        with cluster.sessions() as session:
            stored = set(session.scalars(select(Shard.worker_id).where(Shard.run_id == run_id,
                                                                       Shard.status == "done")))
            held = session.execute(select(Shard.lease_worker_id, Shard.id).where(
                Shard.run_id == run_id, Shard.status == "running")).all()
        return next(((worker, shard) for worker, shard in held if worker in stored), None)

    cluster.wait_for(lambda: victim() is not None, "a worker inside its second shard", logs=list(workers.values()))
    time.sleep(0.3)
    name, shard_id = victim()
    doomed = workers.pop(name)
    doomed.signal(signal.SIGKILL)
    doomed.wait(10)
    with cluster.sessions() as session:
        kept = {s.id: s.worker_id for s in session.scalars(select(Shard).where(Shard.run_id == run_id,
                                                                                Shard.status == "done"))}
    assert name in kept.values()

    survivor = workers.popitem()[1]
    cluster.wait_for(cluster.finished, "the survivor to finish the run", timeout_s=600, logs=[survivor])
    with cluster.sessions() as session:
        shards = {s.id: s for s in session.scalars(select(Shard).where(Shard.run_id == run_id))}
        windows = session.scalars(select(Measurement).where(Measurement.phase == "shard")).all()
        total = session.scalars(select(Measurement).where(Measurement.run_id == run_id,
                                                          Measurement.phase == "query")).one()
    assert all(s.status == "done" for s in shards.values())
    assert (shards[shard_id].attempts, shards[shard_id].worker_id) == (2, survivor.name)  # redone elsewhere
    assert all(shards[i].worker_id == worker and shards[i].attempts == 1 for i, worker in kept.items())  # kept
    assert sorted(w.shard_id for w in windows) == sorted(shards)  # one window per shard, none twice
    assert total.n_queries == 3000 and total.shards == 6
    assert abs(total.energy_kwh - sum(w.energy_kwh for w in windows)) < 1e-12


def test_the_longest_expected_unit_is_dispatched_first(cluster, tiny_bert_dir):
    short, long_ = cluster.model_copies(tiny_bert_dir, 2)
    text = (
        "name: order\n"
        "defaults: {queries: 20, repetitions: 2, warmup: 0, batch_size: 1}\n"
        "carbon: {grid_intensity_g_per_kwh: 100}\n"
        "tasks:\n"
        f"  text-classification: {{models: [{short}], datasets: [builtin:texts]}}\n"
        f"  fill-mask: {{models: [{long_}], datasets: [builtin:texts], queries: 200}}\n"
    )
    sweep_id = cluster.submit(text)
    with cluster.sessions() as session:
        expected = dict(session.execute(select(Job.model, Job.expected_s).where(Job.sweep_id == sweep_id)).all())
        long_job = session.scalar(select(Job.id).where(Job.model == long_))
    assert expected[long_] > expected[short]
    from worker.contract.broker import decode_job_id

    assert decode_job_id(cluster.redis.lindex(cluster.queue, -1)) == long_job  # the first message out
    worker = cluster.start_worker("order")
    cluster.wait_for(cluster.finished, "the sweep to finish", logs=[worker])
    with cluster.sessions() as session:
        first = session.scalars(select(Run).join(Job).where(Job.sweep_id == sweep_id)
                                .order_by(Run.finished_at)).first()
    assert first.job_id == long_job
