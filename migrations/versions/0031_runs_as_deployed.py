"""v_runs version 0031: the GPUs as the job ran on them (issue 21), so that `wattsweep export` carries them.

The job's `gpus` (0030), its weights' quantization method and bits (0026), the power limit asked for (0027), and
per window the limit set and read back (0027) and each GPU's own energy (0028, a JSON list as text). Its SQL:
migrations/views/runs.py.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-06
"""

from alembic import op

from migrations.views import recreate_views

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    recreate_views(op, ["v_runs"], revision)


def downgrade() -> None:
    recreate_views(op, ["v_runs"], down_revision)
