"""The private-server helpers themselves: they start, keep committed data across a crash, and stop by pid."""

from __future__ import annotations

import os

import psycopg
import pytest
import redis

from tests.scratch_db import scratch_database
from tests.services import PrivatePostgres, PrivateRedis

pytestmark = pytest.mark.multihost


def test_private_postgres_survives_a_crash_and_stops_by_pid():
    with PrivatePostgres() as pg:
        assert pg.port != 5432
        with scratch_database(pg.admin_url) as url:  # migrations run against it
            database = url.rsplit("/", 1)[1]
            with psycopg.connect(host=pg.host, port=pg.port, user="postgres", dbname=database) as connection:
                assert connection.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
        with psycopg.connect(host=pg.host, port=pg.port, user="postgres", dbname="postgres") as connection:
            connection.execute("CREATE TABLE kept (x int)")
            connection.execute("INSERT INTO kept VALUES (7)")
        pid = pg.pid
        pg.kill()  # a crash: the next start runs crash recovery
        assert not pg.running()
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        pg.start()
        assert pg.pid != pid
        with psycopg.connect(host=pg.host, port=pg.port, user="postgres", dbname="postgres") as connection:
            assert connection.execute("SELECT x FROM kept").fetchall() == [(7,)]
    assert not pg.running() and not pg.folder.exists()


def test_private_redis_restart_loses_queues_without_appendonly():
    with PrivateRedis() as broker:
        client = redis.Redis.from_url(broker.url(3))
        client.rpush("queue", "job-1")
        broker.restart()
        assert client.llen("queue") == 0
        client.close()
    with PrivateRedis(appendonly=True) as broker:
        client = redis.Redis.from_url(broker.url())
        client.rpush("queue", "job-1")
        broker.restart()
        assert client.lrange("queue", 0, -1) == [b"job-1"]
        client.close()
    assert not broker.running()
