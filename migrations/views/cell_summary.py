"""v_cell_summary: one row per (job, dataset) with query windows: the repetition statistics of the headline
figure (n, mean, std, 95% CI with the exact Student t, CV).

0014 aggregated every cell of every sweep and joined the jobs afterwards; 0018 groups by the sweep and the
job's columns, so that `WHERE sweep_id = ...` filters before it aggregates (Postgres could not push a sweep
filter below the aggregate). Same columns, same figures.

0029: 0018's over the windows with a GPU reading only (per_job.FIGURES_0029: a `gpu-energy-zero` window holds no
measurement); `excluded_runs` counts the others.
"""

from __future__ import annotations

from migrations.views.expressions import create_view, estimated_flags
from migrations.views.per_job import FIGURES, FIGURES_0029

# Two-sided 95% Student t quantiles t(0.975, df), df = 1..30 (scipy.stats.t.ppf, 12 digits); beyond, the
# Cornish-Fisher expansion in 1/df around z = 1.959963984540054 (Abramowitz & Stegun 26.7.5).
T975 = (12.706204736175, 4.302652729749, 3.182446305284, 2.776445105198, 2.570581835636, 2.446911851145,
        2.364624251593, 2.306004135204, 2.262157162798, 2.228138851986, 2.200985160092, 2.178812829667,
        2.160368656463, 2.144786687918, 2.13144954556, 2.119905299221, 2.109815577833, 2.100922040241,
        2.093024054408, 2.085963447266, 2.079613844728, 2.073873067904, 2.068657610419, 2.063898561628,
        2.059538552753, 2.055529438643, 2.05183051648, 2.048407141795, 2.045229642133, 2.042272456301)
T975_TERMS = (1.959963984540054, 2.372271230298562, 2.8224986157396112, 2.555849679507722, 1.5895340533938225)


def t975(df: str) -> str:
    """SQL for t(0.975, df) with `df` an integer expression >= 1."""
    table = " ".join(f"WHEN {i} THEN {value!r}" for i, value in enumerate(T975, start=1))
    expansion = " + ".join(f"{c!r} / ({df} * 1.0){'' if p == 1 else f' / power({df} * 1.0, {p - 1})'}"
                           if p else repr(c) for p, c in enumerate(T975_TERMS))
    return f"(CASE {df} {table} ELSE {expansion} END)"


def _columns(job: str) -> dict[str, str]:
    """The job's columns from `job` (j: the jobs table, 0014; c: the per-cell rows, 0018), then the statistics."""
    t = t975("(c.n - 1)")
    std = "CASE WHEN c.n > 1 THEN sqrt(c.ss_x / (c.n - 1)) END"
    half = f"CASE WHEN c.n > 1 THEN {t} * sqrt(c.ss_x / (c.n - 1)) / sqrt(c.n * 1.0) END"
    return {
        "sweep_id": f"{job}.sweep_id", "sweep_name": "s.name", "job_id": "j.id" if job == "j" else "c.job_id",
        **{name: f"{job}.{name}" for name in ("task", "model", "model_kind", "cell_key", "hardware_class")},
        "dataset": "c.dataset", "runs": "c.n", "kwh_per_1k_mean": "c.mean_x", "kwh_per_1k_std": std,
        "kwh_per_1k_ci95_low": f"c.mean_x - ({half})", "kwh_per_1k_ci95_high": f"c.mean_x + ({half})",
        "kwh_per_1k_cv": f"CASE WHEN c.mean_x <> 0 THEN ({std}) / c.mean_x END",
        "t_975": f"CASE WHEN c.n > 1 THEN {t} END",
        "kwh_per_1k_min": "c.min_x", "kwh_per_1k_max": "c.max_x", "net_kwh_per_1k_mean": "c.net_x",
        "g_co2e_per_1k_mean": "c.g_x", "gpu_kwh_per_1k_mean": "c.gpu_x", "node_kwh_per_1k_mean": "c.node_x",
        "node_wide_runs": "c.node_wide", "outlier_runs": "c.outliers", "unreliable_runs": "c.unreliable",
        "estimated_components": estimated_flags("(c.{})"),
    }


