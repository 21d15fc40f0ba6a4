"""A throw-away, migrated Postgres database: for tests and benchmarks, which must not touch real data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from db.migrate import upgrade
from db.session import get_engine


@contextmanager
def scratch_database(admin_url: str, prefix: str = "wattsweep_scratch") -> Iterator[str]:
    """Create a database next to `admin_url`'s, migrate it, yield its URL, and drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    # No pool: a test may restart the server in between, and the DROP must not reuse a connection it cut.
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        get_engine(url).dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
