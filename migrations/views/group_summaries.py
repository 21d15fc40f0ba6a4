"""v_task_summary (per sweep and task) and v_hardware_summary (per hardware class and task): groups of jobs.

Run-level mean and standard deviation are combined from the per-job counts, sums and sums of squared
deviations (exact, no cancellation); the model-level figures (the study's Table 2 and the per-task chart:
mean, median, std over the models' means) come from the per-job rows.

0029: over per_job_0029's rows (the windows with a GPU reading only), with `excluded_runs` beside `runs`.
0032: over the same rows as stored in job_figures (migrations/views/figures.py).
"""

from __future__ import annotations

from migrations.views.expressions import create_view, estimated_flags, median, nulls_last
from migrations.views.per_job import PER_JOB_COLUMNS_0029, per_job_0007, per_job_0014, per_job_0029

# Columns of a group of jobs `k`: (name, expression).
_STATS_0007 = [
    ("runs", "CAST(sum(k.runs) AS BIGINT)"),
    ("kwh_per_1k_mean", "sum(k.sum_x) / NULLIF(sum(k.n_x), 0)"),
    ("kwh_per_1k_std", "CASE WHEN sum(k.n_x) > 1 THEN "
                       "sqrt((sum(k.ss_x) + sum(k.n_x * (k.mean_x - k.grand_mean) * (k.mean_x - k.grand_mean)))"
                       " / (sum(k.n_x) - 1)) END"),
    ("kwh_per_1k_min", "min(k.min_x)"),
    ("kwh_per_1k_max", "max(k.max_x)"),
    ("kwh_per_1k_model_mean", "avg(k.mean_x)"),
    ("kwh_per_1k_model_median", median("k.mean_x", "k.models_measured", "k.model_rank")),
    ("kwh_per_1k_model_std", "CASE WHEN count(k.mean_x) > 1 THEN "
                             "sqrt(sum((k.mean_x - k.model_mean) * (k.mean_x - k.model_mean)) / (count(k.mean_x) - 1))"
                             " END"),
    ("net_kwh_per_1k_mean", "sum(k.sum_net_x) / NULLIF(sum(k.n_net_x), 0)"),
    ("g_co2e_per_1k_mean", "sum(k.sum_g_x) / NULLIF(sum(k.n_g_x), 0)"),
    ("energy_kwh_total", "sum(k.energy)"),
    ("net_energy_kwh_total", "sum(k.net_energy)"),
    ("idle_measured_runs", "CAST(sum(k.idle_runs) AS BIGINT)"),
    ("duration_s_total", "sum(k.duration)"),
    ("queries_total", "CAST(sum(k.queries) AS BIGINT)"),
    ("estimated_components", estimated_flags("max(k.{})")),
    ("outlier_runs", "CAST(sum(k.outliers) AS BIGINT)"),
    ("unreliable_runs", "CAST(sum(k.unreliable) AS BIGINT)"),
]

# 0014: the spread pools models and datasets, and is named so; the node-wide figures beside the headline.
_STATS_0014 = [("kwh_per_1k_std_pooled" if name == "kwh_per_1k_std" else name, value)
               for name, value in _STATS_0007] + [
    ("node_wide_runs", "CAST(sum(k.node_wide) AS BIGINT)"),
    ("node_kwh_per_1k_mean", "sum(k.sum_node_x) / NULLIF(sum(k.n_node_x), 0)"),
    ("node_kwh_per_1k_model_mean", "avg(k.node_mean_x)"),
    ("node_kwh_per_1k_model_std", "CASE WHEN count(k.node_mean_x) > 1 THEN "
                                  "sqrt(sum((k.node_mean_x - k.node_model_mean) * (k.node_mean_x - k.node_model_mean))"
                                  " / (count(k.node_mean_x) - 1)) END"),
    ("node_energy_kwh_total", "sum(k.node_energy)"),
]
_STATS_0029 = [*_STATS_0014, ("excluded_runs", "CAST(sum(k.excluded) AS BIGINT)")]


def _group_view(name: str, keys: list[str], lead: list[tuple[str, str]], version: str, per_job: str,
                join: str = "") -> str:
    """The per-job rows with the figures of their group (window functions), then aggregated per group."""
    group = ", ".join(f"jw.{k}" for k in keys)
    stats = {"0007": _STATS_0007, "0014": _STATS_0014, "0029": _STATS_0029}[version]
    node = "\n        avg(jw.node_mean_x) OVER g AS node_model_mean," if version >= "0014" else ""
    ranked = f"""SELECT jw.*,
        sum(jw.sum_x) OVER g / NULLIF(sum(jw.n_x) OVER g, 0) AS grand_mean,
        avg(jw.mean_x) OVER g AS model_mean,{node}
        count(jw.mean_x) OVER g AS models_measured,
        row_number() OVER (PARTITION BY {group} ORDER BY {nulls_last('jw.mean_x')}) AS model_rank
    FROM ({per_job}) jw
    WINDOW g AS (PARTITION BY {group})"""
    columns = dict(lead + stats)
    return create_view(name, columns, f"FROM (\n{ranked}\n) k{join}\nGROUP BY {', '.join('k.' + k for k in keys)}")


_TASK_LEAD = [("sweep_id", "k.sweep_id"), ("sweep_name", "max(s.name)"), ("hardware_class", "max(s.hardware_class)"),
              ("task", "k.task"), ("models", "count(DISTINCT k.model)")]
_TASK_JOIN = "\nJOIN sweeps s ON s.id = k.sweep_id"
_HARDWARE_LEAD = [("hardware_class", "k.hardware_class"), ("task", "k.task"), ("sweeps", "count(DISTINCT k.sweep_id)"),
                  ("models", "count(DISTINCT k.model)"), ("cpu_model", "max(k.cpu_model)"),
                  ("gpu_model", "max(k.gpu_model)")]


def _task_summary(version: str, per_job: str) -> str:
    return _group_view("v_task_summary", ["sweep_id", "task"], _TASK_LEAD, version, per_job, _TASK_JOIN)


def _hardware_summary(version: str, per_job: str) -> str:
    return _group_view("v_hardware_summary", ["hardware_class", "task"], _HARDWARE_LEAD, version, per_job)


# 0032: per_job_0029's rows as stored in job_figures (migrations/views/figures.py), kept in step with the windows.
JOB_FIGURES = f"SELECT job_id, {', '.join(PER_JOB_COLUMNS_0029)} FROM job_figures WHERE has_query = 1"

VERSIONS = {
    "v_task_summary": {
        "0007": lambda dialect: _task_summary("0007", per_job_0007(dialect)),
        "0014": lambda dialect: _task_summary("0014", per_job_0014(dialect)),
        "0029": lambda dialect: _task_summary("0029", per_job_0029(dialect)),
        "0032": lambda dialect: _task_summary("0029", JOB_FIGURES),
    },
    "v_hardware_summary": {
        "0007": lambda dialect: _hardware_summary("0007", per_job_0007(dialect, hardware=True)),
        "0014": lambda dialect: _hardware_summary("0014", per_job_0014(dialect)),
        "0029": lambda dialect: _hardware_summary("0029", per_job_0029(dialect)),
        "0032": lambda dialect: _hardware_summary("0029", JOB_FIGURES),
    },
}
