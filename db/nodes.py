"""One Postgres login role per GPU node (`wattsweep db add-node`), a member of wattsweep_worker.

Why one per node: nodes that share a role share everything Postgres ties to a role. A member of a role may end
that role's connections (`pg_terminate_backend` checks the session's role) and its sessions look alike in
pg_stat_activity. With a role of its own, a compromised node does what a worker does (migration 0020) and no
more, updates only its own `workers` rows, and can be locked out alone (`ALTER ROLE ... NOLOGIN`).

Role settings are not inherited from wattsweep_worker, so each node role gets the application's timeouts itself
(the same as roles.sql gives wattsweep_app).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import make_url

WORKER_ROLE = "wattsweep_worker"
NODE_PREFIX = "wattsweep_node_"
NODE_NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,39}$")  # role names stay unquoted and under Postgres's 63 bytes
ROLE_SETTINGS = {"statement_timeout": "5min", "lock_timeout": "30s", "idle_in_transaction_session_timeout": "1min"}


class NodeNameError(ValueError):
    """A node name that cannot become a role name; the message names it and the rule."""


@dataclass(frozen=True)
class NodeRole:
    node: str
    role: str
    password: str
    connection_limit: int

    def database_url(self, base_url: str) -> str:
        """`base_url` (the head node's database) with this role's user name and password."""
        url = make_url(base_url).set(username=self.role, password=self.password)
        return url.render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgresql://", 1)


def node_role(node: str, *, connection_limit: int = 32, password: str | None = None) -> NodeRole:
    """The role for `node` (lower case letters, digits and `_`; `-` becomes `_`), with a fresh password."""
    name = node.strip().lower().replace("-", "_")
    if not NODE_NAME.match(name):
        raise NodeNameError(f"node name {node!r}: use 1 to 40 letters, digits, '-' or '_', starting with a letter "
                            "or digit")
    if not 1 <= connection_limit <= 1000:
        raise NodeNameError(f"--connections {connection_limit}: between 1 and 1000 (2 per worker process)")
    return NodeRole(node=name, role=NODE_PREFIX + name, password=password or secrets.token_hex(24),
                    connection_limit=connection_limit)


def role_sql(role: NodeRole, database: str) -> list[str]:
    """The statements that create (or refresh) `role`: login, member of the worker role, its limits.

    Names are checked by `node_role` and quoted here as well; the password is hex, so it needs no escaping.
    """
    name = f'"{role.role}"'
    statements = [
        f"DO $$ BEGIN CREATE ROLE {name} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS; "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$",
        f"ALTER ROLE {name} LOGIN PASSWORD '{role.password}' CONNECTION LIMIT {role.connection_limit}",
        f"GRANT {WORKER_ROLE} TO {name}",
        f'GRANT CONNECT ON DATABASE "{database}" TO {name}',
    ]
    statements += [f"ALTER ROLE {name} SET {setting} = '{value}'" for setting, value in ROLE_SETTINGS.items()]
    return statements


def create_node_role(connection, role: NodeRole) -> None:
    """Run `role_sql` on `connection` (a role that may create roles: a superuser, or one with CREATEROLE)."""
    database = connection.execute(text("SELECT current_database()")).scalar()
    for statement in role_sql(role, database):
        connection.execute(text(statement))
