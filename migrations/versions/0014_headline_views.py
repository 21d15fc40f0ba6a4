"""Headline views: every view's energy is the window's own (pinned GPU + attributed CPU + attributed RAM); node-wide
readings beside it as `node_*`; per-cell statistics in the new v_cell_summary.

- Headline energy (`HEADLINE_KWH`): gpu_energy_kwh + cpu_energy_attributed_kwh + ram_energy_attributed_kwh. A
  window with neither attributed column (imported CodeCarbon logs, rows stored before attribution, a worker
  without host identity) has only its node-wide reading, and its headline is that: `energy_basis` says
  `attributed` or `node-wide`, and summaries count the latter (`node_wide_runs`). A window whose attributed
  columns are only partly set uses the node-wide reading for the missing component.
- Emissions follow the headline energy at the window's own intensity (CodeCarbon's emissions x headline / node).
- Idle (`idle_energy_kwh`) is attributed the same way: the baseline's GPU power plus its CPU and RAM powers x the
  window's attributed share of each, over the window; `net` = headline - idle. The node-wide idle stays beside
  it (`node_idle_energy_kwh`).
- `measurements.kwh_per_1k_queries` is recomputed from the headline (db.results keeps it so from now on).
- Spreads that pool datasets (and models) are named so: `kwh_per_1k_std_pooled` in v_model_summary,
  v_task_summary and v_hardware_summary (was `kwh_per_1k_std`). Repetition noise is in v_cell_summary: one row
  per (job, dataset) with n, mean, std, 95% CI (exact Student t: the quantile for df <= 30 from scipy, beyond
  that the Cornish-Fisher expansion, within 2e-8 of scipy), CV.
- v_runs loses cpu_energy_attributed_kwh / ram_energy_attributed_kwh: its cpu_energy_kwh / ram_energy_kwh are
  the attributed values (energy_basis says when they are node-wide), node_cpu_energy_kwh / node_ram_energy_kwh
  the readings.

The views' SQL, and the headline energy expression (migrations/views/energy.py), live in migrations/views;
this revision's versions are named 0014 there. v_model_kind_summary reads v_model_summary: a later revision that
changes these views drops it first.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from alembic import op

from migrations.views import definition
from migrations.views.energy import HEADLINE_KWH

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

VIEWS = ("v_cell_summary", "v_model_kind_summary", "v_sweep_progress", "v_hardware_summary", "v_task_summary",
         "v_model_summary", "v_runs")
OLD_VIEWS = VIEWS[1:]


def _create(names, as_of: str) -> None:
    """The views as they stand at revision `as_of`, in dependency order (each after the views it reads)."""
    dialect = op.get_bind().dialect.name
    for name in reversed(names):
        op.execute(definition(name, as_of, dialect))
    if dialect == "postgresql":
        op.execute(f"GRANT SELECT ON {', '.join(names)} TO wattsweep_reader")


def upgrade() -> None:
    for name in OLD_VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.execute(f"UPDATE measurements SET kwh_per_1k_queries = {HEADLINE_KWH.replace('m.', '')} * 1000.0 / n_queries "
               "WHERE n_queries > 0")
    _create(VIEWS, revision)


def downgrade() -> None:
    """Back to 0013's views (0011's definitions); kWh per 1,000 queries node-wide again."""
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.execute("UPDATE measurements SET kwh_per_1k_queries = energy_kwh * 1000.0 / n_queries WHERE n_queries > 0")
    _create(OLD_VIEWS, down_revision)
