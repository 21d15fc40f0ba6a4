"""Issue 11's lease defects on real SQLite and Postgres, at the database level (the process-level ones are in
tests/distributed/test_lease_faults.py): server-clock stamps, unavailable-is-not-failed, a failure streak,
lease-checked load writes, the recorded commit, and one live process per worker id (issue 9)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from db.clock import age_s, seconds_ago, server_now
from db.models import Job, Measurement, Shard, Unavailable, Worker
from db.queue.leases import Lease, beat, claim_next
from db.queue.live import register_worker, unregister_worker
from db.queue.staffing import join_job, mark_unavailable
from tests.factories import make_reading
from tests.helpers import W1, W2, first_job_id, make_sweep
from worker.process.executor import _pinned, _store_load
from worker.process.loop import Execute, Failed, Load, Loaded, LoopHooks, WorkLoop


def test_lease_stamps_are_the_servers_clock_whatever_the_workers_clock_says(sessions, monkeypatch):
    """Defect 1: a worker whose clock is 10 s slow must not stamp its heartbeats in the past."""
    import db.models

    slow = datetime.now(UTC) - timedelta(seconds=10)
    monkeypatch.setattr(db.models, "utcnow", lambda: slow)  # what the old code stamped with
    job_id = first_job_id(sessions, make_sweep(sessions, n_runs=1))
    with sessions.begin() as session:
        shard_id = claim_next(session, lease=W1, job_id=job_id, lease_timeout_s=4).shard_id
        beat(session, lease=W1, shard_id=shard_id)
    with sessions() as session:
        assert session.scalar(select(age_s(Shard.lease_heartbeat_at)).where(Shard.id == shard_id)) < 3
    with sessions.begin() as session:  # a second worker judging staleness sees a live lease
        assert claim_next(session, lease=W2, job_id=job_id, lease_timeout_s=4) is None


def test_a_model_missing_on_one_node_is_handed_back_without_an_attempt_and_fails_only_when_missing_everywhere(
        sessions):
    """Defect 4: "not available on this node" uses no attempt; that worker stops taking the job."""
    job_id = first_job_id(sessions, make_sweep(sessions, n_jobs=1, n_runs=2, max_attempts=2))

    def declare(lease):
        with sessions.begin() as session:
            claim = join_job(session, lease=lease, hardware_class="cpu", lease_timeout_s=60, mode="distributed",
                             only_job_id=job_id).claim
            assert claim is not None
            return mark_unavailable(session, lease=lease, job_id=job_id, shard_id=claim.shard_id,
                                    error="model 'x' is not in the local cache", hardware_class="cpu",
                                    lease_timeout_s=60)

    assert declare(W1) == "queued"
    with sessions() as session:
        assert set(session.scalars(select(Shard.attempts).where(Shard.job_id == job_id))) == {0}
        assert session.get(Job, job_id).attempts == 0 and session.get(Job, job_id).status == "queued"
    with sessions.begin() as session:  # W1 no longer takes it; W2 still may
        assert join_job(session, lease=W1, hardware_class="cpu", lease_timeout_s=60,
                        mode="distributed").claim is None
    assert declare(W2) == "failed"  # every live worker of the class lacks it: the job ends, saying so
    with sessions() as session:
        job = session.get(Job, job_id)
        assert "not available on any of the 2 live worker(s)" in job.last_error
        assert session.scalar(select(func.count()).select_from(Unavailable)) == 2


def transact_with(sessions):
    def transact(work):
        with sessions.begin() as session:
            return work(session)
    return transact


def test_a_worker_that_fails_units_in_a_row_stops_taking_work(sessions):
    """Defect 4: a broken node (every unit fails in milliseconds) stops after 3, instead of draining the sweep."""
    make_sweep(sessions, n_jobs=2, n_runs=4, max_attempts=5)
    loop = WorkLoop(lease=W1, hardware_class="cpu", lease_timeout_s=60, hooks=LoopHooks(transact_with(sessions)),
                    max_consecutive_failures=3)
    flow, answer, executed = loop.serve(None, joins=5), None, 0
    try:
        while True:
            request = flow.send(answer)
            if isinstance(request, Load):
                answer = Loaded()
            else:
                assert isinstance(request, Execute)
                executed += 1
                answer = Failed("RuntimeError: CUDA error: an illegal memory access was encountered")
    except StopIteration:
        pass
    assert executed == 3 and loop.stopped_reason.startswith("3 units failed in a row")
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Shard).where(Shard.status == "pending")) == 8
        assert session.get(Worker, W1.worker_id).current_job_id is None  # it left its job for others


def test_the_load_window_and_provenance_are_written_only_under_the_units_lease(sessions):
    """Defect 6: a worker cut off while loading (its unit taken over) writes no stray load window."""
    job_id = first_job_id(sessions, make_sweep(sessions, n_runs=1))
    with sessions.begin() as session:
        claim = claim_next(session, lease=W1, job_id=job_id, lease_timeout_s=60)
        session.execute(update(Shard).where(Shard.id == claim.shard_id).values(lease_token=W2.token))  # taken over
    with sessions.begin() as session:
        assert _store_load(session, W1, claim, make_reading(), {"revision": "a" * 40}, None) is False
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Measurement)) == 0
        assert session.get(Job, job_id).model_revision is None


def test_a_recorded_commit_is_what_later_attempts_load(sessions):
    """Defect 6: `hub:` without @revision follows the branch; once a job recorded a commit, it is pinned."""
    assert _pinned("hub:org/model", "abc123") == "hub:org/model@abc123"
    assert _pinned("hub:org/model@main", "abc123") == "hub:org/model@abc123"
    assert _pinned("path:/models/x", "abc123") == "path:/models/x" and _pinned("hub:org/m", None) == "hub:org/m"
    job_id = first_job_id(sessions, make_sweep(sessions, n_runs=2))
    with sessions.begin() as session:
        first = claim_next(session, lease=W1, job_id=job_id, lease_timeout_s=60)
        assert _store_load(session, W1, first, make_reading(), {"revision": "a" * 40}, None) is True
    with sessions.begin() as session:  # a racing first load of another commit is not used: handed back
        other = claim_next(session, lease=W2, job_id=job_id, lease_timeout_s=60)
        assert _store_load(session, W2, other, make_reading(), {"revision": "b" * 40}, None) is False
    with sessions() as session:
        assert session.get(Job, job_id).model_revision == "a" * 40
        assert session.get(Shard, other.shard_id).status == "pending"
        assert session.scalar(select(func.count()).select_from(Measurement).where(Measurement.phase == "load")) == 1


def test_one_live_process_per_worker_id(sessions):
    """Issue 9: registration is atomic and carries a per-process token; a twin is refused, a clean exit frees."""
    def register(token, window=30.0):
        with sessions.begin() as session:
            return register_worker(session, worker_id="gpu0@node7", token=token, hostname="node7", device="cuda:0",
                                   hardware_class="a100", inventory={}, twin_window_s=window, host_id="boot-1")

    assert register("first") is True
    assert register("second") is False  # the first process is alive
    with sessions() as session:
        assert session.get(Worker, "gpu0@node7").token == "first"
    with sessions.begin() as session:
        unregister_worker(session, worker_id="gpu0@node7", token="first")
    assert register("second") is True  # a clean exit frees the id at once
    with sessions.begin() as session:  # a process killed without unregistering: free once its beats stop
        session.execute(update(Worker).values(heartbeat_at=seconds_ago(120)))
    assert register("third") is True
    with sessions.begin() as session:  # the evicted process's writes name a token that is no longer there
        assert beat(session, lease=Lease("gpu0@node7", "second"), shard_id=None) == (False, False)
        assert beat(session, lease=Lease("gpu0@node7", "third"), shard_id=None) == (True, False)
        assert session.scalar(select(server_now())) is not None
