"""A throw-away, migrated Postgres database: for tests and benchmarks, which must not touch real data.

Migrating from scratch takes 1-2 s on a busy 2-core machine and over a hundred tests each want a fresh database, so
`scratch_database(..., template=True)` migrates once per process into a template database and clones it with
CREATE DATABASE ... TEMPLATE (a file copy, about 0.1 s). A clone has every table, row, grant and sequence of a
freshly migrated database; what CREATE DATABASE does not copy (the database's own access list, which the role
migrations set with GRANT/REVOKE ... ON DATABASE) is granted again. tests/db/test_scratch_template.py checks that
a clone and a database migrated from scratch are the same.
"""

from __future__ import annotations

import atexit
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

from db.migrate import upgrade
from db.session import get_engine

_templates: dict[str, str] = {}  # admin URL -> this process's migrated template database on that server
# Drops that need not hold up the next test (DROP DATABASE waits for the backends it ends: a second and more on a
# busy machine); one at a time, and all done before the process exits (the executor's threads are joined then).
_dropper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scratch-db-drop")


@contextmanager
def scratch_database(admin_url: str, prefix: str = "wattsweep_scratch", *, template: bool = False,
                     drop_later: bool = False) -> Iterator[str]:
    """Create a database next to `admin_url`'s, migrate it, yield its URL, and drop it afterwards.

    `template`: clone this process's migrated template (made on first use) instead of migrating; for a server that
    lives as long as the test session (a private server that a test kills or restarts migrates its own).
    `drop_later`: drop it in a background thread, so that the caller goes on at once (for the same server)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    # No pool: a test may restart the server in between, and the DROP must not reuse a connection it cut.
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    source = migrated_template(admin_url) if template else None
    with admin.connect() as connection:
        if source:
            connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{source}"'))
            copy_database_acl(connection, source, name)
        else:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = database_url(admin_url, name)
    try:
        if not source:
            upgrade(url)
        yield url
    finally:
        get_engine(url).dispose()
        if drop_later:
            _dropper.submit(_drop, admin_url, name)
        else:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def database_url(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def migrated_template(admin_url: str) -> str:
    """The name of this process's migrated template database on `admin_url`'s server: created, migrated and
    disconnected (a template must have no sessions) on first use, dropped when the process exits."""
    if admin_url in _templates:
        return _templates[admin_url]
    name = f"wattsweep_template_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = database_url(admin_url, name)
    try:
        upgrade(url)
    except BaseException:
        _drop(admin_url, name)
        raise
    finally:
        get_engine(url).dispose()
        admin.dispose()
    _templates[admin_url] = name
    atexit.register(_drop, admin_url, name)
    return name


def copy_database_acl(connection: Connection, source: str, target: str) -> None:
    """Give `target` the access list of `source` (GRANT/REVOKE ... ON DATABASE), which a TEMPLATE does not copy."""
    granted = connection.execute(text(
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, a.privilege_type, "
        "a.is_grantable FROM pg_database d, aclexplode(d.datacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee "
        "WHERE d.datname = :source"), {"source": source}).all()
    if not granted:
        return  # the default access list, which the new database has too
    connection.execute(text(f'REVOKE ALL ON DATABASE "{target}" FROM PUBLIC'))
    for grantee, privilege, grantable in granted:
        option = " WITH GRANT OPTION" if grantable and grantee != "PUBLIC" else ""
        connection.execute(text(f'GRANT {privilege} ON DATABASE "{target}" TO {grantee}{option}'))


def _drop(admin_url: str, name: str) -> None:
    """In the background or at exit: a failure is said, not raised (the server may be gone at exit)."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except Exception as error:
        print(f"scratch database {name} not dropped: {error}", file=sys.stderr)
    finally:
        admin.dispose()
