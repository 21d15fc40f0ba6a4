"""Test 4: Redis flushed mid-sweep (a restart without persistence): `reconcile` restores the queue from
Postgres and the sweep completes with nothing lost and nothing run twice."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from db.models import Job, Run
from tests.distributed.conftest import sweep_yaml


def test_flushdb_mid_sweep_then_reconcile_completes_it(cluster, tiny_bert_dir):
    models = cluster.model_copies(tiny_bert_dir, 8)
    worker = cluster.start_worker("lone")
    worker.wait_ready()
    sweep_id = cluster.submit(sweep_yaml("flushed", models, queries=100, repetitions=2))

    def count(status: str) -> int:
        return cluster.job_statuses().get(status, 0)

    cluster.wait_for(lambda: count("done") >= 2, "two jobs done", logs=[worker])
    cluster.flush_broker()  # every message still waiting is gone
    # The worker may already hold the next job's message (fetched just before the flush, not yet joined), or send one
    # after it (a hand-back): wait until nothing runs, nothing waits in Redis and the queued count stays put.
    seen = []

    def settled() -> bool:
        seen.append((count("running"), count("queued"), cluster.redis.llen(cluster.queue)))
        return len(seen) >= 10 and seen[-10:] == [(0, seen[-1][1], 0)] * 10  # 2 s

    cluster.wait_for(settled, "the worker to finish what it held", logs=[worker])
    stranded = count("queued")
    assert stranded > 0, "the sweep finished before the flush: nothing to restore"
    time.sleep(1.5)  # nothing can happen now: the database says queued, Redis holds nothing
    assert count("queued") == stranded

    result = cluster.wattsweep("reconcile")
    assert result.returncode == 0, result.stderr
    assert f"{stranded} lost job(s) and 0 stale lease(s) sent again" in result.stdout
    cluster.wait_for(cluster.finished, "the sweep to complete after reconcile", logs=[worker])

    with cluster.sessions() as session:
        assert dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all()) == {"done": 8}
        assert session.scalar(select(func.max(Job.attempts))) == 1
        assert session.scalar(select(func.count()).select_from(Run).where(Run.status == "done")) == 16
    cluster.assert_every_run_stored_once(sweep_id)
    again = cluster.wattsweep("reconcile")
    assert "0 lost job(s) and 0 stale lease(s)" in again.stdout
