"""v_runs version 0031: the GPUs as the job ran on them (issue 21), so that `wattsweep export` carries them.

The job's `gpus` (0030), its weights' quantization method and bits (0026), the power limit asked for (0027), and
per window the limit set and read back (0027) and each GPU's own energy (0028, a JSON list as text). Its SQL:
migrations/views/runs.py.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-06
"""

from alembic import op

from migrations.views import definition

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def _recreate_runs(as_of: str) -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP VIEW IF EXISTS v_runs")
    op.execute(definition("v_runs", as_of, dialect))
    if dialect == "postgresql":
        op.execute("GRANT SELECT ON v_runs TO wattsweep_reader")


def upgrade() -> None:
    _recreate_runs(revision)


def downgrade() -> None:
    _recreate_runs(down_revision)
