"""Test 3: the same job id sent twice at once runs once; messages that are not a known job id never run."""

from __future__ import annotations

import json
import uuid

from celery import Celery
from kombu import Connection, Exchange, Producer
from sqlalchemy import func, select

from db.models import Job, Measurement, Run
from db.queue.reconcile import Dispatch
from tests.distributed.conftest import sweep_yaml
from worker.contract.celery_app import RUN_JOB, make_app, send_job_ids


def send_raw(broker_url: str, queue: str, body: bytes, content_type: str) -> None:
    """A message in Celery's envelope whose body we choose (kombu would refuse to build some of these)."""
    with Connection(broker_url) as connection:
        Producer(connection.default_channel).publish(
            body, exchange=Exchange(""), routing_key=queue, content_type=content_type, content_encoding="utf-8",
            headers={"task": RUN_JOB, "id": str(uuid.uuid4()), "lang": "py", "argsrepr": "?", "kwargsrepr": "{}"},
        )


def test_same_job_twice_runs_once_and_bad_messages_never_run(cluster, tiny_bert_dir):
    sweep_id = cluster.submit(sweep_yaml("twice", [f"path:{tiny_bert_dir}"], queries=200, repetitions=2))
    with cluster.sessions() as session:
        job_id = session.scalar(select(Job.id).where(Job.sweep_id == sweep_id))
    app = make_app(cluster.broker_url)
    send_job_ids(app, [Dispatch(job_id, cluster.queue)])  # the duplicate, next to the original

    # Bad messages: a pickle (could run code), a body that is not JSON, a non-integer id, an unknown id.
    pickler = Celery(broker=cluster.broker_url, set_as_current=False)
    pickler.conf.update(task_serializer="pickle", accept_content=["pickle"])
    pickler.send_task(RUN_JOB, args=[job_id], queue=cluster.queue)
    send_raw(cluster.broker_url, cluster.queue, b"{not json", "application/json")
    send_raw(cluster.broker_url, cluster.queue, json.dumps([["7; DROP TABLE jobs"], {}, {}]).encode(),
             "application/json")
    send_job_ids(app, [Dispatch(job_id + 1000, cluster.queue)])
    assert cluster.redis.llen(cluster.queue) == 6

    workers = [cluster.start_worker("one"), cluster.start_worker("two")]  # both start on a full queue
    cluster.wait_for(lambda: cluster.finished() and cluster.redis.llen(cluster.queue) == 0,
                     "the job to finish and the queue to empty", logs=workers)

    with cluster.sessions() as session:
        job = session.get(Job, job_id)
        assert (job.status, job.attempts) == ("done", 1)
        assert session.scalar(select(func.count()).select_from(Measurement).where(Measurement.phase == "load")) == 1
        assert session.scalar(select(func.count(func.distinct(Run.worker_id))).where(Run.job_id == job_id)) == 1
    cluster.assert_every_run_stored_once(sweep_id)
    logs = "".join(w.log() for w in workers)
    assert f"job {job_id}: skipped" in logs  # the duplicate was dropped by the lease, not run
    assert "untrusted content" in logs.lower() or "refusing to deserialize" in logs.lower()
    assert "is not an integer; not executed" in logs
    assert f"no job {job_id + 1000} in the database; not executed" in logs
    assert "Can't decode message body" in logs
