"""Device groups (issue 21): one worker on several GPUs.

- measurements.gpu_energies: each metered GPU's own energy in the window, [{"index", "uuid", "kwh"}] in PCI
  order (gpu_energy_kwh is their sum; a one-GPU worker stores a list of one), so that a group's figure can be
  checked per device;
- workers.gpu_indexes: the physical (NVML) indexes of the GPUs a worker holds, as data, so that a worker starting
  on a host can see whether a live one there already holds one of its GPUs (a JSON list works alike on SQLite and
  Postgres; parsing `device` strings would not). `device` stays the short display form (`cuda:0-3`), 20
  characters as before: v_runs reads it, and Postgres cannot change the type of a column a view reads.

Plain ADD COLUMNs: SQLite cannot rebuild a table the result views read. The lead re-chains down_revision at
merge.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("measurements", sa.Column("gpu_energies", sa.JSON(), nullable=True))
    op.add_column("workers", sa.Column("gpu_indexes", sa.JSON(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        # measurements: workers INSERT whole rows (0022); their own workers row is UPDATEd column by column.
        op.execute("GRANT UPDATE (gpu_indexes) ON workers TO wattsweep_worker")


def downgrade() -> None:
    op.drop_column("workers", "gpu_indexes")
    op.drop_column("measurements", "gpu_energies")
