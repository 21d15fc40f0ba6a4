"""Host energy as a time series: `measurements.host_samples`.

A window's CPU and RAM energy is the whole host's; attribution shares it
between co-located windows sample by sample (db/attribution.py), which needs
the series, not only its sum: {"t_s": [...], "cpu_j": [...], "ram_j": [...]},
one entry per sample interval (its end, seconds after the window's start, and
the host's CPU and RAM joules in it). Rows stored before this revision have
none and count as one interval each.

Plain ADD COLUMN (no batch copy): SQLite cannot rebuild a table the result views read.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("measurements", sa.Column("host_samples", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("measurements", "host_samples")
