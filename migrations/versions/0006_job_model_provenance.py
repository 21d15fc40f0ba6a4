"""jobs: task-specific or multi-purpose (zero-shot), and what exactly was loaded.

- model_kind: `task-specific` (a model fine-tuned for the task, run by the
  task's pipeline) or `multi-purpose` (a generative model prompted to do the
  task zero-shot, the study's second finding). Existing jobs are task-specific.
- model_revision: the commit of a Hub model that was loaded (the snapshot in
  the cache, or what `@revision` resolved to); None for tiny: and path: models.
- model_dtype: the dtype of the loaded weights (float32, float16, bfloat16).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("model_kind", sa.String(length=20), nullable=False, server_default="task-specific")
        )
        batch_op.add_column(sa.Column("model_revision", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("model_dtype", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("model_dtype")
        batch_op.drop_column("model_revision")
        batch_op.drop_column("model_kind")
