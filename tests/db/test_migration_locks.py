"""Finding 2 of issue 23: a reader left a transaction open after reading a table; the next migration's ALTER
waited 43 s for it, and every worker's statement on that table queued behind the ALTER until its own lock
timeout. Now a migration waits a short while for each lock (WATTSWEEP_MIGRATION_LOCK_TIMEOUT_S), rolls back and
tries again, so the workers' statements go through in between."""

from __future__ import annotations

import threading
import time

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from db.migrate import MigrationLocked, alembic_config, upgrade
from db.settings import get_settings


@pytest.fixture
def short_lock_waits(monkeypatch):
    monkeypatch.setenv("WATTSWEEP_MIGRATION_LOCK_TIMEOUT_S", "0.5")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_a_migration_behind_a_readers_open_transaction_retries_and_workers_go_through(postgres_url,
                                                                                       short_lock_waits):
    command.downgrade(alembic_config(postgres_url), "0019")  # 0020 alters `workers`
    reader = create_engine(make_url(postgres_url).set(username="wattsweep_reader"), poolclass=NullPool)
    app = create_engine(make_url(postgres_url).set(username="wattsweep_app"), poolclass=NullPool)
    done = threading.Event()
    with reader.connect() as stale:
        stale.execute(text("SET idle_in_transaction_session_timeout = 0"))
        stale.execute(text("SELECT count(*) FROM workers"))  # holds its lock until the transaction ends
        migration = threading.Thread(target=lambda: (upgrade(postgres_url), done.set()), daemon=True)
        migration.start()
        time.sleep(0.2)
        waits = []
        for _ in range(3):  # a worker's statements on the table: each waits at most about one lock timeout
            started = time.monotonic()
            with app.begin() as connection:
                connection.execute(text("SELECT pg_advisory_xact_lock(1)"))
                connection.execute(text("UPDATE workers SET heartbeat_at = now() WHERE id = 'nobody'"))
            waits.append(time.monotonic() - started)
        assert max(waits) < 3, waits
        assert not done.is_set()  # still waiting for the reader, and trying again
        stale.rollback()
    migration.join(60)
    assert done.is_set()
    with app.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() >= "0022"
    reader.dispose()
    app.dispose()


def test_a_migration_that_never_gets_its_lock_says_where_to_look(postgres_url, short_lock_waits, monkeypatch):
    monkeypatch.setenv("WATTSWEEP_MIGRATION_ATTEMPTS", "2")
    get_settings.cache_clear()
    command.downgrade(alembic_config(postgres_url), "0019")
    reader = create_engine(make_url(postgres_url).set(username="wattsweep_reader"), poolclass=NullPool)
    with reader.connect() as stale:
        stale.execute(text("SELECT count(*) FROM workers"))
        with pytest.raises(MigrationLocked, match="pg_stat_activity"):
            upgrade(postgres_url)
    reader.dispose()
