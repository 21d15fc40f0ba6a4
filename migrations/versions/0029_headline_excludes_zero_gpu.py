"""A window with no GPU reading is kept out of every headline figure (issue 18, defect 8).

A GPU window whose GPU energy is 0 (no energy counter, and CodeCarbon has no power sampling to fall back on:
codecarbon issue 1316) is flagged `gpu-energy-zero` by the worker: a zero is not a measurement. Until now the
views kept it in every mean, median, total and spread, like the other unreliable windows (which are measurements
with a known limit, and stay in, counted in `unreliable_runs`). Version 0029 of the summaries computes every
figure over the windows with a GPU reading only; `runs` counts those, and a new `excluded_runs` column counts
the others (v_model_summary, v_cell_summary, v_task_summary, v_hardware_summary, v_serving_cells);
v_sweep_progress's energy totals leave them out. v_runs, v_decode and v_serving keep one row per run, flags
and all. v_model_kind_summary reads v_model_summary: it is dropped first and created again (its 0014 SQL).
Their SQL: migrations/views (the expressions `kept`, `excluded`, `has_gpu_reading`).

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06
"""

from alembic import op

from migrations.views import recreate_views

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

# In creation order (v_model_kind_summary reads v_model_summary, v_serving_cells reads v_serving); dropped in
# reverse.
VIEWS = ("v_model_summary", "v_model_kind_summary", "v_task_summary", "v_hardware_summary", "v_cell_summary",
         "v_sweep_progress", "v_serving_cells")


def upgrade() -> None:
    recreate_views(op, VIEWS, revision)


def downgrade() -> None:
    recreate_views(op, VIEWS, down_revision)
