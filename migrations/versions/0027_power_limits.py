"""Power limits as a sweep axis (issue 21, item 7): what was asked, what was set, and what must go back.

- jobs.power_limit_w: the cell's `power_limit_w` axis (watts; NULL: the GPUs' limit as the worker finds it);
- measurements.power_limit_set_w and power_limit_read_w: the limit set on the worker's GPUs for the window and
  what NVML answered when read back (the window's enforced limit at its ends is gpu_power_limit_start_w/end_w);
- power_limits_set: one row per GPU a worker changed, written before the change, so that a worker starting on
  the host after a SIGKILL puts the previous limit back (host_id, gpu_uuid, previous_w, set_w, worker_id, set_at,
  restored_at).

Plain ADD COLUMNs: SQLite cannot rebuild a table the result views read. The lead re-chains down_revision at
merge.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

MEASUREMENT_COLUMNS = ("power_limit_set_w", "power_limit_read_w")


def upgrade() -> None:
    op.add_column("jobs", sa.Column("power_limit_w", sa.Float(), nullable=True))
    for name in MEASUREMENT_COLUMNS:
        op.add_column("measurements", sa.Column(name, sa.Float(), nullable=True))
    op.create_table(
        "power_limits_set",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.String(length=100), nullable=False),
        sa.Column("gpu_uuid", sa.String(length=100), nullable=False),
        sa.Column("previous_w", sa.Float(), nullable=False),
        sa.Column("set_w", sa.Float(), nullable=False),
        sa.Column("worker_id", sa.String(length=200), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("restored_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_power_limits_set"),
    )
    op.create_index("ix_power_limits_set_host_id_gpu_uuid", "power_limits_set", ["host_id", "gpu_uuid"])
    if op.get_bind().dialect.name == "postgresql":  # rights by duty (0022): tables made later are read-only
        # Workers record the limits they set and mark them restored; the scheduler's role does the same for
        # local runs (`wattsweep run` on a GPU node against Postgres).
        for role in ("wattsweep_worker", "wattsweep_app"):
            op.execute(f"GRANT INSERT, UPDATE (set_w, worker_id, set_at, restored_at) ON power_limits_set TO {role}")
            op.execute(f"GRANT USAGE, SELECT ON SEQUENCE power_limits_set_id_seq TO {role}")


def downgrade() -> None:
    op.drop_index("ix_power_limits_set_host_id_gpu_uuid", table_name="power_limits_set")
    op.drop_table("power_limits_set")
    for name in reversed(MEASUREMENT_COLUMNS):
        op.drop_column("measurements", name)
    op.drop_column("jobs", "power_limit_w")
