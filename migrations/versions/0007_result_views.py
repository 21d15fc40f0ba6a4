"""Result views: v_runs, v_model_summary, v_task_summary, v_hardware_summary, v_sweep_progress.

Reports, exports and analysts read these, never Python loops over rows. Each
view has an explicit column list, the same on Postgres and SQLite (docs/sql.md
documents every column). Summaries cover query windows only.

Summaries are built from one aggregate per job (per model), so a task over a
million runs is one parallel pass: run-level mean and standard deviation are
combined from per-job counts, sums and sums of squared deviations (exact, no
cancellation), and the model-level figures (the study's Table 2 and the
per-task chart: mean, median, std over the models' means) come from those
rows. Medians use row_number() over sorted values (interpolated, like
percentile_cont(0.5)), which both databases have. The per-job sum of squared
deviations is var_pop * count on Postgres and a second pass around the job's
mean on SQLite, which has no variance aggregate. sqrt() needs SQLite >= 3.35
with math functions, as Python's sqlite3 has.

The SQL of each view lives in migrations/views (one source per view, every
version named by the revision that made it). A later revision that changes a
view adds a version there, drops the view and creates it again. On SQLite, a
later revision that rebuilds a table these views read (batch "move and copy":
anything but add_column) must drop the views first and create them again
afterwards: SQLite refuses to rename a table while a view refers to a missing one.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from alembic import op

from migrations.views import definition

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

VIEWS = ("v_sweep_progress", "v_hardware_summary", "v_task_summary", "v_model_summary", "v_runs")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name in reversed(VIEWS):
        op.execute(definition(name, revision, dialect))
    if dialect == "postgresql":  # covered by 0005's default privileges too; explicit for clarity
        op.execute(f"GRANT SELECT ON {', '.join(VIEWS)} TO wattsweep_reader")


def downgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
