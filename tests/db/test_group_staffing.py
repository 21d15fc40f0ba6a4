"""Issue 21: a job needing N GPUs is joined only by workers holding N (db.queue.staffing's `gpus`), on real
SQLite and Postgres."""

from __future__ import annotations

from sqlalchemy import select, update

from db.models import Job, Shard, Worker
from db.queue.leases import Lease
from db.queue.staffing import job_facts, join_job, recruit
from db.queue.sweeps import NewJob, insert_sweep

ONE, FOUR = Lease("gpu0@node", "token-1"), Lease("gpus4-7@node", "token-4")
CARBON = dict(country_iso_code=None, region=None, grid_intensity_g_per_kwh=100.0)


def _sweep(sessions) -> dict[int, int]:
    """One job needing 1 GPU and one needing 4, three runs each, and a worker of each size: {gpus: job id}."""
    runs = [dict(dataset="builtin:texts", repetition=r, n_queries=4, batch_size=1, warmup=0, expected_s=10.0)
            for r in range(3)]
    with sessions.begin() as session:
        for lease in (ONE, FOUR):
            session.add(Worker(id=lease.worker_id, hostname="node", device="cuda:0", hardware_class="h100",
                               inventory={}, token=lease.token))
        sweep = insert_sweep(session, name="groups", spec={}, hardware_class="h100", mode="distributed",
                             carbon=CARBON, jobs=[NewJob("fill-mask", "tiny:small", "h100", {}, runs),
                                                  NewJob("fill-mask", "hub:org/big", "h100", {}, runs, gpus=4)])
        session.flush()
        return {gpus: job_id for job_id, gpus in session.execute(select(Job.id, Job.gpus)
                                                                   .where(Job.sweep_id == sweep.id))}


def _join(sessions, lease: Lease, gpus: int, only_job_id: int | None = None):
    with sessions.begin() as session:
        return join_job(session, lease=lease, hardware_class="h100", lease_timeout_s=60, mode="distributed",
                        only_job_id=only_job_id, gpus=gpus).claim


def test_a_four_gpu_job_is_never_joined_by_a_one_gpu_worker_nor_the_other_way_round(sessions):
    jobs = _sweep(sessions)
    with sessions() as session:
        facts = {gpus: [f.job_id for f in job_facts(session, hardware_class="h100", lease=ONE, lease_timeout_s=60,
                                                    mode="distributed", gpus=gpus)] for gpus in (1, 2, 4)}
    assert facts == {1: [jobs[1]], 2: [], 4: [jobs[4]]}
    assert _join(sessions, ONE, 1, only_job_id=jobs[4]) is None  # even when its message names the 4-GPU job
    assert _join(sessions, FOUR, 4, only_job_id=jobs[1]) is None
    assert _join(sessions, ONE, 1).job_id == jobs[1]
    assert _join(sessions, FOUR, 4).job_id == jobs[4]
    with sessions() as session:  # each size recruits for its own jobs only (their ids go to its own queue)
        assert recruit(session, lease=ONE, hardware_class="h100", lease_timeout_s=60, gpus=1) == jobs[1]
        assert recruit(session, lease=FOUR, hardware_class="h100", lease_timeout_s=60, gpus=4) == jobs[4]
        assert recruit(session, lease=FOUR, hardware_class="h100", lease_timeout_s=60, gpus=8) is None


def test_a_one_gpu_worker_with_nothing_of_its_size_left_takes_no_four_gpu_unit(sessions):
    jobs = _sweep(sessions)
    with sessions.begin() as session:  # the one-GPU job is done; the 4-GPU job's three units wait
        session.execute(update(Shard).where(Shard.job_id == jobs[1]).values(status="done"))
    assert _join(sessions, ONE, 1) is None
    assert _join(sessions, FOUR, 4).job_id == jobs[4]
