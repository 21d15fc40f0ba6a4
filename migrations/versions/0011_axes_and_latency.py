"""Sweep axes and latency: a job is one cell (task, model, hardware class, axis values); runs store latency.

- jobs: one column per sweep axis (batch_size, dtype, max_new_tokens,
  num_inference_steps, height_px, width_px, reasoning) holding the cell's
  value, given or default, so that SQL can group by it; cell_key names the
  values of the axes a sweep gave as lists ("" when none) and joins the
  unique key, so one model may have several cells. Existing jobs get their
  runs' batch size.
- measurements: audio_s (seconds transcribed), latency_p50_s / latency_p95_s
  (each query's time is its batch's, measured around the batch), throughput
  (queries / window duration), ttft_p50_s (generation: first new token after
  the batch starts), output_tokens_p50 / _p95 (per query, where lengths vary).
- v_runs and v_model_summary gain those columns plus GPU-only energy per
  1,000 queries (AI Energy Score rates by it) and, per job, energy per
  generated token; the other views are created again as 0007 and 0009 define
  them (the jobs table is rebuilt on SQLite, which needs its views dropped).

On SQLite the rebuild runs with foreign keys off (migrations/env.py): dropping
the old jobs table must not cascade to its runs.

The views' SQL: migrations/views (this revision's versions of v_runs and
v_model_summary are named 0011 there). v_model_kind_summary reads
v_model_summary: a later revision that changes these views drops it first.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

from migrations.views import definition

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

VIEWS = ("v_model_kind_summary", "v_sweep_progress", "v_hardware_summary", "v_task_summary", "v_model_summary",
         "v_runs")
AXES = [("batch_size", sa.Integer()), ("dtype", sa.String(length=20)), ("max_new_tokens", sa.Integer()),
        ("num_inference_steps", sa.Integer()), ("height_px", sa.Integer()), ("width_px", sa.Integer()),
        ("reasoning", sa.String(length=10))]
MEASURED = ["audio_s", "latency_p50_s", "latency_p95_s", "throughput_queries_per_s", "ttft_p50_s",
            "output_tokens_p50", "output_tokens_p95"]
OLD_KEY = "uq_jobs_sweep_id_task_model_hardware_class"
NEW_KEY = "uq_jobs_sweep_id_task_model_hardware_class_cell_key"
KEY_COLUMNS = ["sweep_id", "task", "model", "hardware_class"]


def _drop_views() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")


def _create_views(as_of: str, dialect: str) -> None:
    """The views as they stand at revision `as_of` (v_model_kind_summary last: it reads v_model_summary)."""
    for name in reversed(VIEWS):
        op.execute(definition(name, as_of, dialect))
    if dialect == "postgresql":
        op.execute(f"GRANT SELECT ON {', '.join(VIEWS)} TO wattsweep_reader")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    _drop_views()
    with op.batch_alter_table("jobs", schema=None, recreate="auto") as batch_op:
        batch_op.drop_constraint(OLD_KEY, type_="unique")
        batch_op.add_column(sa.Column("cell_key", sa.String(length=300), nullable=False, server_default=""))
        for name, column_type in AXES:
            batch_op.add_column(sa.Column(name, column_type, nullable=True))
        batch_op.create_unique_constraint(NEW_KEY, [*KEY_COLUMNS, "cell_key"])
    op.execute("UPDATE jobs SET batch_size = (SELECT max(r.batch_size) FROM runs r WHERE r.job_id = jobs.id)")
    for name in MEASURED:  # plain ADD COLUMN: no copy of the largest table
        op.add_column("measurements", sa.Column(name, sa.Float(), nullable=True))
    _create_views(revision, dialect)


def downgrade() -> None:
    """Back to 0010. Fails if a sweep has several cells of one (task, model, hardware class): the old key."""
    dialect = op.get_bind().dialect.name
    _drop_views()
    for name in reversed(MEASURED):
        op.drop_column("measurements", name)
    with op.batch_alter_table("jobs", schema=None, recreate="auto") as batch_op:
        batch_op.drop_constraint(NEW_KEY, type_="unique")
        for name, _ in reversed(AXES):
            batch_op.drop_column(name)
        batch_op.drop_column("cell_key")
        batch_op.create_unique_constraint(OLD_KEY, KEY_COLUMNS)
    _create_views(down_revision, dialect)
