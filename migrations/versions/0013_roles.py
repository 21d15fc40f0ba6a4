"""Least-privilege roles: wattsweep_owner, wattsweep_app, wattsweep_reader (Postgres only; SQLite has no roles).

Who runs this matters, and both ways work:

- a superuser (a DBA's first `wattsweep db upgrade`, the test suite): it runs
  migrations/roles.sql first, which creates the three roles and their limits
  (cluster-wide, idempotent) and keeps the advisory-lock functions of this
  database for the application alone;
- the owner, not a superuser (compose's `migrate` service): roles.sql was run
  by a superuser beforehand (compose's Postgres does it at its first start,
  deploy/postgres-init.sh); without it this revision stops and says so.

Then, in this database, as its owner would: nobody but the wattsweep roles
connects (CONNECT revoked from PUBLIC), nobody makes temp tables (TEMP
revoked), the application gets rows only (SELECT, INSERT, UPDATE, DELETE on
tables, USAGE on sequences; not alembic_version) and the reader SELECT, both
also on tables and views the migrating role creates later (default
privileges). Keeping the wattsweep roles out of the cluster's other databases
is pg_hba.conf's job (PUBLIC may connect there): see deploy/postgres-init.sh.

Downgrade returns this database's grants to what revision 0012 had and leaves
the roles (other databases of the cluster may use them).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

import re
from pathlib import Path

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

OWNER, APP, READER = "wattsweep_owner", "wattsweep_app", "wattsweep_reader"
ROLES_SQL = Path(__file__).resolve().parent.parent / "roles.sql"


def _statements(sql: str) -> list[str]:
    """roles.sql's statements: each is a DO block ending in `$$;` on its own line."""
    parts = re.split(r"(?m)^\$\$;\s*$", sql)
    return [part.strip() + "\n$$" for part in parts if "DO $$" in part]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    if bind.exec_driver_sql("SELECT current_setting('is_superuser')").scalar() == "on":
        for statement in _statements(ROLES_SQL.read_text()):
            op.execute(statement)
    missing = {APP, READER} - set(bind.exec_driver_sql(
        f"SELECT rolname FROM pg_roles WHERE rolname IN ('{APP}', '{READER}')").scalars())
    if missing:
        raise RuntimeError(f"roles {', '.join(sorted(missing))} do not exist: run migrations/roles.sql once as a "
                           "superuser (compose's postgres does at its first start), or run `wattsweep db upgrade` "
                           "once as a superuser")
    op.execute(f"""
        DO $$
        BEGIN
            EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
            EXECUTE format('GRANT CONNECT ON DATABASE %I TO {APP}, {READER}', current_database());
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{OWNER}') THEN
                EXECUTE format('GRANT CONNECT ON DATABASE %I TO {OWNER}', current_database());
            END IF;
        END
        $$
    """)
    op.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")  # Postgres < 15 let every role create tables here
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP}, {READER}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP}")
    op.execute(f"REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {APP}")  # the schema is the owner's
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP}")
    op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {APP}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {READER}")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM {APP}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {APP}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {APP}")
    op.execute("""
        DO $$
        BEGIN
            EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO PUBLIC', current_database());
        END
        $$
    """)
    if bind.exec_driver_sql("SELECT current_setting('is_superuser')").scalar() == "on":
        op.execute("""
            DO $$
            DECLARE
                f record;
            BEGIN
                FOR f IN SELECT p.oid::regprocedure AS signature
                         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                         WHERE n.nspname = 'pg_catalog' AND p.proname LIKE 'pg\\_%advisory%' LOOP
                    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', f.signature);
                END LOOP;
            END
            $$
        """)
