"""Apply the committed Alembic revisions (`wattsweep db upgrade`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError

from db.session import DatabaseUnavailable, get_engine
from db.settings import get_settings, mask_url

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    url = url or get_settings().database_url
    try:
        command.upgrade(alembic_config(url), revision)
    except OperationalError as error:
        raise DatabaseUnavailable(f"cannot reach the database at {mask_url(url)}: {error.orig}") from None


def is_up_to_date(url: str | None = None) -> bool:
    """Whether the schema exists at the latest committed revision (cheap check used before running commands)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    try:
        engine = get_engine(url)
        if "alembic_version" not in inspect(engine).get_table_names():
            return False
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
        return current == set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())
    except OperationalError as error:
        url = mask_url(url or get_settings().database_url)
        raise DatabaseUnavailable(f"cannot reach the database at {url}: {error.orig}") from None
