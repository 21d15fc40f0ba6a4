"""AI Energy Score's protocol, stored per job: the decoding asked for and used, and chat templates.

- jobs.temperature: the sweep's temperature axis (None or 0: greedy), so that SQL can group by it;
- jobs.chat_template: text generation's prompts went through the model's chat template (an axis too);
- jobs.decoding: what generation actually used, resolved by the worker after loading (do_sample, temperature,
  top_p, top_k, num_beams, seed, whether a chat template was applied, the reasoning switch), as JSON.

Plain ADD COLUMNs: SQLite cannot rebuild a table the result views read. The lead re-chains down_revision at
merge.

Revision ID: 0025
Revises: 0019
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0019"
branch_labels = None
depends_on = None

COLUMNS = [("temperature", sa.Float()), ("chat_template", sa.Boolean()), ("decoding", sa.JSON())]


def upgrade() -> None:
    for name, type_ in COLUMNS:
        op.add_column("jobs", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    for name, _ in reversed(COLUMNS):
        op.drop_column("jobs", name)
