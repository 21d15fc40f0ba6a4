"""A baseline that stays true: idle energy per component, the device's state, and why each baseline was taken.

- idle_baselines: cpu/gpu/ram_energy_kwh over the baseline window (beside the powers); the GPU's temperature,
  SM clock, power limit and throttle reasons when it was taken; `settled` (the GPU's power held within the
  tolerance over the settle window before it began; false: it timed out waiting, NULL: nothing to settle),
  `settle_s` (seconds waited), `reason` (first, age, temperature-drift, per-run) and `flags`
  (gpu-not-settled, neighbours-busy).
- measurements: idle_cpu/gpu/ram_energy_kwh, each component's idle power x the window's duration (node-wide:
  idle_energy_kwh is their sum).
- workers.baseline_since: set while the worker measures its idle baseline, so that co-located workers holding
  a unit for the same reason are not counted as busy neighbours.

Plain ADD COLUMNs: SQLite cannot rebuild a table the result views read.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

BASELINE_COLUMNS = [
    ("cpu_energy_kwh", sa.Float()), ("gpu_energy_kwh", sa.Float()), ("ram_energy_kwh", sa.Float()),
    ("gpu_temperature_c", sa.Float()), ("gpu_sm_clock_mhz", sa.Float()), ("gpu_power_limit_w", sa.Float()),
    ("gpu_throttle_reasons", sa.Integer()), ("settled", sa.Boolean()), ("settle_s", sa.Float()),
    ("reason", sa.String(length=30)), ("flags", sa.String(length=300)),
]
MEASUREMENT_COLUMNS = ["idle_cpu_energy_kwh", "idle_gpu_energy_kwh", "idle_ram_energy_kwh"]


def upgrade() -> None:
    for name, type_ in BASELINE_COLUMNS:
        op.add_column("idle_baselines", sa.Column(name, type_, nullable=True))
    for name in MEASUREMENT_COLUMNS:
        op.add_column("measurements", sa.Column(name, sa.Float(), nullable=True))
    op.add_column("workers", sa.Column("baseline_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("workers", "baseline_since")
    for name in reversed(MEASUREMENT_COLUMNS):
        op.drop_column("measurements", name)
    for name, _ in reversed(BASELINE_COLUMNS):
        op.drop_column("idle_baselines", name)
