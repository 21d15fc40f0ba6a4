"""Summaries that do not grow with the database (issue 22): per-job, per-cell and per-set-up figures kept in step
with the windows, in the writer's transaction, and the summary views read them.

The summary views aggregated every window of a sweep at query time (a million-run sweep's report: 16-25 s). Now
three tables hold what those views computed per job (job_figures), per cell (cell_figures) and per measurement
set-up (job_setups), each row made by the 0029 versions' own SELECTs restricted to the job (migrations/views/
figures.py); triggers on `measurements` and `runs` recompute the jobs a statement touched, so that every writer
(units, loads, imports, attribution, outlier flags, SQL) keeps them right without knowing. Version 0032 of
v_model_summary, v_task_summary, v_hardware_summary, v_cell_summary and v_sweep_progress reads the tables; same
columns, same figures. v_model_kind_summary reads v_model_summary: dropped first and made again.

Postgres: the triggers note the touched jobs (figures_pending) and recompute them once, at commit (a deferred
constraint trigger), in job id order: no job's lock is held in the middle of a worker's transaction, where it could
deadlock with attribution's host lock. The trigger functions run with the tables' owner's rights (SECURITY DEFINER,
search_path pinned): no role but the owner writes the tables, so a node cannot forge a figure. Made by a superuser, they and the tables are
handed to wattsweep_owner, which is given SELECT on what they read.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-06
"""

from alembic import op

from migrations.views import figures, recreate_views

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None

OWNER, READER = "wattsweep_owner", "wattsweep_reader"
# In creation order (v_model_kind_summary reads v_model_summary); dropped in reverse.
VIEWS = ("v_model_summary", "v_model_kind_summary", "v_task_summary", "v_hardware_summary", "v_cell_summary",
         "v_sweep_progress")
READS = ("jobs", "runs", "measurements", "idle_baselines")  # what the figures are computed from


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    for statement in figures.create_tables(dialect):
        op.execute(statement)
    for statement in figures.backfill(dialect):
        op.execute(statement)
    if dialect == "postgresql":
        for statement in figures.postgres_triggers():
            op.execute(statement)
        tables = ", ".join(figures.TABLES)
        op.execute(f"GRANT SELECT ON {tables} TO {READER}, wattsweep_app, wattsweep_worker")
        for table in (*figures.TABLES, figures.PENDING):
            op.execute(f"COMMENT ON TABLE {table} IS 'written by: triggers on measurements and runs "
                       f"(wattsweep_refresh_figures), as the owner; nobody writes it directly'")
        if bind.exec_driver_sql("SELECT current_setting('is_superuser')").scalar() == "on":
            # made by a superuser: run with the owner's rights, not the superuser's
            op.execute(f"GRANT SELECT ON {', '.join(READS)} TO {OWNER}")
            for table in (*figures.TABLES, figures.PENDING):
                op.execute(f"ALTER TABLE {table} OWNER TO {OWNER}")
            for signature in figures.postgres_functions():
                op.execute(f"ALTER FUNCTION {signature} OWNER TO {OWNER}")
    else:
        for statement in figures.sqlite_triggers():
            op.execute(statement)
    recreate_views(op, VIEWS, revision)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    recreate_views(op, VIEWS, down_revision)
    if dialect == "postgresql":
        for table, event in figures.TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS wattsweep_figures_{table}_{event.lower()} ON {table}")
        op.execute(f"DROP TABLE IF EXISTS {figures.PENDING}")
        for signature in figures.postgres_functions():
            op.execute(f"DROP FUNCTION IF EXISTS {signature}")
    else:
        for name in figures.sqlite_trigger_names():
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    for table in figures.TABLES:
        op.execute(f"DROP TABLE IF EXISTS {table}")
