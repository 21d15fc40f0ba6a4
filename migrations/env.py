"""Alembic environment: runs the committed revisions against the configured URL."""

from alembic import context

from db.models import Base
from db.session import make_engine
from db.settings import get_settings

config = context.config


def run_migrations() -> None:
    url = config.get_main_option("sqlalchemy.url") or get_settings().database_url
    engine = make_engine(url)
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # Batch mode rebuilds a table by copying it and dropping the old one; with foreign keys on, the
            # drop would cascade to the rows that reference it (0010 rebuilds jobs). Set outside a transaction,
            # where SQLite honours it.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        else:
            # A short wait for each lock, then db.migrate rolls back and tries again: an ALTER queued behind a
            # reader's open transaction would make every worker's statement on that table queue behind it too.
            lock_timeout_ms = int(get_settings().migration_lock_timeout_s * 1000)
            connection.exec_driver_sql(f"SET lock_timeout = {lock_timeout_ms}")
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name
            == "sqlite",  # SQLite alters tables by copying them
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
