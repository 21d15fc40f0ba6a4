"""v_model_summary filters by sweep before it aggregates: its per-job subqueries carry the job's sweep.

0014's view grouped every query window of every sweep by job for its median, latest load and latency means,
and only then kept the sweep asked for: a 20-run sweep's models took 2.6-3.1 s beside a million-run sweep.
Version 0021 groups each subquery by (sweep, job) and joins on both, so that `WHERE sweep_id = ...` reaches
every subquery (Postgres pushes it below the aggregates) and only that sweep's windows are read. Same columns,
same figures. v_model_kind_summary reads v_model_summary: it is dropped first and created again (its 0014 SQL).
Its SQL: migrations/views/model_summary.py (versions 0014 and 0021).

Also jobs.split_units (true unless the sweep fixed its unit size with shard_queries): whether a claim may split
the job's long units as the queue drains (db.queue.splitting). A plain ADD COLUMN.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from migrations.views import recreate_views

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

VIEWS = ("v_model_summary", "v_model_kind_summary")  # in creation order; dropped in reverse


def upgrade() -> None:
    op.add_column("jobs", sa.Column("split_units", sa.Boolean(), nullable=False, server_default=sa.true()))
    recreate_views(op, VIEWS, revision)


def downgrade() -> None:
    recreate_views(op, VIEWS, down_revision)
    op.drop_column("jobs", "split_units")
