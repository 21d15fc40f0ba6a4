"""v_model_kind_summary: per (sweep, task, model kind), the models' energy: multi-purpose beside task-specific.

The study's second finding: a multi-purpose generative model prompted
zero-shot costs far more per query than a model fine-tuned for the task.
One row per (sweep, task, model_kind) with query windows; the statistics
treat every model (job) as one sample, its mean over runs, like the
`kwh_per_1k_model_*` columns of v_task_summary. Built on v_model_summary
(one row per job), so the per-job figures are computed in one place; the
median uses row_number() over the sorted means, NULLs last, interpolated
(like percentile_cont(0.5)), as 0007 does, so the definition is the same on
Postgres and SQLite.

Frozen like every revision. This view reads v_model_summary: a later revision
that drops and recreates v_model_summary (or, on SQLite, rebuilds a table it
reads) must drop this view first and create it again afterwards (Postgres
refuses to drop a view another view depends on).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

NAME = "v_model_kind_summary"
GROUP = "sweep_id, sweep_name, task, model_kind"


def upgrade() -> None:
    x, n, rank = "k.kwh_per_1k_mean", "k.models_measured", "k.model_rank"
    columns = {
        "sweep_id": "k.sweep_id", "sweep_name": "k.sweep_name", "task": "k.task", "model_kind": "k.model_kind",
        "models": "count(DISTINCT k.model)",
        "runs": "CAST(sum(k.runs) AS BIGINT)",
        "kwh_per_1k_model_mean": f"avg({x})",
        "kwh_per_1k_model_median": f"avg(CASE WHEN {rank} IN (({n} + 1) / 2, ({n} + 2) / 2) THEN {x} END)",
        "kwh_per_1k_model_min": f"min({x})",
        "kwh_per_1k_model_max": f"max({x})",
        "g_co2e_per_1k_model_mean": "avg(k.g_co2e_per_1k_mean)",
    }
    ranked = f"""SELECT ms.sweep_id, ms.sweep_name, ms.task, ms.model_kind, ms.model, ms.runs, ms.kwh_per_1k_mean,
        ms.g_co2e_per_1k_mean,
        count(ms.kwh_per_1k_mean) OVER (PARTITION BY {GROUP}) AS models_measured,
        row_number() OVER (PARTITION BY {GROUP} ORDER BY CASE WHEN ms.kwh_per_1k_mean IS NULL THEN 1 ELSE 0 END,
            ms.kwh_per_1k_mean) AS model_rank
    FROM v_model_summary ms"""
    select = (f"SELECT {', '.join(columns.values())}\nFROM (\n{ranked}\n) k\n"
              f"GROUP BY {', '.join('k.' + c for c in GROUP.split(', '))}")
    op.execute(f"CREATE VIEW {NAME} ({', '.join(columns)}) AS\n{select}")
    if op.get_bind().dialect.name == "postgresql":  # covered by 0005's default privileges too; explicit for clarity
        op.execute(f"GRANT SELECT ON {NAME} TO wattsweep_reader")


def downgrade() -> None:
    op.execute(f"DROP VIEW IF EXISTS {NAME}")
