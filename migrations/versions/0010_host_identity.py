"""Host identity = one kernel: workers, measurements and idle baselines carry host_id.

Co-location (attribution of machine-wide CPU and RAM energy, exclusive
sweeps) used the hostname, which is the container id under compose (so
co-located workers never overlapped) and the same name on twin nodes.
host_id is the kernel's boot id (shared by every container of a node), or
WATTSWEEP_HOST_ID. Rows written before this revision keep their hostname as
their host_id: what co-location meant when they were stored.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLES = ("workers", "measurements", "idle_baselines")


def upgrade() -> None:
    # Plain ADD COLUMN, not batch copies: SQLite cannot rebuild a table that the result views read.
    for table in TABLES:
        op.add_column(table, sa.Column("host_id", sa.String(length=100), nullable=True))
        op.execute(f"UPDATE {table} SET host_id = hostname")
    op.create_index("ix_workers_host_id", "workers", ["host_id"])
    op.create_index("ix_measurements_host_id_ended_at", "measurements", ["host_id", "ended_at"])


def downgrade() -> None:
    op.drop_index("ix_measurements_host_id_ended_at", table_name="measurements")
    op.drop_index("ix_workers_host_id", table_name="workers")
    for table in TABLES:
        op.drop_column(table, "host_id")
