"""`wattsweep db`: schema commands."""

from __future__ import annotations

import typer

from scheduler.cli.options import DatabaseOpt, console, fail, masked, settings_for

db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseOpt = None) -> None:
    """Apply the committed schema migrations to the database."""
    from db.migrate import upgrade
    from db.session import DatabaseUnavailable

    url = settings_for(database_url).database_url
    try:
        upgrade(url)
    except DatabaseUnavailable as error:
        fail(str(error))
    console.print(f"schema up to date at {masked(url)}")
