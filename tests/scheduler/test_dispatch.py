"""Submit, reconcile, cancel and retry as plain functions, on real Postgres and a real Redis (no workers)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
import redis
from sqlalchemy import select, update

from db.clock import seconds_ago
from db.models import Job, Run, Shard, Worker
from db.queue.leases import Lease, beat, claim_next, fail_job
from db.queue.reconcile import Dispatch, requeue_failed
from db.queue.staffing import join_job
from db.session import session_factory
from scheduler.dispatch import cancel, reconcile_once, retry_failed, submit_sweep
from scheduler.spec.reading import parse_sweep
from tests.distributed.conftest import REDIS_URL, redis_db  # noqa: F401  (a fixture)
from worker.contract.broker import UNACKED_INDEX_KEY, UNACKED_KEY, decode_job_id, ready_job_ids, reserved_job_ids
from worker.contract.celery_app import make_app

SPEC = {
    "name": "plan", "hardware_class": "cpu-x", "carbon": {"grid_intensity_g_per_kwh": 100},
    "defaults": {"queries": 2, "repetitions": 2},
    "tasks": {"fill-mask": {"models": ["tiny:bert", "hub:org/a", "hub:org/b"], "datasets": ["builtin:texts"]}},
}


@pytest.fixture
def env(postgres_url, request):
    url = f"{REDIS_URL}/{request.getfixturevalue('redis_db')}"  # the distributed tests' Redis database lock
    client = redis.Redis.from_url(url)
    yield session_factory(postgres_url), make_app(url), client
    client.close()


def reconcile(sessions, app, client, grace_s=0.0):
    return reconcile_once(sessions, app=app, redis=client, lease_timeout_s=60, grace_s=grace_s)


def join(sessions, worker_id: str, job_id: int) -> Lease:
    """A worker registers and joins `job_id`, leasing its first unit."""
    lease = Lease(worker_id, f"token-{worker_id}")
    with sessions.begin() as session:
        session.add(Worker(id=worker_id, hostname="x", device="cpu", hardware_class="cpu-x", inventory={},
                           token=lease.token))
        session.flush()
        assert join_job(session, lease=lease, hardware_class="cpu-x", lease_timeout_s=60, mode="distributed",
                        only_job_id=job_id).claim is not None
    return lease


def test_submit_writes_then_sends_one_job_id_per_job(env):
    sessions, app, client = env
    done = submit_sweep(sessions, parse_sweep(SPEC), app=app)
    assert (done.jobs, done.runs, done.sent, done.hardware_class) == (3, 6, 3, "cpu-x")
    with sessions() as session:
        job_ids = set(session.scalars(select(Job.id)))
        assert all(j.dispatched_at is not None for j in session.scalars(select(Job)))
    assert ready_job_ids(client, ["cpu-x"]) == job_ids
    message = json.loads(client.lindex("cpu-x", 0))
    assert message["content-type"] == "application/json" and decode_job_id(client.lindex("cpu-x", 0)) in job_ids
    assert reconcile(sessions, app, client).resent == 0  # all present: nothing to do


def test_hardware_class_override_picks_the_queue(env):
    sessions, app, client = env
    submit_sweep(sessions, parse_sweep(SPEC), app=app, hardware_class="a100")
    assert len(ready_job_ids(client, ["a100"])) == 3 and client.llen("cpu-x") == 0


def test_reconcile_resends_what_redis_lost_but_respects_the_grace_period(env):
    sessions, app, client = env
    submit_sweep(sessions, parse_sweep(SPEC), app=app)
    client.delete("cpu-x")  # the messages are lost
    assert reconcile(sessions, app, client, grace_s=60).checked == 0  # just sent: may still be in flight
    result = reconcile(sessions, app, client)
    assert len(result.resent_queued) == 3 and result.resent_stale == []
    assert client.llen("cpu-x") == 3
    assert reconcile(sessions, app, client).resent == 0


def test_reconcile_counts_a_fresh_reservation_but_not_a_stale_lease(env):
    sessions, app, client = env
    submit_sweep(sessions, parse_sweep(SPEC), app=app)
    everyone = ready_job_ids(client, ["cpu-x"])
    # A worker reserved `first` just now (in `unacked`, not yet claimed): not lost.
    raw = json.loads(client.rpop("cpu-x"))
    first = decode_job_id(json.dumps(raw))
    second, third = sorted(everyone - {first})
    client.hset(UNACKED_KEY, "tag-1", json.dumps([raw, "", "cpu-x"]))
    client.zadd(UNACKED_INDEX_KEY, {"tag-1": time.time()})
    assert reserved_job_ids(client, within_s=60) == {first}
    # `second` is running under a lease that went stale: its worker died; its message was consumed.
    client.lrem("cpu-x", 0, next(m for m in client.lrange("cpu-x", 0, -1) if decode_job_id(m) == second))
    join(sessions, "dead@x", second)
    with sessions.begin() as session:
        session.execute(update(Shard).where(Shard.job_id == second).values(lease_heartbeat_at=seconds_ago(300)))
        session.execute(update(Worker).values(heartbeat_at=seconds_ago(300)))
    with sessions.begin() as session:  # all sent long ago
        session.execute(update(Job).values(dispatched_at=datetime.now(timezone.utc) - timedelta(minutes=10)))
    result = reconcile(sessions, app, client, grace_s=30)
    assert (result.resent_queued, result.resent_stale) == ([], [second])
    assert ready_job_ids(client, ["cpu-x"]) == {second, third}


def test_cancel_stops_dispatch_and_a_running_worker(env):
    sessions, app, client = env
    sweep_id = submit_sweep(sessions, parse_sweep(SPEC), app=app).sweep_id
    with sessions() as session:
        job_id = session.scalar(select(Job.id).order_by(Job.id))
    lease = join(sessions, "w@x", job_id)
    with sessions() as session:
        shard_id = session.scalar(select(Shard.id).where(Shard.lease_token == lease.token))
    assert cancel(sessions, sweep_id=sweep_id) == 3
    with sessions.begin() as session:
        assert beat(session, lease=lease, shard_id=shard_id) == (True, False)  # its lease ended
        assert claim_next(session, lease=lease, job_id=job_id + 1, lease_timeout_s=60) is None
    client.delete("cpu-x")
    assert reconcile(sessions, app, client).checked == 0  # a cancelled sweep is never re-sent


def test_retry_failed_gives_fresh_attempts_and_sends_again(env):
    sessions, app, client = env
    sweep_id = submit_sweep(sessions, parse_sweep(SPEC), app=app).sweep_id
    client.delete("cpu-x")
    with sessions() as session:
        job_id = session.scalar(select(Job.id).order_by(Job.id))
    join(sessions, "w@x", job_id)
    with sessions.begin() as session:
        fail_job(session, job_id=job_id, error="boom")
    assert retry_failed(sessions, app=app, sweep_id=sweep_id) == 1
    with sessions() as session:
        job = session.get(Job, job_id)
        assert (job.status, job.attempts, job.last_error) == ("queued", 0, "boom")
        assert set(session.scalars(select(Run.status).where(Run.job_id == job_id))) == {"pending"}
    assert ready_job_ids(client, ["cpu-x"]) == {job_id}
    with sessions.begin() as session:
        assert requeue_failed(session, sweep_id=sweep_id) == []


def test_dispatch_is_sortable_by_job_id():
    assert sorted([Dispatch(3, "q"), Dispatch(1, "q")], key=lambda d: d.job_id)[0].job_id == 1


def test_the_scheduler_never_imports_the_gpu_stack():
    code = ("import sys, scheduler.cli, scheduler.dispatch, scheduler.cli.distributed, worker.contract.celery_app, "
            "worker.contract.broker\n"
            "print([m for m in ('torch', 'transformers', 'diffusers', 'codecarbon') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_submit_sends_the_longest_expected_job_first_and_records_its_estimate(env):
    sessions, app, client = env
    spec = parse_sweep({**SPEC, "tasks": {"fill-mask": {
        "models": ["tiny:bert", "hub:org/bert-large", "hub:org/bert-base"], "datasets": ["builtin:texts"]}}})
    submit_sweep(sessions, spec, app=app)
    with sessions() as session:
        jobs = {j.model: j for j in session.scalars(select(Job))}
    assert {j.estimate_source for j in jobs.values()} == {"prior"}  # a fresh database: no measurement yet
    assert jobs["hub:org/bert-large"].expected_s > jobs["hub:org/bert-base"].expected_s > jobs["tiny:bert"].expected_s
    sent = [decode_job_id(raw) for raw in reversed(client.lrange("cpu-x", 0, -1))]  # the first out is last in
    assert sent == [jobs[m].id for m in ("hub:org/bert-large", "hub:org/bert-base", "tiny:bert")]


class CommandLog:
    """A Redis client that records which commands reconcile sends (pipelined ones included)."""

    def __init__(self, client) -> None:
        self.client, self.commands = client, []

    def __getattr__(self, name):
        attribute = getattr(self.client, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            self.commands.append(name)
            result = attribute(*args, **kwargs)
            return CommandLog(result) if name == "pipeline" else result
        if name == "pipeline":
            def pipeline(*args, **kwargs):
                logged = CommandLog(attribute(*args, **kwargs))
                logged.commands = self.commands
                return logged
            return pipeline
        return call


def sent_long_ago(sessions) -> None:
    with sessions.begin() as session:
        session.execute(update(Job).values(dispatched_at=datetime.now(timezone.utc) - timedelta(minutes=10)))


def test_reconcile_compares_counts_and_reads_no_message_while_they_agree(env):
    """Issue 11, defect 8: a pass over a full queue with nothing lost reads lengths, not messages."""
    sessions, app, client = env
    submit_sweep(sessions, parse_sweep(SPEC), app=app)
    sent_long_ago(sessions)
    logged = CommandLog(client)
    result = reconcile_once(sessions, app=app, redis=logged, lease_timeout_s=60, grace_s=30)
    assert (result.checked, result.resent, result.scanned) == (3, 0, [])
    assert "lrange" not in logged.commands and "llen" in logged.commands
    # One message lost while another job has a second copy: the counts agree and nothing is read...
    messages = client.lrange("cpu-x", 0, -1)
    first, lost = decode_job_id(messages[-1]), decode_job_id(messages[0])
    client.lrem("cpu-x", 1, messages[0])
    client.lpush("cpu-x", messages[-1])
    logged.commands.clear()
    assert reconcile_once(sessions, app=app, redis=logged, lease_timeout_s=60, grace_s=30).resent == 0
    assert "lrange" not in logged.commands
    # ... until the extra copy is consumed (a worker took it: its job needs no message): then the lost job is sent.
    client.rpop("cpu-x")
    result = reconcile_once(sessions, app=app, redis=logged, lease_timeout_s=60, grace_s=30)
    assert (result.resent_queued, result.scanned) == ([lost], ["cpu-x"])
    assert sorted(decode_job_id(m) for m in client.lrange("cpu-x", 0, -1)) == sorted({first, lost} | (
        {decode_job_id(m) for m in messages} - {first, lost}))
    assert reconcile(sessions, app, client, grace_s=30).resent == 0


def test_reconcile_scans_a_queue_shorter_than_its_candidates_and_counts_fresh_reservations(env):
    sessions, app, client = env
    submit_sweep(sessions, parse_sweep(SPEC), app=app)
    sent_long_ago(sessions)
    raw = json.loads(client.rpop("cpu-x"))  # reserved by a worker just now: one message short, nothing lost
    client.hset(UNACKED_KEY, "tag-1", json.dumps([raw, "", "cpu-x"]))
    client.zadd(UNACKED_INDEX_KEY, {"tag-1": time.time()})
    logged = CommandLog(client)
    result = reconcile_once(sessions, app=app, redis=logged, lease_timeout_s=60, grace_s=30)
    assert (result.resent, result.scanned) == (0, []) and "lrange" not in logged.commands
    client.delete("cpu-x")  # Redis lost the rest
    result = reconcile_once(sessions, app=app, redis=logged, lease_timeout_s=60, grace_s=30)
    assert len(result.resent_queued) == 2 and result.scanned == ["cpu-x"]
    assert decode_job_id(json.dumps(raw)) not in result.resent_queued


def test_reconcile_fails_a_unit_whose_worker_died_on_every_attempt(env):
    """Issue 11, defect 2, through reconcile itself: its failures are committed (they were rolled back)."""
    sessions, app, client = env
    submit_sweep(sessions, parse_sweep({**SPEC, "defaults": {"queries": 2, "repetitions": 1}}), app=app,
                 max_attempts=1)
    with sessions() as session:
        job_id = session.scalar(select(Job.id).order_by(Job.id))
    join(sessions, "dead@x", job_id)  # its only attempt; the worker dies
    with sessions.begin() as session:
        session.execute(update(Shard).where(Shard.job_id == job_id).values(lease_heartbeat_at=seconds_ago(300)))
        session.execute(update(Worker).values(heartbeat_at=seconds_ago(300)))
    reconcile(sessions, app, client)
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job.status == "failed" and "worker died 1 times" in job.last_error
        assert set(session.scalars(select(Run.status).where(Run.job_id == job_id))) == {"failed"}


def test_a_job_needing_four_gpus_goes_to_its_class_s_four_gpu_queue_at_submit_reconcile_and_retry(env):
    """Issue 21: jobs.gpus picks the queue (worker.contract.celery_app.job_queue): `cpu-x-x4` for 4 GPUs."""
    sessions, app, client = env
    spec = parse_sweep(SPEC | {"model_gpus": {"hub:org/a": 4}})
    done = submit_sweep(sessions, spec, app=app)
    sweep_id = done.sweep_id
    assert done.queues == {"cpu-x": 2, "cpu-x-x4": 1}
    with sessions() as session:
        gpus = dict(session.execute(select(Job.model, Job.gpus)).all())
        four = set(session.scalars(select(Job.id).where(Job.gpus == 4)))
    assert gpus == {"tiny:bert": 1, "hub:org/a": 4, "hub:org/b": 1}
    assert ready_job_ids(client, ["cpu-x-x4"]) == four and len(ready_job_ids(client, ["cpu-x"])) == 2
    client.delete("cpu-x-x4")  # the 4-GPU queue's message is lost; the one-GPU queue's are not
    result = reconcile(sessions, app, client)
    assert result.resent_queued == sorted(four) and result.scanned == ["cpu-x-x4"]
    assert ready_job_ids(client, ["cpu-x-x4"]) == four
    client.delete("cpu-x-x4")
    with sessions.begin() as session:
        fail_job(session, job_id=min(four), error="boom")
    assert retry_failed(sessions, app=app, sweep_id=sweep_id) == 1
    assert ready_job_ids(client, ["cpu-x-x4"]) == four
