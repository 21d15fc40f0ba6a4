"""Ready for the first GPU (issue 18): the job's float32 numerics, and every stored provenance column in v_runs.

- jobs.float32_matmul_precision (torch.get_float32_matmul_precision(): highest | high | medium), jobs.tf32_matmul
  and jobs.tf32_cudnn (whether float32 matmuls and cuDNN convolutions may use TF32), as the worker's torch had them
  when it loaded the model. NULL for jobs loaded before this revision.
- v_runs (version 0024): 0014's columns plus the window's PUE, CPU TDP, GPU UUID and state at start and end,
  CodeCarbon's warnings, carbon location, host size, utilisations and baseline, and the job's float32 numerics, so
  that `wattsweep export` carries every provenance column (a data centre's PUE can be checked from the export).
  Its SQL: migrations/views/runs.py.

Plain ADD COLUMNs: SQLite cannot rebuild a table the result views read.

Revision ID: 0024
Revises: 0022
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from migrations.views import recreate_views

revision = "0024"
down_revision = "0022"
branch_labels = None
depends_on = None

JOB_COLUMNS = [("float32_matmul_precision", sa.String(length=20)), ("tf32_matmul", sa.Boolean()),
               ("tf32_cudnn", sa.Boolean())]


def upgrade() -> None:
    for name, kind in JOB_COLUMNS:
        op.add_column("jobs", sa.Column(name, kind, nullable=True))
    recreate_views(op, ["v_runs"], revision)
    if op.get_bind().dialect.name == "postgresql":  # workers store what they loaded with (0022's column rights)
        op.execute(f"GRANT UPDATE ({', '.join(name for name, _ in JOB_COLUMNS)}) ON jobs TO wattsweep_worker")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_runs")  # it reads the columns about to go
    for name, _ in reversed(JOB_COLUMNS):
        op.drop_column("jobs", name)
    recreate_views(op, ["v_runs"], down_revision)
