"""Apply the committed Alembic revisions (`wattsweep db upgrade`)."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.exc import OperationalError

from db.session import DatabaseUnavailable, get_engine
from db.settings import get_settings, mask_url

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)


class MigrationLocked(DatabaseUnavailable):
    """Every attempt at a migration timed out waiting for a lock; the message says where to look."""


MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


LOCK_NOT_AVAILABLE = "55P03"  # Postgres: lock_timeout ran out


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Migrate to `revision`. On Postgres each lock is waited for `migration_lock_timeout_s` at most (env.py);
    a migration that times out rolls back whole and is tried again, `migration_attempts` times in all, with a
    growing pause in which the workers' statements go through (and the scheduler ends stale sessions)."""
    from alembic import command

    settings = get_settings()
    url = url or settings.database_url
    for attempt in range(1, settings.migration_attempts + 1):
        try:
            command.upgrade(alembic_config(url), revision)
            return
        except OperationalError as error:
            if getattr(error.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise DatabaseUnavailable(f"cannot reach the database at {mask_url(url)}: {error.orig}") from None
            if attempt == settings.migration_attempts:
                raise MigrationLocked(f"a migration waited {attempt} times for a lock held by another session "
                                      f"({str(error.orig).splitlines()[0]}); see `SELECT * FROM pg_stat_activity "
                                      "WHERE wait_event_type = 'Lock'` and try again") from None
            pause_s = min(0.5 * 2 ** (attempt - 1), 15.0)
            log.warning("migration waited too long for a lock (attempt %d): trying again in %.1f s", attempt, pause_s)
            time.sleep(pause_s)


# `revision = "0032"` and `down_revision = "0031"` (or None, or a tuple of merged revisions) as each revision file
# states them at the top level
_REVISION = re.compile(r"^revision(?::[^=]*)?\s*=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision(?::[^=]*)?\s*=\s*(.+)$", re.MULTILINE)


def committed_heads() -> set[str]:
    """The committed revisions no other revision follows, read from the revision files' text: alembic's
    ScriptDirectory imports every revision file (and the view SQL they build) to tell, about 0.3 s that every CLI
    command paid before it did anything (tests/db/test_migrate_heads.py checks that both agree)."""
    revisions, followed = set(), set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        source = path.read_text()
        revision = _REVISION.search(source)
        if revision is None:
            continue
        revisions.add(revision.group(1))
        down = _DOWN_REVISION.search(source)
        if down is not None:
            followed.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    return revisions - followed


def is_up_to_date(url: str | None = None) -> bool:
    """Whether the schema exists at the latest committed revision (cheap check used before running commands;
    alembic is imported only to migrate)."""
    try:
        with get_engine(url).connect() as connection:  # one connection for both questions
            if not inspect(connection).has_table("alembic_version"):
                return False
            current = set(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
        return current == committed_heads()
    except OperationalError as error:
        url = mask_url(url or get_settings().database_url)
        raise DatabaseUnavailable(f"cannot reach the database at {url}: {error.orig}") from None
