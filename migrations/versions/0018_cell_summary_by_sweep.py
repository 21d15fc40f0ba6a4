"""v_cell_summary groups by the sweep and the job's columns, so that `WHERE sweep_id = ...` filters before it
aggregates.

0014's view aggregated every cell of every sweep and joined the jobs afterwards: Postgres could not push a
sweep filter below the aggregate, and with stale statistics it ran the aggregate once per job (2.9 s for a
10,000-run sweep). Same columns, same figures (0014's per-window FIGURES and Student t); only the grouping moves.
Its SQL: migrations/views/cell_summary.py (versions 0014 and 0018).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02
"""

from alembic import op

from migrations.views import recreate_views

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    recreate_views(op, ["v_cell_summary"], revision)


def downgrade() -> None:
    recreate_views(op, ["v_cell_summary"], down_revision)
