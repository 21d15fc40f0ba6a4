"""Roles by what each does (Postgres only): the scheduler, the workers, and nobody but the owner deletes results.

Revision 0013 gave one role, wattsweep_app, every row of every table to all GPU nodes: one compromised node
could rewrite another node's energy values, take its lease token, or `DELETE FROM sweeps` and cascade through
every result. Now:

- wattsweep_app (the scheduler: submit, cancel, retry, reconcile, import; local runs) writes the plan's rows
  (sweeps, jobs, runs, shards), imports measurements, and deletes from `unavailable` alone (`retry`);
- wattsweep_worker (no login; each node logs in as its own member, `wattsweep db add-node`) does what
  db/queue/leases.py, unit_store.py and db/results/ do on a worker, column by column (WORKER_RIGHTS below): claim,
  renew and release leases, insert windows, baselines and its own `workers` rows (row-level security on
  `workers.db_role`: a node updates only the rows its login role made), update only the columns attribution and
  outlier flags recompute, and delete only from `unavailable`;
- nobody but the owner deletes or truncates results, and tables made later get SELECT only: a later migration
  that adds a table grants its writes as this one does.
- wattsweep_end_stale_sessions(idle_s, statement_s): ends reader and node sessions idle in a transaction, or in
  one statement, past the limits (a role may turn its own timeouts off). It runs with the owner's rights
  (pg_signal_backend, pg_read_all_stats: migrations/roles.sql); the scheduler calls it every reconcile pass.

Who runs it matters as for 0013: a superuser runs migrations/roles.sql first (the worker role, the large-object
and backend-signalling functions revoked from PUBLIC); the owner needs roles.sql to have been run once by a
superuser since this revision, and stops with that message otherwise.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""

import re
from pathlib import Path

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

OWNER, APP, WORKER_ROLE, READER = "wattsweep_owner", "wattsweep_app", "wattsweep_worker", "wattsweep_reader"
ROLES_SQL = Path(__file__).resolve().parent.parent / "roles.sql"

# table -> (privileges on the whole table, {privilege: columns}). SELECT on every table is granted separately.
APP_RIGHTS = {
    "sweeps": ("INSERT, UPDATE", {}),
    "jobs": ("INSERT, UPDATE", {}),
    "runs": ("INSERT, UPDATE", {}),
    "shards": ("INSERT, UPDATE", {}),
    "measurements": ("INSERT", {}),  # `wattsweep import`
    "unavailable": ("DELETE", {}),  # `wattsweep retry` gives the job another chance on every node
}
WORKER_RIGHTS = {
    "jobs": ("", {"UPDATE": ["status", "attempts", "lease_worker_id", "lease_heartbeat_at", "started_at",
                             "finished_at", "last_error", "load_failures", "model_revision", "model_dtype",
                             "num_parameters", "engine_version", "engine_log"]}),
    # A worker that claims a long unit near the sweep's end keeps its first batches and leaves the rest as a new
    # pending shard of the same run (db/queue/splitting.py, 0021): n_shards, a shard's size, and the new shard.
    "runs": ("", {"UPDATE": ["status", "worker_id", "error", "finished_at", "n_shards"]}),
    "shards": ("INSERT", {"UPDATE": ["status", "attempts", "lease_worker_id", "lease_token", "lease_heartbeat_at",
                                     "progress_at", "stalled_at", "worker_id", "error", "finished_at", "n_queries",
                                     "expected_s"]}),
    # Attribution revises stored windows' shares, their headline per 1,000 queries and the cells' outlier flags;
    # the raw CodeCarbon fields are written once, at INSERT.
    "measurements": ("INSERT", {"UPDATE": ["cpu_energy_attributed_kwh", "ram_energy_attributed_kwh",
                                           "max_concurrent_windows", "kwh_per_1k_queries", "is_outlier"]}),
    "idle_baselines": ("INSERT", {}),
    "workers": ("INSERT", {"UPDATE": ["hostname", "host_id", "device", "hardware_class", "inventory", "token",
                                      "started_at", "heartbeat_at", "current_job_id", "stopped_reason",
                                      "baseline_since"]}),
    "unavailable": ("INSERT, DELETE", {}),
    "serving_runs": ("INSERT", {}),  # an engine run's serving figures (the engines branch's migration), if present
}

STALE_SESSIONS = f"""
CREATE OR REPLACE FUNCTION wattsweep_end_stale_sessions(idle_s double precision, statement_s double precision)
RETURNS TABLE (pid integer, role name, state text, seconds double precision, ended boolean)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT a.pid, a.usename, a.state,
           extract(epoch FROM now() - CASE WHEN a.state = 'active' THEN a.query_start ELSE a.state_change END),
           pg_terminate_backend(a.pid)
    FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
    WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND NOT r.rolsuper
      AND r.rolname NOT IN ('{OWNER}', '{APP}')
      AND (pg_has_role(r.oid, '{READER}', 'MEMBER') OR pg_has_role(r.oid, '{WORKER_ROLE}', 'MEMBER'))
      AND ((a.state LIKE 'idle in transaction%' AND now() - a.state_change > make_interval(secs => idle_s))
           OR (a.state = 'active' AND statement_s > 0
               AND now() - a.query_start > make_interval(secs => statement_s)))
