"""The GPUs a job needs (issue 21): jobs.gpus, written at submit from the sweep's model_gpus (`auto` resolved).

A job needing N GPUs is sent to the queue of workers holding N (worker.contract.celery_app.job_queue: `h100`
for one, `h100-x4` for four) and joined only by them (db.queue.staffing). Jobs stored before this revision needed
one GPU: the column defaults to 1 and is never NULL.

A plain ADD COLUMN: SQLite cannot rebuild a table the result views read. The application role writes it with the
job (0022 grants it INSERT on jobs); workers only read it. The lead re-chains down_revision at merge.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("gpus", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    op.drop_column("jobs", "gpus")
