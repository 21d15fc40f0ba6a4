"""The read-only role `wattsweep_reader` (Postgres only; SQLite has no roles).

Roles are cluster-wide while this revision runs once per database, and test
suites create many databases at once: creating the role tolerates "already
exists" (also the unique-index race of two concurrent CREATE ROLEs). The role
may log in; it has no password, so under password authentication nobody can
log in as it until an administrator sets one (`ALTER ROLE wattsweep_reader
PASSWORD '...'`). Every transaction of the role is read-only by default, as a
second fence behind the grants.

In this database it gets CONNECT, USAGE on schema public, SELECT on every
table and view, and SELECT on tables and views created later by the role that
runs the migrations (ALTER DEFAULT PRIVILEGES). Downgrade revokes those grants
here and leaves the role itself: other databases in the cluster may use it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ROLE = "wattsweep_reader"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"""
        DO $$
        BEGIN
            CREATE ROLE {ROLE} LOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation OR insufficient_privilege THEN
            NULL;  -- created by another database's migration, or by a superuser before an owner migrates (0013)
        END
        $$
    """)
    # Roles are cluster-wide: migrations of several databases at once would race on the role's row ("tuple
    # concurrently updated"). Alter only when the setting is missing; a concurrent migration setting it wins.
    op.execute(f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
                           WHERE r.rolname = '{ROLE}' AND s.setdatabase = 0
                             AND 'default_transaction_read_only=on' = ANY(s.setconfig)) THEN
                ALTER ROLE {ROLE} SET default_transaction_read_only = on;
            END IF;
        EXCEPTION WHEN internal_error THEN
            NULL;  -- tuple concurrently updated: another database's migration set it at the same moment
        END
        $$
    """)
    op.execute(f"""
        DO $$
        BEGIN
            EXECUTE format('GRANT CONNECT ON DATABASE %I TO {ROLE}', current_database());
        END
        $$
    """)
    op.execute(f"GRANT USAGE ON SCHEMA public TO {ROLE}")
    op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {ROLE}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT ON TABLES FROM {ROLE}")
    op.execute(f"REVOKE SELECT ON ALL TABLES IN SCHEMA public FROM {ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {ROLE}")
    op.execute(f"""
        DO $$
        BEGIN
            EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM {ROLE}', current_database());
        END
        $$
    """)
