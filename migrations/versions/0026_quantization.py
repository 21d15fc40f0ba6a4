"""Weights as deployed (issue 21): the quantization a job's model was loaded with.

- jobs.quantization_method: the method transformers applied, from the checkpoint's quantization_config (fp8,
  mxfp4, awq, gptq, bitsandbytes, compressed-tensors, torchao, ...); NULL for unquantized weights;
- jobs.quantization_bits: the weights' bits under that method (4, 8), where the config says.

Written by the worker after the load window, beside jobs.model_dtype (the dtype the model computes in), so that
the same model in bf16 and in fp8, as two checkpoints of one sweep, can be compared cell by cell.

Plain ADD COLUMNs: SQLite cannot rebuild a table the result views read. The lead re-chains down_revision at
merge.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

COLUMNS = [("quantization_method", sa.String(length=40)), ("quantization_bits", sa.Integer())]


def upgrade() -> None:
    for name, type_ in COLUMNS:
        op.add_column("jobs", sa.Column(name, type_, nullable=True))
    if op.get_bind().dialect.name == "postgresql":  # workers store what they loaded (0022's column rights)
        op.execute(f"GRANT UPDATE ({', '.join(name for name, _ in COLUMNS)}) ON jobs TO wattsweep_worker")


def downgrade() -> None:
    for name, _ in reversed(COLUMNS):
        op.drop_column("jobs", name)
