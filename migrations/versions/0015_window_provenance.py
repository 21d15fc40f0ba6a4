"""Per-device truth and provenance of each window: the metered GPU's UUID, its state at the window's start and
end (temperature, SM clock, power limit, throttle reasons), the TDP CodeCarbon's CPU estimate used, the PUE
applied, and CodeCarbon's warnings during the window, verbatim (their flags are in `flags`).

Rows stored before this revision have NULLs there, and a PUE of 1.0 (wattsweep never passed another).
`power_samples` stays for those rows; new windows leave it NULL (it counted nothing real in task mode: see the
flags `short-window` and `gpu-counter-coarse`).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

COLUMNS = [
    ("gpu_uuid", sa.String(length=100)),
    ("cpu_tdp_w", sa.Float()),
    ("pue", sa.Float()),
    ("codecarbon_warnings", sa.Text()),
    *[(f"gpu_{name}_{when}_{unit}".rstrip("_"), kind) for when in ("start", "end") for name, unit, kind in (
        ("temperature", "c", sa.Float()), ("sm_clock", "mhz", sa.Float()), ("power_limit", "w", sa.Float()),
        ("throttle", "", sa.Integer()))],
]


def upgrade() -> None:
    # Plain ADD COLUMN, not batch copies: SQLite cannot rebuild a table that the result views read.
    for name, kind in COLUMNS:
        op.add_column("measurements", sa.Column(name, kind, nullable=True))
    op.execute("UPDATE measurements SET pue = 1.0")


def downgrade() -> None:
    for name, _ in reversed(COLUMNS):
        op.drop_column("measurements", name)
