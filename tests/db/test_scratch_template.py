"""The per-test databases are copies of one migrated once per test process (tests/scratch_db.py, conftest.py):
a copy must be exactly what migrating from scratch makes, or every test that uses one tests something else."""

from __future__ import annotations

import sqlite3
import subprocess

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from db.migrate import upgrade
from tests.conftest import POSTGRES_ADMIN_URL
from tests.scratch_db import scratch_database


def _dump(url: str) -> str:
    """Schema and rows (pg_dump), in a form that names no database."""
    parts = make_url(url)
    result = subprocess.run(["pg_dump", "--no-sync", "-h", parts.host, "-p", str(parts.port or 5432), "-U",
                             parts.username, parts.database], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.replace(parts.database, "DB").splitlines()
    return "\n".join(line for line in lines if not line.startswith(("\\restrict", "\\unrestrict")))  # random keys


def _database_acl(url: str) -> list[tuple[str, str, bool]]:
    """Who may connect to / create in the database (GRANT ... ON DATABASE), which pg_dump leaves out."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return sorted(connection.execute(text(
                "SELECT coalesce(r.rolname, 'PUBLIC'), a.privilege_type, a.is_grantable FROM pg_database d, "
                "aclexplode(d.datacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee "
                "WHERE d.datname = current_database()")).all())
    finally:
        engine.dispose()


def test_a_cloned_postgres_database_is_one_migrated_from_scratch():
    with scratch_database(POSTGRES_ADMIN_URL, "wattsweep_fresh") as fresh, \
            scratch_database(POSTGRES_ADMIN_URL, "wattsweep_clone", template=True) as clone:
        assert _database_acl(clone) == _database_acl(fresh)
        assert not any(grantee == "PUBLIC" for grantee, _, _ in _database_acl(fresh))  # 0013 revoked it
        fresh_dump = _dump(fresh)
        assert "CREATE TABLE" in fresh_dump and "alembic_version" in fresh_dump
        assert _dump(clone) == fresh_dump


def test_a_copied_sqlite_database_is_one_migrated_from_scratch(tmp_path, sqlite_url):
    fresh = tmp_path / "fresh.db"
    upgrade(f"sqlite:///{fresh}")
    copied = sqlite_url.removeprefix("sqlite:///")
    dumps = []
    for path in (fresh, copied):
        with sqlite3.connect(path) as connection:
            # Alembic's batch mode writes a rebuilt table's constraints and indexes in no fixed order (two
            # migrations from scratch differ there): statements, and the lines of each, are compared as sets.
            dumps.append(sorted(tuple(sorted(line.strip().rstrip(",").strip() for line in statement.splitlines()))
                                for statement in connection.iterdump()))
            assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        connection.close()
    assert any("CREATE TABLE" in line for statement in dumps[0] for line in statement)
    assert dumps[1] == dumps[0]