def _stats(ss: str, line_break: str = " ") -> str:
    """The per-cell figures both versions aggregate from FIGURES' `w` rows (`line_break`: 0014 broke a line)."""
    return f"""count(w.x) AS n, avg(w.x) AS mean_x,{line_break}{ss} AS ss_x, min(w.x) AS min_x, max(w.x) AS max_x,
        sum(w.net_x) / NULLIF(count(w.net_x), 0) AS net_x, sum(w.g_x) / NULLIF(count(w.g_x), 0) AS g_x,
        avg(w.gpu_x) AS gpu_x, avg(w.node_x) AS node_x, CAST(sum(w.node_wide) AS BIGINT) AS node_wide,
        CAST(sum(w.outlier) AS BIGINT) AS outliers, CAST(sum(w.unreliable) AS BIGINT) AS unreliable,
        max(w.cpu_estimated) AS cpu_estimated, max(w.gpu_estimated) AS gpu_estimated"""


def _squares(dialect: str, cell_mean: str) -> tuple[str, str]:
    if dialect == "postgresql":
        return "var_pop(w.x) * count(w.x)", ""
    return "sum((w.x - w.cell_mean) * (w.x - w.cell_mean))", cell_mean  # SQLite: a second pass around the mean


def _v0014(dialect: str) -> str:
    ss, cell_mean = _squares(dialect, ", avg(f.x) OVER (PARTITION BY f.job_id, f.dataset) AS cell_mean")
    stats = _stats(ss, "\n        ")
    per_cell = f"""SELECT w.job_id AS job_id, w.dataset AS dataset, {stats}, count(*) AS windows
    FROM (SELECT f.*{cell_mean} FROM (
        SELECT fig.*, r.dataset AS dataset FROM ({FIGURES}) fig JOIN runs r ON r.id = fig.run_id) f) w
    GROUP BY w.job_id, w.dataset"""
    return create_view("v_cell_summary", _columns("j"), f"""FROM ({per_cell}) c
JOIN jobs j ON j.id = c.job_id
JOIN sweeps s ON s.id = j.sweep_id""")


_JOB_COLUMNS = ("sweep_id", "id", "task", "model", "model_kind", "cell_key", "hardware_class")


def per_cell(dialect: str, figures: str = FIGURES, excluded: str = "") -> str:
    """One row per (job, dataset) with query windows: the job's columns and the cell's figures over `figures`."""
    ss, cell_mean = _squares(dialect, ", avg(fig.x) OVER (PARTITION BY fig.job_id, r.dataset) AS cell_mean")
    group = ", ".join(f"j.{c}" for c in _JOB_COLUMNS)
    return f"""SELECT j.sweep_id AS sweep_id, j.id AS job_id, j.task AS task, j.model AS model,
        j.model_kind AS model_kind, j.cell_key AS cell_key, j.hardware_class AS hardware_class, w.dataset AS dataset,
        {_stats(ss)}{excluded}
    FROM (SELECT fig.*, r.dataset AS dataset{cell_mean}
          FROM ({figures}) fig JOIN runs r ON r.id = fig.run_id) w
    JOIN jobs j ON j.id = w.job_id
    GROUP BY {group}, w.dataset"""


def per_cell_0029(dialect: str) -> str:
    return per_cell(dialect, FIGURES_0029, EXCLUDED_0029)


def _v0018(dialect: str, figures: str = FIGURES, excluded: str = "") -> str:
    columns = _columns("c") | ({"excluded_runs": "c.excluded"} if excluded else {})
    body = f"FROM ({per_cell(dialect, figures, excluded)}) c\nJOIN sweeps s ON s.id = c.sweep_id"
    return create_view("v_cell_summary", columns, body)


EXCLUDED_0029 = ", CAST(sum(w.excluded) AS BIGINT) AS excluded"


def _v0029(dialect: str) -> str:
    return _v0018(dialect, FIGURES_0029, EXCLUDED_0029)


def _v0032(dialect: str) -> str:
    """0029's rows, read from cell_figures (per_cell_0029's rows kept in step: migrations/views/figures.py)."""
    columns = _columns("c") | {"excluded_runs": "c.excluded"}
    return create_view("v_cell_summary", columns, "FROM cell_figures c\nJOIN sweeps s ON s.id = c.sweep_id")


VERSIONS = {"v_cell_summary": {"0014": _v0014, "0018": _v0018, "0029": _v0029, "0032": _v0032}}
