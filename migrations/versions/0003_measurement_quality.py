"""Measurement quality: idle baselines, per-window flags, shared-energy attribution.

- idle_baselines: a worker's idle power per component, measured at start-up and
  again when older than a configured age; each window stores the one it used.
- measurements: the baseline, the idle energy over the window (net = energy -
  idle), the host (to find co-located windows), CPU/RAM energy attributed to
  this window when several windows overlapped on one host, and flags.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idle_baselines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(length=200), nullable=False),
        sa.Column("hostname", sa.String(length=200), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("cpu_power_w", sa.Float(), nullable=False),
        sa.Column("gpu_power_w", sa.Float(), nullable=False),
        sa.Column("ram_power_w", sa.Float(), nullable=False),
        sa.Column("cpu_method", sa.String(length=30), nullable=False),
        sa.Column("gpu_method", sa.String(length=30), nullable=False),
        sa.Column("ram_method", sa.String(length=30), nullable=False),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["workers.id"], name=op.f("fk_idle_baselines_worker_id_workers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idle_baselines")),
    )
    op.create_index(op.f("ix_idle_baselines_worker_id"), "idle_baselines", ["worker_id"])
    with op.batch_alter_table("measurements", schema=None) as batch_op:
        batch_op.add_column(sa.Column("baseline_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("idle_energy_kwh", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("hostname", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("cpu_energy_attributed_kwh", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("ram_energy_attributed_kwh", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("max_concurrent_windows", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("power_samples", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("is_outlier", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("is_unreliable", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("flags", sa.String(length=300), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_measurements_baseline_id_idle_baselines"), "idle_baselines", ["baseline_id"], ["id"]
        )
        batch_op.create_index(op.f("ix_measurements_hostname_ended_at"), ["hostname", "ended_at"])


def downgrade() -> None:
    with op.batch_alter_table("measurements", schema=None) as batch_op:
        batch_op.drop_index(op.f("ix_measurements_hostname_ended_at"))
        batch_op.drop_constraint(op.f("fk_measurements_baseline_id_idle_baselines"), type_="foreignkey")
        for column in ("flags", "is_unreliable", "is_outlier", "power_samples", "max_concurrent_windows",
                       "ram_energy_attributed_kwh", "cpu_energy_attributed_kwh", "ended_at", "hostname", "idle_energy_kwh",
                       "baseline_id"):
            batch_op.drop_column(column)
    op.drop_index(op.f("ix_idle_baselines_worker_id"), table_name="idle_baselines")
    op.drop_table("idle_baselines")