$$
"""


def _statements(sql: str) -> list[str]:
    """roles.sql's statements: each is a DO block ending in `$$;` on its own line."""
    parts = re.split(r"(?m)^\$\$;\s*$", sql)
    return [part.strip() + "\n$$" for part in parts if "DO $$" in part]


def _is_superuser(bind) -> bool:
    return bind.exec_driver_sql("SELECT current_setting('is_superuser')").scalar() == "on"


def _grant(role: str, rights: dict) -> None:
    tables = set(op.get_bind().exec_driver_sql(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").scalars())
    for table, (whole, columns) in rights.items():
        if table not in tables:  # named for a migration that may land before or after this one
            continue
        if whole:
            op.execute(f"GRANT {whole} ON {table} TO {role}")
        for privilege, names in columns.items():
            op.execute(f"GRANT {privilege} ({', '.join(names)}) ON {table} TO {role}")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    if _is_superuser(bind):
        for statement in _statements(ROLES_SQL.read_text()):
            op.execute(statement)
    if bind.exec_driver_sql(f"SELECT count(*) FROM pg_roles WHERE rolname = '{WORKER_ROLE}'").scalar() == 0:
        raise RuntimeError(f"role {WORKER_ROLE} does not exist: run migrations/roles.sql once more as a superuser "
                           "(it now also keeps large objects and ending sessions from PUBLIC), or run `wattsweep db "
                           "upgrade` once as a superuser")
    op.execute(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public FROM {APP}")
    op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {APP}, {WORKER_ROLE}")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {WORKER_ROLE}")
    op.execute(f"""
        DO $$
        BEGIN
            EXECUTE format('GRANT CONNECT ON DATABASE %I TO {WORKER_ROLE}', current_database());
        END
        $$
    """)
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {WORKER_ROLE}")
    _grant(APP, APP_RIGHTS)
    _grant(WORKER_ROLE, WORKER_RIGHTS)
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE INSERT, UPDATE, DELETE ON TABLES FROM {APP}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {WORKER_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {WORKER_ROLE}")

    # A node updates only the `workers` rows its own login role made.
    op.execute("ALTER TABLE workers ADD COLUMN db_role name NOT NULL DEFAULT session_user")
    op.execute("ALTER TABLE workers ENABLE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY everyone_reads ON workers FOR SELECT USING (true)")
    op.execute(f"CREATE POLICY scheduler_writes ON workers FOR ALL TO {APP} USING (true) WITH CHECK (true)")
    op.execute(f"CREATE POLICY node_inserts_its_own ON workers FOR INSERT TO {WORKER_ROLE} "
               "WITH CHECK (db_role = session_user)")
    op.execute(f"CREATE POLICY node_updates_its_own ON workers FOR UPDATE TO {WORKER_ROLE} "
               "USING (db_role = session_user) WITH CHECK (db_role = session_user)")

    op.execute(STALE_SESSIONS)
    signature = "wattsweep_end_stale_sessions(double precision, double precision)"
    op.execute(f"REVOKE EXECUTE ON FUNCTION {signature} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {APP}")
    if _is_superuser(bind):  # made by a superuser: run it with the owner's rights, not the superuser's
        op.execute(f"ALTER FUNCTION {signature} OWNER TO {OWNER}")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION wattsweep_end_stale_sessions(double precision, double precision)")
    for policy in ("everyone_reads", "scheduler_writes", "node_inserts_its_own", "node_updates_its_own"):
        op.execute(f"DROP POLICY {policy} ON workers")
    op.execute("ALTER TABLE workers DISABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE workers DROP COLUMN db_role")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM {WORKER_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {WORKER_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {WORKER_ROLE}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {WORKER_ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {WORKER_ROLE}")
    op.execute(f"""
        DO $$
        BEGIN
            EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM {WORKER_ROLE}', current_database());
        END
        $$
    """)
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP}")
    op.execute(f"REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {APP}")
