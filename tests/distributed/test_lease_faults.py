"""Issue 11's lease defects on real workers: a worker whose clock runs slow keeps its live lease (defect 1), and
a database outage longer than the lease timeout loses no reading (defect 5).

Leases here are 4 s with a beat every 0.5 s (conftest.FAST). Each test would fail on per-process-clock leases:
the slow worker's stamps look 10 s old to everyone else, and after the outage every lease looks stale at once.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from db.migrate import upgrade
from db.models import Job, Run, Shard
from tests.distributed.conftest import REDIS_URL, Cluster, sweep_yaml

FAKE_CLOCK = Path(__file__).resolve().parent / "fakeclock"


def unit_attempts(cluster, sweep_id: int) -> list[int]:
    with cluster.sessions() as session:
        return list(session.scalars(select(Shard.attempts).join(Job).where(Job.sweep_id == sweep_id)))


def runs_done_by(cluster, sweep_id: int) -> dict[str, int]:
    with cluster.sessions() as session:
        return dict(session.execute(select(Run.worker_id, func.count()).join(Job).where(
            Job.sweep_id == sweep_id, Run.status == "done").group_by(Run.worker_id)).all())


def test_a_worker_whose_clock_runs_10_s_slow_keeps_its_live_lease(cluster, tiny_bert_dir):
    # The fake clock before the code under test (replacing PYTHONPATH ran the installed checkout's code instead).
    paths = [str(FAKE_CLOCK), *filter(None, [cluster.env.get("PYTHONPATH")])]
    slow_env = cluster.env | {"FAKE_CLOCK_OFFSET_S": "-10", "PYTHONPATH": os.pathsep.join(paths)}
    normal_env = cluster.env
    cluster.env = slow_env
    slow = cluster.start_worker("slow")
    cluster.env = normal_env
    slow.wait_ready()
    sweep_id = cluster.submit(sweep_yaml("clock", cluster.model_copies(tiny_bert_dir, 2), queries=600,
                                         repetitions=2))
    cluster.wait_for(lambda: runs_done_by(cluster, sweep_id).get(slow.name, 0) >= 1 or
                     max(unit_attempts(cluster, sweep_id)) >= 1, "the slow worker to start", logs=[slow])
    fast = cluster.start_worker("fast")  # judges staleness; on per-process clocks it took the slow one's units
    cluster.spawn("reconcile", "--watch", "--interval", "1", log_name="reconcile")
    cluster.wait_for(cluster.finished, "the sweep to finish", timeout_s=600, logs=[slow, fast])
    assert cluster.job_statuses() == {"done": 2}
    assert set(unit_attempts(cluster, sweep_id)) == {1}, "a live lease was taken over"
    assert "lease lost" not in slow.log()
    resent = re.findall(r"(\d+) stale lease\(s\) sent again", (cluster.folder / "reconcile.log").read_text())
    assert set(resent) <= {"0"}, "the reconciler saw a live lease as stale"
    cluster.assert_every_run_stored_once(sweep_id)


@pytest.fixture
def private_cluster(redis_db, tmp_path):
    """A cluster on a Postgres of its own, which the test may stop and start."""
    from tests.services import PrivatePostgres, ServiceError

    try:
        server = PrivatePostgres().start()
    except ServiceError as error:
        pytest.skip(f"no private Postgres: {error}")
    try:  # the server and its data go when the test ends: no database to drop (its pool would be stale anyway)
        admin = create_engine(server.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text('CREATE DATABASE "outage"'))
        admin.dispose()
        url = server.admin_url.rsplit("/", 1)[0] + "/outage"
        upgrade(url)
        cluster = Cluster(url, f"{REDIS_URL}/{redis_db}", tmp_path)
        try:
            yield cluster, server
        finally:
            cluster.close()
    finally:
        server.close()


def test_after_a_database_outage_longer_than_the_lease_the_holder_stores_its_unit(private_cluster, tiny_bert_dir):
    cluster, server = private_cluster
    holder, other = cluster.start_worker("holder"), cluster.start_worker("other")
    cluster.spawn("reconcile", "--watch", "--interval", "1", log_name="reconcile")
    for worker in (holder, other):
        worker.wait_ready()
    sweep_id = cluster.submit(sweep_yaml("outage", [f"path:{tiny_bert_dir}"], queries=1200, repetitions=2))

    def held() -> str | None:
        with cluster.sessions() as session:
            return session.scalar(select(Shard.lease_worker_id).join(Job).where(
                Job.sweep_id == sweep_id, Shard.status == "running"))

    cluster.wait_for(lambda: held() is not None, "a unit to be leased", logs=[holder, other])
    time.sleep(1.0)  # inside its unit
    name = held()
    server.stop()  # the database goes away for 2 lease periods
    time.sleep(8)
    server.start()
    cluster.wait_for(cluster.finished, "the sweep to finish after the outage", timeout_s=600, logs=[holder, other])
    assert set(unit_attempts(cluster, sweep_id)) == {1}, "a unit was taken over after the outage"
    logs = holder.log() + other.log()
    assert "lease lost" not in logs
    assert runs_done_by(cluster, sweep_id).get(name, 0) >= 1  # the reading held through the outage was stored
    assert "database reachable again" in logs
    cluster.assert_every_run_stored_once(sweep_id)
