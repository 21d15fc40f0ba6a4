"""v_model_kind_summary: per (sweep, task, model kind), the models' energy: multi-purpose beside task-specific.

The study's second finding: a multi-purpose generative model prompted
zero-shot costs far more per query than a model fine-tuned for the task.
One row per (sweep, task, model_kind) with query windows; the statistics
treat every model (job) as one sample, its mean over runs, like the
`kwh_per_1k_model_*` columns of v_task_summary. Built on v_model_summary
(one row per job), so the per-job figures are computed in one place; the
median uses row_number() over the sorted means, NULLs last, interpolated
(like percentile_cont(0.5)), as 0007 does, so the definition is the same on
Postgres and SQLite. Its SQL: migrations/views/model_kind_summary.py.

This view reads v_model_summary: a later revision that drops and recreates
v_model_summary (or, on SQLite, rebuilds a table it reads) must drop this view
first and create it again afterwards (Postgres refuses to drop a view another
view depends on).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from alembic import op

from migrations.views import definition

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

NAME = "v_model_kind_summary"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute(definition(NAME, revision, dialect))
    if dialect == "postgresql":  # covered by 0005's default privileges too; explicit for clarity
        op.execute(f"GRANT SELECT ON {NAME} TO wattsweep_reader")


def downgrade() -> None:
    op.execute(f"DROP VIEW IF EXISTS {NAME}")
