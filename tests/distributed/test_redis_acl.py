"""Compose's Redis users (deploy/redis-users.acl, started by deploy/redis-start.sh) on a private redis-server:
a real worker drains a sweep as user `wattsweep`, which cannot FLUSHALL, CONFIG or SHUTDOWN; Flower's user
cannot touch the queues; nobody gets in without a user; Celery remote control is off."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.distributed.conftest import Cluster, sweep_yaml
from tests.services import free_port

ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {"REDIS_PASSWORD": "workerpw7", "REDIS_FLOWER_PASSWORD": "flowerpw8"}
FORBIDDEN = [("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "*"), ("CONFIG", "SET", "appendonly", "no"),
             ("SHUTDOWN", "NOSAVE"), ("KEYS", "*"), ("DEBUG", "SLEEP", "0"), ("ACL", "LIST"), ("MONITOR",),
             ("EVAL", "return redis.call('FLUSHALL')", "0"), ("MODULE", "LIST"), ("REPLICAOF", "NO", "ONE"),
             ("SCRIPT", "FLUSH"), ("FUNCTION", "FLUSH")]


@pytest.fixture
def acl_redis(tmp_path):
    port = free_port()
    env = os.environ | PASSWORDS | {"REDIS_ACL_TEMPLATE": str(ROOT / "deploy" / "redis-users.acl"),
                                    "REDIS_ACL_FILE": str(tmp_path / "users.acl")}
    log = open(tmp_path / "redis.log", "wb")
    process = subprocess.Popen(["sh", str(ROOT / "deploy" / "redis-start.sh"), "--port", str(port), "--bind",
                                "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                               env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            redis.Redis(port=port, username="wattsweep", password=PASSWORDS["REDIS_PASSWORD"]).ping()
            break
        except redis.ConnectionError:
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "redis.log").read_text()
            time.sleep(0.1)
    yield port
    process.terminate()  # the redis-server itself: redis-start.sh exec'd it
    process.wait(15)
    log.close()


def client(port: int, user: str | None, password: str | None = None) -> redis.Redis:
    return redis.Redis(port=port, username=user, password=password, socket_timeout=5)


def test_no_anonymous_access_and_the_start_script_wants_passwords(acl_redis, tmp_path):
    with pytest.raises(redis.AuthenticationError):
        client(acl_redis, None).ping()
    with pytest.raises(redis.AuthenticationError):
        client(acl_redis, "default", "").ping()
    result = subprocess.run(["sh", str(ROOT / "deploy" / "redis-start.sh")], env=os.environ | {"REDIS_PASSWORD": ""},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "set REDIS_PASSWORD" in result.stderr


@pytest.mark.parametrize("user", ["wattsweep", "flower"])
def test_nobody_can_flush_reconfigure_or_stop_redis(acl_redis, user):
    password = PASSWORDS["REDIS_PASSWORD" if user == "wattsweep" else "REDIS_FLOWER_PASSWORD"]
    connection = client(acl_redis, user, password)
    connection.ping()
    for command in FORBIDDEN:
        with pytest.raises(redis.exceptions.ResponseError) as refused:
            connection.execute_command(*command)
        reasons = ("no permissions", "can't run this command", "DEBUG command not allowed")
        assert any(reason in str(refused.value) for reason in reasons), (command, refused.value)
    assert connection.ping()  # still up


def test_flower_reads_but_cannot_touch_the_queues(acl_redis):
    worker = client(acl_redis, "wattsweep", PASSWORDS["REDIS_PASSWORD"])
    worker.lpush("a100", "job message")
    flower = client(acl_redis, "flower", PASSWORDS["REDIS_FLOWER_PASSWORD"])
    assert flower.llen("a100") == 1 and flower.lrange("a100", 0, -1) == [b"job message"]
    flower.sadd("_kombu.binding.celeryev", "flower's event queue")  # what its event receiver declares
    flower.publish("/0.celeryev/worker.process.heartbeat", "x")
    for command in (("LPUSH", "a100", "forged"), ("DEL", "a100"), ("RPOP", "a100"), ("HDEL", "unacked", "t")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            flower.execute_command(*command)
    assert worker.llen("a100") == 1


def test_a_worker_drains_a_sweep_as_the_wattsweep_user_with_remote_control_off(acl_redis, postgres_url, tmp_path,
                                                                               tiny_bert_dir):
    broker_url = f"redis://wattsweep:{PASSWORDS['REDIS_PASSWORD']}@127.0.0.1:{acl_redis}/0"
    cluster = Cluster(postgres_url, broker_url, tmp_path)
    try:
        worker = cluster.start_worker("acl")
        worker.wait_ready()
        sweep_id = cluster.submit(sweep_yaml("acl", cluster.model_copies(tiny_bert_dir, 2)))
        cluster.wait_for(cluster.finished, "the sweep to finish", logs=[worker])
        assert cluster.job_statuses() == {"done": 2}
        cluster.assert_every_run_stored_once(sweep_id)
        assert "NOPERM" not in worker.log() and "NoPermissionError" not in worker.log()
        reconcile = cluster.wattsweep("reconcile")
        assert reconcile.returncode == 0, reconcile.stderr
        # No pidbox: nothing to shut workers down with, whoever holds a broker password.
        admin = client(acl_redis, "wattsweep", PASSWORDS["REDIS_PASSWORD"])
        assert not admin.exists("_kombu.binding.celery.pidbox")
        from worker.contract.celery_app import make_app

        assert make_app(broker_url).control.ping(timeout=1.0) == []
    finally:
        cluster.close()
