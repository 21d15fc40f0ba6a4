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
    """Whether the schema exists (cheap check used before running commands)."""
    try:
        return "alembic_version" in inspect(get_engine(url)).get_table_names()
    except OperationalError as error:
        url = mask_url(url or get_settings().database_url)
        raise DatabaseUnavailable(f"cannot reach the database at {url}: {error.orig}") from None
