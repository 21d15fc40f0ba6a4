"""Shared fixtures: real SQLite files and a fresh real Postgres database per test."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text

from db.migrate import upgrade
from db.session import session_factory

# A short idle baseline keeps tests quick; the 20 s default is for real measurements.
os.environ.setdefault("WATTSWEEP_BASELINE_WINDOW_S", "1")

POSTGRES_ADMIN_URL = os.environ.get("WATTSWEEP_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'wattsweep.db'}"
    upgrade(url)
    return url


@pytest.fixture
def postgres_url():
    """A new, migrated Postgres database, dropped after the test."""
    name = f"wattsweep_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url
    from db.session import get_engine

    get_engine(url).dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request) -> str:
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def sessions(database_url):
    return session_factory(database_url)
