"""jobs.num_parameters: the parameter count of the loaded model, where known.

Filled by the worker after loading (or by an import); read by the per-model
view and the energy-vs-parameters chart. Nullable: unknown stays unknown.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("num_parameters", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("num_parameters")
