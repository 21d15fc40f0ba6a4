"""v_cell_summary groups by the sweep and the job's columns, so that `WHERE sweep_id = ...` filters before it
aggregates.

0014's view aggregated every cell of every sweep and joined the jobs afterwards: Postgres could not push a
sweep filter below the aggregate, and with stale statistics it ran the aggregate once per job (2.9 s for a
10,000-run sweep). Same columns, same figures (0014's per-window FIGURES and Student t); only the grouping moves.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

JOB_COLUMNS = ("sweep_id", "id", "task", "model", "model_kind", "cell_key", "hardware_class")


def _revision(name: str):
    path = Path(__file__).resolve().parent / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_wattsweep_revision_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cell_summary(dialect: str, v14) -> None:
    if dialect == "postgresql":
        ss, cell_mean = "var_pop(w.x) * count(w.x)", ""
    else:  # SQLite has no variance aggregate: a second pass around the cell's mean
        ss = "sum((w.x - w.cell_mean) * (w.x - w.cell_mean))"
        cell_mean = ", avg(fig.x) OVER (PARTITION BY fig.job_id, r.dataset) AS cell_mean"
    group = ", ".join(f"j.{c}" for c in JOB_COLUMNS)
    per_cell = f"""SELECT j.sweep_id AS sweep_id, j.id AS job_id, j.task AS task, j.model AS model,
        j.model_kind AS model_kind, j.cell_key AS cell_key, j.hardware_class AS hardware_class, w.dataset AS dataset,
        count(w.x) AS n, avg(w.x) AS mean_x, {ss} AS ss_x, min(w.x) AS min_x, max(w.x) AS max_x,
        sum(w.net_x) / NULLIF(count(w.net_x), 0) AS net_x, sum(w.g_x) / NULLIF(count(w.g_x), 0) AS g_x,
        avg(w.gpu_x) AS gpu_x, avg(w.node_x) AS node_x, CAST(sum(w.node_wide) AS BIGINT) AS node_wide,
        CAST(sum(w.outlier) AS BIGINT) AS outliers, CAST(sum(w.unreliable) AS BIGINT) AS unreliable,
        max(w.cpu_estimated) AS cpu_estimated, max(w.gpu_estimated) AS gpu_estimated
    FROM (SELECT fig.*, r.dataset AS dataset{cell_mean}
          FROM ({v14.FIGURES}) fig JOIN runs r ON r.id = fig.run_id) w
    JOIN jobs j ON j.id = w.job_id
    GROUP BY {group}, w.dataset"""
    t975 = v14._t975("(c.n - 1)")
    std = "CASE WHEN c.n > 1 THEN sqrt(c.ss_x / (c.n - 1)) END"
    half = f"CASE WHEN c.n > 1 THEN {t975} * sqrt(c.ss_x / (c.n - 1)) / sqrt(c.n * 1.0) END"
    columns = {
        "sweep_id": "c.sweep_id", "sweep_name": "s.name", "job_id": "c.job_id", "task": "c.task", "model": "c.model",
        "model_kind": "c.model_kind", "cell_key": "c.cell_key", "hardware_class": "c.hardware_class",
        "dataset": "c.dataset", "runs": "c.n", "kwh_per_1k_mean": "c.mean_x", "kwh_per_1k_std": std,
        "kwh_per_1k_ci95_low": f"c.mean_x - ({half})", "kwh_per_1k_ci95_high": f"c.mean_x + ({half})",
        "kwh_per_1k_cv": f"CASE WHEN c.mean_x <> 0 THEN ({std}) / c.mean_x END",
        "t_975": f"CASE WHEN c.n > 1 THEN {t975} END",
        "kwh_per_1k_min": "c.min_x", "kwh_per_1k_max": "c.max_x", "net_kwh_per_1k_mean": "c.net_x",
        "g_co2e_per_1k_mean": "c.g_x", "gpu_kwh_per_1k_mean": "c.gpu_x", "node_kwh_per_1k_mean": "c.node_x",
        "node_wide_runs": "c.node_wide", "outlier_runs": "c.outliers", "unreliable_runs": "c.unreliable",
        "estimated_components": v14.ESTIMATED_OF.format(agg="", p="c."),
    }
    op.execute(f"CREATE VIEW v_cell_summary ({', '.join(columns)}) AS\nSELECT {', '.join(columns.values())}\n"
               f"FROM ({per_cell}) c\nJOIN sweeps s ON s.id = c.sweep_id")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP VIEW IF EXISTS v_cell_summary")
    _cell_summary(dialect, _revision("0014_headline_views"))
    if dialect == "postgresql":
        op.execute("GRANT SELECT ON v_cell_summary TO wattsweep_reader")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP VIEW IF EXISTS v_cell_summary")
    _revision("0014_headline_views")._cell_summary(dialect)
    if dialect == "postgresql":
        op.execute("GRANT SELECT ON v_cell_summary TO wattsweep_reader")
