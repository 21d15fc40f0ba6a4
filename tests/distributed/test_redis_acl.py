"""Compose's Redis users (deploy/redis-users.acl, started by deploy/redis-start.sh) on a private redis-server, each
tried as the user that tried it in issue 23: the scheduler (`wattsweep`), a worker of one hardware class
(`worker-<class>`) and Flower. Workers drain a sweep, are killed mid-job and their message comes back, all under
these users and Postgres's node roles; nobody flushes, reconfigures or stops Redis, a worker touches no other
class's queue and runs no script of its own, Flower reads lengths and events only, and a full Redis refuses
writes instead of dropping messages."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from db.models import Job, Run
from db.nodes import create_node_role, node_role
from tests.distributed.conftest import Cluster, sweep_yaml
from tests.services import free_port

ROOT = Path(__file__).resolve().parents[2]
CLASS, OTHER = "cpu-acl", "h100"
PASSWORDS = {"REDIS_PASSWORD": "workerpw7", "REDIS_FLOWER_PASSWORD": "flowerpw8"}
WORKER_PASSWORDS = {CLASS: "classpw9", OTHER: "otherpw10"}
ADMIN = ("testadmin", "adminpw11")  # the test's own user, added to its copy of the template; compose has none
SEP = "\x06\x16"
FORBIDDEN = [("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "*"), ("CONFIG", "SET", "appendonly", "no"),
             ("SHUTDOWN", "NOSAVE"), ("KEYS", "*"), ("DEBUG", "SLEEP", "0"), ("ACL", "LIST"), ("MONITOR",),
             ("EVAL", "return redis.call('FLUSHALL')", "0"), ("MODULE", "LIST"), ("REPLICAOF", "NO", "ONE"),
             ("SCRIPT", "FLUSH"), ("FUNCTION", "FLUSH"), ("SCAN", "0"), ("SELECT", "5"), ("SETRANGE", "big", "0", "x"),
             ("EVAL", "local c = redis.call('SCAN', '0') for _, k in ipairs(c[2]) do redis.call('UNLINK', k) end",
              "0")]


def start_redis(tmp_path: Path, *arguments: str, env: dict | None = None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    template = tmp_path / "users.acl.template"
    template.write_text((ROOT / "deploy" / "redis-users.acl").read_text()
                        + f"user {ADMIN[0]} on >{ADMIN[1]} ~* &* +@all\n")
    workers = " ".join(f"{c}:{p}" for c, p in WORKER_PASSWORDS.items())
    env = os.environ | PASSWORDS | {"REDIS_ACL_TEMPLATE": str(template), "REDIS_ACL_FILE": str(tmp_path / "users.acl"),
                                    "REDIS_WORKERS": workers} | (env or {})
    log = open(tmp_path / "redis.log", "wb")
    process = subprocess.Popen(["sh", str(ROOT / "deploy" / "redis-start.sh"), "--port", str(port), "--bind",
                                "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path), *arguments],
                               env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            redis.Redis(port=port, username=ADMIN[0], password=ADMIN[1]).ping()
            return process, port
        except redis.ConnectionError:
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "redis.log").read_text()
            time.sleep(0.1)


@pytest.fixture
def acl_redis(tmp_path):
    process, port = start_redis(tmp_path)
    yield port
    process.terminate()  # the redis-server itself: redis-start.sh exec'd it
    process.wait(15)


def client(port: int, user: str | None, password: str | None = None) -> redis.Redis:
    return redis.Redis(port=port, username=user, password=password, socket_timeout=5)


def as_user(port: int, user: str) -> redis.Redis:
    if user.startswith("worker-"):
        return client(port, user, WORKER_PASSWORDS[user.removeprefix("worker-")])
    return client(port, user, PASSWORDS["REDIS_PASSWORD" if user == "wattsweep" else "REDIS_FLOWER_PASSWORD"])


def test_no_anonymous_access_and_the_start_script_wants_passwords(acl_redis, tmp_path):
    with pytest.raises(redis.AuthenticationError):
        client(acl_redis, None).ping()
    with pytest.raises(redis.AuthenticationError):
        client(acl_redis, "default", "").ping()
    for variable, value, message in [("REDIS_PASSWORD", "", "set REDIS_PASSWORD"),
                                     ("REDIS_WORKERS", "", "set REDIS_WORKERS"),
                                     ("REDIS_WORKERS", "a100", "has no ':password'"),
                                     ("REDIS_WORKERS", "a*:pw1", "class 'a*'"),
                                     ("REDIS_WORKERS", "a100:pw-1", "letters and digits only"),
                                     ("REDIS_PASSWORD_FILE", str(tmp_path / "missing"), "cannot be read")]:
        env = os.environ | PASSWORDS | {"REDIS_WORKERS": "a100:pw1", "REDIS_ACL_FILE": str(tmp_path / "x.acl"),
                                        "REDIS_ACL_TEMPLATE": str(ROOT / "deploy" / "redis-users.acl"),
                                        variable: value}
        result = subprocess.run(["sh", str(ROOT / "deploy" / "redis-start.sh")], env=env, capture_output=True,
                                text=True, timeout=30)
        assert result.returncode == 2 and message in result.stderr, (variable, value, result.stderr)


def test_passwords_come_from_files(tmp_path):
    (tmp_path / "scheduler").write_text("filepw1\n")
    (tmp_path / "workers").write_text(f"{CLASS}:filepw2\n{OTHER}:filepw3\n")
    process, port = start_redis(tmp_path, env={"REDIS_PASSWORD": "", "REDIS_PASSWORD_FILE": str(tmp_path / "scheduler"),
                                               "REDIS_WORKERS_FILE": str(tmp_path / "workers")})
    try:
        assert client(port, "wattsweep", "filepw1").ping() and client(port, f"worker-{OTHER}", "filepw3").ping()
    finally:
        process.terminate()
        process.wait(15)


@pytest.mark.parametrize("user", ["wattsweep", "flower", f"worker-{CLASS}"])
def test_nobody_can_flush_reconfigure_scan_or_stop_redis(acl_redis, user):
    connection = as_user(acl_redis, user)
    connection.ping()
    for command in FORBIDDEN:
        with pytest.raises(redis.exceptions.ResponseError) as refused:
            connection.execute_command(*command)
        reasons = ("no permissions", "DEBUG command not allowed")  # DEBUG is off before any ACL is asked
        assert any(reason in str(refused.value) for reason in reasons), (command, refused.value)
    assert connection.ping()  # still up


# Finding 5: the worker user could wipe, rename, read and fill every queue, in any database, and publish anywhere.
def test_a_worker_reaches_its_own_class_only(acl_redis):
    scheduler, worker = as_user(acl_redis, "wattsweep"), as_user(acl_redis, f"worker-{CLASS}")
    scheduler.lpush(OTHER, "their job")
    scheduler.lpush(CLASS, "my job")
    for command in [("DEL", OTHER), ("UNLINK", OTHER), ("RENAME", OTHER, "gone"), ("LRANGE", OTHER, "0", "-1"),
                    ("LPUSH", OTHER, "forged"), ("RPOP", OTHER), ("BRPOP", OTHER, "1"), ("LLEN", OTHER),
                    ("DEL", CLASS), ("RENAME", CLASS, "x"), ("LRANGE", CLASS, "0", "-1"), ("DEL", "unacked"),
                    ("HGETALL", "unacked"), ("SADD", f"_kombu.binding.{OTHER}", "x"), ("SET", "anything", "x"),
                    ("PUBLISH", "/0.celery.pidbox", "x"), ("PUBLISH", "/5.celeryev/worker.heartbeat", "x"),
                    ("LPUSH", f"{OTHER}{SEP}9", "forged"), ("LPUSH", f"{CLASS}x", "forged"),
                    ("EVAL", "return 1", "0")]:
        with pytest.raises(redis.exceptions.NoPermissionError):
            worker.execute_command(*command)
    # A script loaded by the worker runs with the worker's permissions: no way round the keys.
    sha = worker.script_load("return redis.call('UNLINK', KEYS[1])")
    for key in (OTHER, "unacked_mutex"):
        with pytest.raises(redis.exceptions.ResponseError, match="can't run this command|no permissions to access"):
            worker.evalsha(sha, 1, key)
    assert worker.brpop([CLASS, f"{CLASS}{SEP}3"], 1) == (CLASS.encode(), b"my job")
    assert worker.llen(CLASS) == 0 and worker.publish("/0.celeryev/worker.heartbeat", "x") == 0
    assert scheduler.lrange(OTHER, 0, -1) == [b"their job"]


def test_the_scheduler_appends_and_reads_but_deletes_no_queue(acl_redis):
    scheduler = as_user(acl_redis, "wattsweep")
    scheduler.lpush(OTHER, "job")
    assert scheduler.lrange(OTHER, 0, -1) == [b"job"] and scheduler.llen(OTHER) == 1
    for command in [("DEL", OTHER), ("RPOP", OTHER), ("BRPOP", OTHER, "1"), ("RENAME", OTHER, "x"),
                    ("HDEL", "unacked", "t"), ("PUBLISH", "/0.celeryev/x", "y")]:
        with pytest.raises(redis.exceptions.NoPermissionError):
            scheduler.execute_command(*command)


# Finding 7: Flower's user could read every queue and write kombu's bindings and pidbox replies.
def test_flower_reads_lengths_and_events_only(acl_redis):
    as_user(acl_redis, "wattsweep").lpush(CLASS, "job message")
    flower = as_user(acl_redis, "flower")
    assert flower.llen(CLASS) == 1
    flower.sadd("_kombu.binding.celeryev", "flower's event queue")  # what its event receiver declares
    flower.zadd("_kombu.binding_deadlines", {"celeryev": 1})  # and refreshes (kombu's binding scripts)
    flower.publish("/0.celery.pidbox", "wake up")  # its wakeup call: nobody listens (remote control is off)
    listener = flower.pubsub()
    listener.psubscribe("/0.celeryev/*")
    listener.close()
    for command in (("LRANGE", CLASS, "0", "-1"), ("LPUSH", CLASS, "forged"), ("DEL", CLASS), ("RPOP", CLASS),
                    ("HDEL", "unacked", "t"), ("HGETALL", "unacked"), ("SADD", f"_kombu.binding.{CLASS}", "x"),
                    ("DEL", f"_kombu.binding.{CLASS}"), ("LPUSH", "x.reply.celery.pidbox", "x"),
                    ("SADD", "_kombu.binding.reply.celery.pidbox", "x"), ("DEL", "unacked"),
                    ("PUBLISH", "/0.celeryev/worker.heartbeat", "x"), ("SET", "x", "y")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            flower.execute_command(*command)


# Finding 6: no memory cap. Compose's arguments, with a small cap: a full Redis refuses writes, drops nothing.
def test_a_full_redis_refuses_writes_and_keeps_every_message(tmp_path):
    process, port = start_redis(tmp_path, "--maxmemory", "3mb", "--maxmemory-policy", "noeviction")
    try:
        scheduler = as_user(port, "wattsweep")
        message = "x" * 1000
        sent = 0
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            while sent < 100_000:
                scheduler.lpush(CLASS, message)
                sent += 1
        assert scheduler.llen(CLASS) == sent > 100
    finally:
        process.terminate()
        process.wait(15)


def node_url(postgres_url: str, role: str) -> str:
    return make_url(postgres_url).set(username=role, password=None).render_as_string(hide_password=False)


@pytest.fixture
def node_database(postgres_url):
    """A node login role (db add-node's), dropped after; the scheduler's URL as wattsweep_app."""
    role = node_role(f"acl{uuid.uuid4().hex[:8]}")
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        create_node_role(connection, role)
    yield node_url(postgres_url, role.role), node_url(postgres_url, "wattsweep_app")
    with admin.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :role"),
                           {"role": role.role})
        connection.execute(text(f'REVOKE CONNECT ON DATABASE "{make_url(postgres_url).database}" FROM "{role.role}"'))
        connection.execute(text(f'DROP ROLE "{role.role}"'))
    admin.dispose()


def test_kombus_whole_worker_cycle_under_the_reduced_users_and_roles(acl_redis, postgres_url, node_database,
                                                                      tmp_path, tiny_bert_dir):
    """Consume, ack, a worker killed mid-job whose reserved message comes back (kombu's restore, under
    `unacked_mutex`), and reconcile: workers as worker-<class> and a node role, the scheduler as wattsweep and
    wattsweep_app. Nothing is lost or stored twice, and no permission is refused on the way."""
    node_db, scheduler_db = node_database
    broker = f"redis://127.0.0.1:{acl_redis}/0"
    cluster = Cluster(postgres_url, broker, tmp_path)  # its own sessions (for the checks) are the superuser's
    cluster.queue = CLASS
    scheduler_env = cluster.env | {"WATTSWEEP_DATABASE_URL": scheduler_db,
                                   "WATTSWEEP_BROKER_URL": f"redis://wattsweep:{PASSWORDS['REDIS_PASSWORD']}@"
                                                           f"127.0.0.1:{acl_redis}/0"}
    worker_env = cluster.env | {"WATTSWEEP_DATABASE_URL": node_db, "WATTSWEEP_VISIBILITY_TIMEOUT_S": "3",
                                "WATTSWEEP_BROKER_URL": f"redis://worker-{CLASS}:{WORKER_PASSWORDS[CLASS]}@"
                                                        f"127.0.0.1:{acl_redis}/0"}
    try:
        cluster.env = worker_env
        first = cluster.start_worker("acl1")
        first.wait_ready()
        cluster.env = scheduler_env
        sweep_id = cluster.submit(sweep_yaml("acl", [f"path:{tiny_bert_dir}"], queries=800, repetitions=3))

        def runs_done() -> int:
            with cluster.sessions() as session:
                return session.scalar(select(func.count()).select_from(Run).where(Run.status == "done"))

        cluster.wait_for(lambda: runs_done() >= 1, "the first run", logs=[first])
        first.signal(signal.SIGKILL)  # its message stays reserved in `unacked`
        first.wait(10)
        admin = client(acl_redis, *ADMIN)
        assert admin.hlen("unacked") == 1
        time.sleep(3.5)  # past the visibility timeout: the next worker's start restores the message
        cluster.env = worker_env
        second = cluster.start_worker("acl2")
        second.wait_ready()
        cluster.env = scheduler_env
        reconciler, _ = cluster.spawn("reconcile", "--watch", "--interval", "1", log_name="reconcile")
        cluster.wait_for(cluster.finished, "the sweep to finish", logs=[second])
        with cluster.sessions() as session:
            job = session.scalars(select(Job).where(Job.sweep_id == sweep_id)).one()
        assert job.status == "done"
        cluster.assert_every_run_stored_once(sweep_id)
        for log in (first.log(), second.log(), (tmp_path / "reconcile.log").read_text()):
            assert "NOPERM" not in log and "NoPermissionError" not in log and "permission denied" not in log, log
        # Redelivered by kombu itself (same message id), not sent again by reconcile (a new id), and acked.
        received = re.compile(r"run_job\[([0-9a-f-]+)\] received")
        assert received.findall(first.log()) == received.findall(second.log())[:1]
        assert admin.hlen("unacked") == 0
        assert reconciler.poll() is None
        from worker.contract.celery_app import make_app

        # No remote control: workers answer none (worker/contract/celery_app.py), and no user may even ask.
        for env in (scheduler_env, worker_env):
            with pytest.raises(redis.exceptions.NoPermissionError):
                make_app(env["WATTSWEEP_BROKER_URL"]).control.ping(timeout=1.0)
    finally:
        cluster.close()
