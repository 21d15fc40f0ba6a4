"""Group sizes at the work queue, on real SQLite and Postgres (issue 21): when a group worker's work is done
(`--split-when-drained`: db.queue.staffing.group_drained), and who must decline a job before it fails as not
available (mark_unavailable counts only the workers holding as many GPUs as the job needs)."""

from __future__ import annotations

from sqlalchemy import select, update

from db.clock import seconds_ago
from db.models import Job, Shard, Worker
from db.queue.leases import Lease
from db.queue.staffing import group_drained, join_job, mark_unavailable
from db.queue.sweeps import NewJob, insert_sweep

GROUP = Lease("gpu0-1@h", "t-group")
OTHER_GROUP = Lease("gpu2-3@h", "t-other")
SINGLE = Lease("gpu4@h", "t-single")
CPU = Lease("cpu1@h", "t-cpu")
HELD = {GROUP: [0, 1], OTHER_GROUP: [2, 3], SINGLE: [4], CPU: None}
CARBON = dict(country_iso_code=None, region=None, grid_intensity_g_per_kwh=100.0)


def sweep(sessions, gpus: list[int], *, hardware_class: str = "h100") -> list[int]:
    """A distributed sweep with one job of one run per entry of `gpus` (the GPUs it needs), and the workers; job ids."""
    runs = [dict(dataset="builtin:texts", repetition=0, n_queries=4, batch_size=1, warmup=0)]
    with sessions.begin() as session:
        for lease, held in HELD.items():
            if session.get(Worker, lease.worker_id) is None:
                session.add(Worker(id=lease.worker_id, hostname="h", device="cuda", hardware_class=hardware_class,
                                   inventory={}, token=lease.token, gpu_indexes=held))
        done = insert_sweep(session, name="s", spec={}, hardware_class=hardware_class, mode="distributed",
                            carbon=CARBON, jobs=[NewJob("fill-mask", f"tiny:m{i}", hardware_class, {}, runs, gpus=n)
                                                 for i, n in enumerate(gpus)])
        return list(session.scalars(select(Job.id).where(Job.sweep_id == done.id).order_by(Job.id)))


def drained(sessions, lease=GROUP, gpus=2) -> bool:
    with sessions() as session:
        return group_drained(session, lease=lease, hardware_class="h100", gpus=gpus, lease_timeout_s=60)


def set_unit(sessions, job_id: int, **values) -> None:
    with sessions.begin() as session:
        session.execute(update(Shard).where(Shard.job_id == job_id).values(**values))


def test_a_group_is_drained_once_nothing_is_left_for_its_size_while_one_gpu_jobs_wait(sessions):
    assert not drained(sessions)  # nothing submitted yet: splitting would lose the group for nothing
    two, one = sweep(sessions, [2, 1])
    assert not drained(sessions)  # its job waits
    set_unit(sessions, two, status="running", lease_worker_id=OTHER_GROUP.worker_id, lease_token=OTHER_GROUP.token,
             lease_heartbeat_at=seconds_ago(0), attempts=1)
    assert not drained(sessions)  # another group holds the last unit under a live lease: it may hand it back
    set_unit(sessions, two, lease_heartbeat_at=seconds_ago(3600))
    assert not drained(sessions)  # that lease went stale with attempts left: this group would take it over
    set_unit(sessions, two, status="done")
    assert drained(sessions)  # nothing left for 2 GPUs, a one-GPU job waits
    assert drained(sessions, lease=OTHER_GROUP, gpus=4)  # a group of a size no job needs splits too
    set_unit(sessions, one, status="running", lease_worker_id=SINGLE.worker_id, lease_token=SINGLE.token,
             lease_heartbeat_at=seconds_ago(0), attempts=1)
    assert not drained(sessions)  # the one-GPU work is held: one-GPU workers more would find nothing
    set_unit(sessions, one, status="done")
    assert not drained(sessions)  # everything done: it stays a group, for the next sweep


def test_a_job_the_group_declined_does_not_keep_it_a_group(sessions):
    two, _ = sweep(sessions, [2, 1])
    with sessions.begin() as session:
        claim = join_job(session, lease=GROUP, hardware_class="h100", lease_timeout_s=60, mode="distributed", gpus=2)
        assert claim.claim.job_id == two
        status = mark_unavailable(session, lease=GROUP, job_id=two, shard_id=claim.claim.shard_id,
                                  error="not in the local cache", hardware_class="h100", lease_timeout_s=60)
    assert status == "queued"  # another live group of 2 (OTHER_GROUP) may still have it
    assert drained(sessions) and not drained(sessions, lease=OTHER_GROUP)


def test_a_job_fails_as_not_available_once_every_live_worker_of_its_size_declined_it(sessions):
    two, one = sweep(sessions, [2, 1])

    def decline(lease: Lease, job_id: int, gpus: int) -> str:
        with sessions.begin() as session:
            found = join_job(session, lease=lease, hardware_class="h100", lease_timeout_s=60, mode="distributed",
                             only_job_id=job_id, gpus=gpus).claim
            assert found is not None
            return mark_unavailable(session, lease=lease, job_id=job_id, shard_id=found.shard_id,
                                    error="model 'x' is not in the local cache", hardware_class="h100",
                                    lease_timeout_s=60)

    assert decline(GROUP, two, 2) == "queued"  # OTHER_GROUP holds 2 GPUs too and has not said so
    assert decline(OTHER_GROUP, two, 2) == "failed"  # the one-GPU and CPU workers could never take it
    with sessions() as session:
        assert "not available on any of the 2 live worker(s)" in session.get(Job, two).last_error
    assert decline(SINGLE, one, 1) == "queued"  # the CPU worker (no GPUs: size 1) may still have it
    assert decline(CPU, one, 1) == "failed"  # the groups never count for a one-GPU job
    with sessions() as session:
        assert "not available on any of the 2 live worker(s)" in session.get(Job, one).last_error
