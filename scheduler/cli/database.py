"""`wattsweep db`: schema commands."""

from __future__ import annotations

from typing import Annotated

import typer

from scheduler.cli.options import DatabaseOpt, console, errors, fail, masked, settings_for

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


@db_app.command("check")
def db_check(database_url: DatabaseOpt = None) -> None:
    """Exit 0 if the database answers and its schema is the latest (compose's health check), else 2 with why."""
    from scheduler.cli.options import open_sessions

    open_sessions(database_url)  # exits 2 with one line when the database is unreachable or behind
    console.print("database reachable, schema up to date")


@db_app.command("add-node")
def db_add_node(
    node: Annotated[str, typer.Argument(help="The GPU node's name (letters, digits, '-', '_').")],
    database_url: DatabaseOpt = None,
    node_database_url: Annotated[str | None, typer.Option(
        help="The database as the node reaches it (default: --database-url's host, port and database).")] = None,
    connections: Annotated[int, typer.Option(help="The node's connection limit: 2 per worker process.")] = 32,
    sql: Annotated[bool, typer.Option("--sql", help="Print the SQL (for psql as the superuser) instead of running "
                                                    "it; the node's settings go to stderr.")] = False,
) -> None:
    """Create a GPU node's own login role (a member of wattsweep_worker) and print what the node needs.

    Run as a role that may create roles (the superuser over the local socket), or with --sql piped into psql.
    """
    from db.nodes import NodeNameError, node_role, role_sql

    try:
        role = node_role(node, connection_limit=connections)
    except NodeNameError as error:
        fail(str(error))
    url = settings_for(database_url).database_url
    target = node_database_url or url
    if not target.startswith(("postgresql", "postgres://")):
        fail(f"--database-url {masked(target)}: node roles exist on Postgres only")
    lines = [f"# node {role.node}: Postgres role {role.role} (member of wattsweep_worker)",
             f"WATTSWEEP_DATABASE_URL={role.database_url(target)}", f"NODE_NAME={role.node}"]
    if sql:
        from sqlalchemy.engine import make_url

        for statement in role_sql(role, make_url(url).database or "wattsweep"):
            print(f"{statement};")
        errors.print("\n".join(lines), highlight=False, soft_wrap=True)
        return
    _create(url, role)
    print("\n".join(lines))


def _create(url: str, role) -> None:
    from sqlalchemy.exc import DBAPIError

    from db.nodes import create_node_role
    from db.session import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            create_node_role(connection, role)
    except DBAPIError as error:
        fail(f"cannot create role {role.role} as {masked(url)}: {str(error.orig).splitlines()[0]} (run it as a role "
             "that may create roles, or with --sql piped into psql as the superuser)")
    finally:
        engine.dispose()
