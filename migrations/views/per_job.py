"""One row per job that has query windows (counts, sums, sum of squared deviations, extremes, totals): what the
model, task and hardware summaries aggregate, so that a task over a million runs is one parallel pass.

The per-job sum of squared deviations is var_pop * count on Postgres and a second pass around the job's mean
on SQLite, which has no variance aggregate. `x` is kWh per 1,000 queries.
"""

from __future__ import annotations

from migrations.views.energy import (
    BASELINE,
    EMISSIONS_KG,
    HEADLINE_KWH,
    IDLE_KWH,
    NET_KWH,
    NODE_G_PER_1K,
    NODE_NET_KWH,
    NODE_NET_PER_1K,
    NOT_ATTRIBUTED,
    PER_1K,
)
from migrations.views.expressions import CPU_ESTIMATED, GPU_ESTIMATED, excluded, kept

_JOB = """SELECT j.sweep_id AS sweep_id, j.id AS job_id, j.task AS task, j.model AS model,
        j.hardware_class AS hardware_class,"""
_GROUP = """
    JOIN jobs j ON j.id = w.job_id
    GROUP BY j.id, j.sweep_id, j.task, j.model, j.hardware_class"""


def _squares(dialect: str, job_mean: str) -> tuple[str, str]:
    """(sum of squared deviations, the SQLite pass's window column) for `x` in `w`."""
    if dialect == "postgresql":
        return "var_pop(w.x) * count(w.x)", ""
    return "sum((w.x - w.job_mean) * (w.x - w.job_mean))", job_mean


def per_job_0007(dialect: str, hardware: bool = False) -> str:
    """Node-wide figures (0007 to 0013); `hardware` adds the job's CPU and GPU models."""
    models = ",\n        max(w.cpu_model) AS cpu_model, max(w.gpu_model) AS gpu_model" if hardware else ""
    ss, job_mean = _squares(dialect, ", avg(m.kwh_per_1k_queries) OVER (PARTITION BY m.job_id) AS job_mean")
    return f"""{_JOB}
        count(*) AS runs, count(w.x) AS n_x, sum(w.x) AS sum_x, sum(w.x) / NULLIF(count(w.x), 0) AS mean_x,
        {ss} AS ss_x,
        min(w.x) AS min_x, max(w.x) AS max_x, sum(w.net_x) AS sum_net_x, count(w.net_x) AS n_net_x,
        sum(w.g_x) AS sum_g_x, count(w.g_x) AS n_g_x, sum(w.energy) AS energy, sum(w.net_energy) AS net_energy,
        count(w.idle) AS idle_runs, sum(w.duration) AS duration, sum(w.queries) AS queries,
        max(w.cpu_estimated) AS cpu_estimated, max(w.gpu_estimated) AS gpu_estimated,
        sum(w.outlier) AS outliers, sum(w.unreliable) AS unreliable{models}
    FROM (
        SELECT m.job_id AS job_id, m.kwh_per_1k_queries AS x, {NODE_NET_PER_1K} AS net_x, {NODE_G_PER_1K} AS g_x,
            m.energy_kwh AS energy, {NODE_NET_KWH} AS net_energy, m.idle_energy_kwh AS idle,
            m.duration_s AS duration, m.n_queries AS queries,
            CASE WHEN {CPU_ESTIMATED} THEN 1 ELSE 0 END AS cpu_estimated,
            CASE WHEN {GPU_ESTIMATED} THEN 1 ELSE 0 END AS gpu_estimated,
            CASE WHEN m.is_outlier THEN 1 ELSE 0 END AS outlier,
            CASE WHEN m.is_unreliable THEN 1 ELSE 0 END AS unreliable,
            m.cpu_model AS cpu_model, m.gpu_model AS gpu_model{job_mean}
        FROM measurements m
        WHERE m.phase = 'query'
    ) w{_GROUP}"""


# 0014 on: one row per query window with its figures: headline, net, grams and node-wide per 1,000 queries.
FIGURES = f"""SELECT m.id AS id, m.job_id AS job_id, m.run_id AS run_id,
        {HEADLINE_KWH} {PER_1K} AS x, {NET_KWH} {PER_1K} AS net_x, {EMISSIONS_KG} * 1000000.0 / NULLIF(m.n_queries, 0)
            AS g_x,
        m.energy_kwh {PER_1K} AS node_x, m.gpu_energy_kwh {PER_1K} AS gpu_x,
        {HEADLINE_KWH} AS energy, {NET_KWH} AS net_energy, {IDLE_KWH} AS idle, m.energy_kwh AS node_energy,
        m.duration_s AS duration, m.n_queries AS queries,
        CASE WHEN {NOT_ATTRIBUTED} THEN 1 ELSE 0 END AS node_wide,
        CASE WHEN {CPU_ESTIMATED} THEN 1 ELSE 0 END AS cpu_estimated,
        CASE WHEN {GPU_ESTIMATED} THEN 1 ELSE 0 END AS gpu_estimated,
        CASE WHEN m.is_outlier THEN 1 ELSE 0 END AS outlier,
        CASE WHEN m.is_unreliable THEN 1 ELSE 0 END AS unreliable,
        m.cpu_model AS cpu_model, m.gpu_model AS gpu_model
    FROM measurements m {BASELINE}
    WHERE m.phase = 'query'"""


