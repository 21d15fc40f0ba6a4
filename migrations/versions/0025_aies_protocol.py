"""AI Energy Score's protocol, stored per job: the decoding asked for and used, and chat templates.

- jobs.temperature: the sweep's temperature axis (None or 0: greedy), so that SQL can group by it;
- jobs.chat_template: text generation's prompts went through the model's chat template (an axis too);
- jobs.decoding: what generation actually used, resolved by the worker after loading (do_sample, temperature,
  top_p, top_k, num_beams, seed, whether a chat template was applied, the reasoning switch), as JSON;
- reference_results: published results a lab rates against (`wattsweep import aienergyscore`): per reference
  set, task and model, the GPU energy per 1,000 queries, the published size class and stars.

Plain ADD COLUMNs: SQLite cannot rebuild a table the result views read. The lead re-chains down_revision at
merge.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

COLUMNS = [("temperature", sa.Float()), ("chat_template", sa.Boolean()), ("decoding", sa.JSON())]


def upgrade() -> None:
    for name, type_ in COLUMNS:
        op.add_column("jobs", sa.Column(name, type_, nullable=True))
    op.create_table(
        "reference_results",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("task", sa.String(length=50), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("size_class", sa.String(length=2), nullable=True),
        sa.Column("gpu_kwh_per_1k", sa.Float(), nullable=False),
        sa.Column("published_stars", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("name", "task", "model"),
    )
    op.create_index("ix_reference_results_name", "reference_results", ["name"])
    if op.get_bind().dialect.name == "postgresql":  # rights by duty (0022): tables made later are read-only
        op.execute("GRANT INSERT, DELETE ON reference_results TO wattsweep_app")  # `wattsweep import aienergyscore`
        op.execute("GRANT USAGE, SELECT ON SEQUENCE reference_results_id_seq TO wattsweep_app")
        op.execute("GRANT UPDATE (decoding) ON jobs TO wattsweep_worker")  # what generation used, stored at load


def downgrade() -> None:
    op.drop_index("ix_reference_results_name", table_name="reference_results")
    op.drop_table("reference_results")
    for name, _ in reversed(COLUMNS):
        op.drop_column("jobs", name)
