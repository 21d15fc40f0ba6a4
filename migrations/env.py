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