def per_job_0014(dialect: str) -> str:
    """Headline figures over FIGURES, with the node-wide ones beside them, the GPU-only mean and the hardware."""
    return _per_job_headline(dialect, FIGURES)


def _per_job_headline(dialect: str, figures: str, runs: str = "count(*)", extra: str = "") -> str:
    ss, job_mean = _squares(dialect, ", avg(f.x) OVER (PARTITION BY f.job_id) AS job_mean")
    return f"""{_JOB}
        {runs} AS runs, count(w.x) AS n_x, sum(w.x) AS sum_x, sum(w.x) / NULLIF(count(w.x), 0) AS mean_x,
        {ss} AS ss_x, min(w.x) AS min_x, max(w.x) AS max_x, sum(w.net_x) AS sum_net_x, count(w.net_x) AS n_net_x,
        sum(w.g_x) AS sum_g_x, count(w.g_x) AS n_g_x, sum(w.energy) AS energy, sum(w.net_energy) AS net_energy,
        count(w.idle) AS idle_runs, sum(w.duration) AS duration, sum(w.queries) AS queries,
        max(w.cpu_estimated) AS cpu_estimated, max(w.gpu_estimated) AS gpu_estimated,
        sum(w.outlier) AS outliers, sum(w.unreliable) AS unreliable,
        sum(w.node_x) / NULLIF(count(w.node_x), 0) AS node_mean_x, sum(w.node_x) AS sum_node_x,
        count(w.node_x) AS n_node_x, sum(w.node_energy) AS node_energy, sum(w.node_wide) AS node_wide,
        avg(w.gpu_x) AS gpu_x, max(w.cpu_model) AS cpu_model, max(w.gpu_model) AS gpu_model{extra}
    FROM (SELECT f.*{job_mean} FROM ({figures}) f) w{_GROUP}"""


# 0029: FIGURES' columns, each figure NULL for a window with no GPU reading (expressions.kept), and which windows
# are kept (counted in `runs`) or excluded: the figures rest on the kept windows only.
_FIGURES_0029 = {
    "x": f"{HEADLINE_KWH} {PER_1K}", "net_x": f"{NET_KWH} {PER_1K}",
    "g_x": f"{EMISSIONS_KG} * 1000000.0 / NULLIF(m.n_queries, 0)", "node_x": f"m.energy_kwh {PER_1K}",
    "gpu_x": f"m.gpu_energy_kwh {PER_1K}", "energy": HEADLINE_KWH, "net_energy": NET_KWH, "idle": IDLE_KWH,
    "node_energy": "m.energy_kwh", "duration": "m.duration_s", "queries": "m.n_queries",
    "node_wide": f"CASE WHEN {NOT_ATTRIBUTED} THEN 1 ELSE 0 END",
    "cpu_estimated": f"CASE WHEN {CPU_ESTIMATED} THEN 1 ELSE 0 END",
    "gpu_estimated": f"CASE WHEN {GPU_ESTIMATED} THEN 1 ELSE 0 END",
    "outlier": "CASE WHEN m.is_outlier THEN 1 ELSE 0 END", "unreliable": "CASE WHEN m.is_unreliable THEN 1 ELSE 0 END",
    "kept": "1",
}
FIGURES_0029 = "SELECT m.id AS id, m.job_id AS job_id, m.run_id AS run_id,\n        " + ",\n        ".join(
    [f"{kept(value)} AS {name}" for name, value in _FIGURES_0029.items()]
    + [f"{excluded()} AS excluded", "m.cpu_model AS cpu_model", "m.gpu_model AS gpu_model"]) + f"""
    FROM measurements m {BASELINE}
    WHERE m.phase = 'query'"""


def per_job_0029(dialect: str) -> str:
    """0014's per-job figures over the kept windows (FIGURES_0029), `runs` counting them, `excluded` the rest."""
    return _per_job_headline(dialect, FIGURES_0029, runs="count(w.kept)", extra=", sum(w.excluded) AS excluded")


# per_job_0029's columns, in its order (the job's own columns first): what job_figures stores (0032).
PER_JOB_COLUMNS_0029 = [
    "sweep_id", "task", "model", "hardware_class", "runs", "n_x", "sum_x", "mean_x", "ss_x", "min_x", "max_x",
    "sum_net_x", "n_net_x", "sum_g_x", "n_g_x", "energy", "net_energy", "idle_runs", "duration", "queries",
    "cpu_estimated", "gpu_estimated", "outliers", "unreliable", "node_mean_x", "sum_node_x", "n_node_x",
    "node_energy", "node_wide", "gpu_x", "cpu_model", "gpu_model", "excluded",
]
