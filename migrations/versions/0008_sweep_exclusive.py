"""sweeps.exclusive: jobs of such a sweep run alone on their host (the cleanest machine-wide CPU figures).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN, not a batch copy: SQLite cannot rebuild a table that the result views read.
    op.add_column("sweeps", sa.Column("exclusive", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("sweeps", "exclusive")  # SQLite >= 3.35 drops a column in place
