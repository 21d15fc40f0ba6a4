"""v_decode: each run's prefill and decode energy, decode per generated token (runs with `measure_prefill`).

A prefill window runs the query window's prompts for one new token each and
stores its own units (output_tokens = queries); decode = query - prefill, over
queries x (max_new_tokens - 1) generated tokens: the query window's output
tokens less the prefill's. No run without a prefill window appears, and a
cell with max_new_tokens = 1 has no decode tokens (NULL per token). Reads
measurements, runs and jobs only, so other views can be rebuilt without it.

Energy is the headline (0014_headline_views): a window's own GPU energy plus
its attributed CPU and RAM, the node-wide reading where nothing was
attributed. Its SQL: migrations/views/decode.py, over the one headline
expression in migrations/views/energy.py.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

from alembic import op

from migrations.views import definition

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(definition("v_decode", revision, op.get_bind().dialect.name))


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_decode")
