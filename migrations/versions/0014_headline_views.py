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

Frozen like every revision: a later one that changes these views drops them and creates them again with their
full definition. v_model_kind_summary reads v_model_summary: drop it first.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

VIEWS = ("v_cell_summary", "v_model_kind_summary", "v_sweep_progress", "v_hardware_summary", "v_task_summary",
         "v_model_summary", "v_runs")
OLD_VIEWS = VIEWS[1:]
AXES = ["batch_size", "dtype", "max_new_tokens", "num_inference_steps", "height_px", "width_px", "reasoning"]
MEASURED = ["audio_s", "latency_p50_s", "latency_p95_s", "throughput_queries_per_s", "ttft_p50_s",
            "output_tokens_p50", "output_tokens_p95"]

NOT_ATTRIBUTED = "(m.cpu_energy_attributed_kwh IS NULL AND m.ram_energy_attributed_kwh IS NULL)"
CPU_KWH = "COALESCE(m.cpu_energy_attributed_kwh, m.cpu_energy_kwh)"
RAM_KWH = "COALESCE(m.ram_energy_attributed_kwh, m.ram_energy_kwh)"
HEADLINE_KWH = f"(CASE WHEN {NOT_ATTRIBUTED} THEN m.energy_kwh ELSE m.gpu_energy_kwh + {CPU_KWH} + {RAM_KWH} END)"
BASIS = f"(CASE WHEN {NOT_ATTRIBUTED} THEN 'node-wide' ELSE 'attributed' END)"
PER_1K = "* 1000.0 / NULLIF(m.n_queries, 0)"
EMISSIONS_KG = f"(CASE WHEN m.energy_kwh > 0 THEN m.emissions_kg * {HEADLINE_KWH} / m.energy_kwh ELSE m.emissions_kg END)"
_CPU_SHARE = "COALESCE(m.cpu_energy_attributed_kwh / NULLIF(m.cpu_energy_kwh, 0), 1.0)"
_RAM_SHARE = "COALESCE(m.ram_energy_attributed_kwh / NULLIF(m.ram_energy_kwh, 0), 1.0)"
# Needs `LEFT JOIN idle_baselines b ON b.id = m.baseline_id`. A sharded run's sum row whose shards used several
# baselines has none: its attributed idle is unknown (NULL), its node-wide idle is the shards' sum.
IDLE_KWH = (f"(CASE WHEN m.idle_energy_kwh IS NULL THEN NULL WHEN {NOT_ATTRIBUTED} THEN m.idle_energy_kwh "
            f"WHEN b.id IS NULL THEN NULL ELSE (b.gpu_power_w + b.cpu_power_w * {_CPU_SHARE} "
            f"+ b.ram_power_w * {_RAM_SHARE}) * m.duration_s / 3600000.0 END)")
NET_KWH = f"({HEADLINE_KWH} - {IDLE_KWH})"
BASELINE = "LEFT JOIN idle_baselines b ON b.id = m.baseline_id"

CPU_ESTIMATED = "m.cpu_method <> 'rapl'"
GPU_ESTIMATED = "m.gpu_method NOT IN ('none', 'nvml-energy-counter')"
ESTIMATED_ROW = (f"(CASE WHEN {CPU_ESTIMATED} THEN 'cpu, ' ELSE '' END) || "
                 f"(CASE WHEN {GPU_ESTIMATED} THEN 'gpu, ' ELSE '' END) || 'ram'")
ESTIMATED_OF = ("(CASE WHEN {agg}({p}cpu_estimated) = 1 THEN 'cpu, ' ELSE '' END) || "
                "(CASE WHEN {agg}({p}gpu_estimated) = 1 THEN 'gpu, ' ELSE '' END) || 'ram'")
NULLS_LAST = "CASE WHEN {v} IS NULL THEN 1 ELSE 0 END, {v}"
LATEST_LOAD = f"""(SELECT m.job_id AS job_id, {HEADLINE_KWH} AS energy_kwh, m.duration_s AS duration_s
    FROM measurements m
    WHERE m.id IN (SELECT max(id) FROM measurements WHERE phase = 'load' GROUP BY job_id))"""

# Two-sided 95% Student t quantiles t(0.975, df), df = 1..30 (scipy.stats.t.ppf, 12 digits); beyond, the
# Cornish-Fisher expansion in 1/df around z = 1.959963984540054 (Abramowitz & Stegun 26.7.5).
T975 = (12.706204736175, 4.302652729749, 3.182446305284, 2.776445105198, 2.570581835636, 2.446911851145,
        2.364624251593, 2.306004135204, 2.262157162798, 2.228138851986, 2.200985160092, 2.178812829667,
        2.160368656463, 2.144786687918, 2.13144954556, 2.119905299221, 2.109815577833, 2.100922040241,
        2.093024054408, 2.085963447266, 2.079613844728, 2.073873067904, 2.068657610419, 2.063898561628,
        2.059538552753, 2.055529438643, 2.05183051648, 2.048407141795, 2.045229642133, 2.042272456301)
T975_TERMS = (1.959963984540054, 2.372271230298562, 2.8224986157396112, 2.555849679507722, 1.5895340533938225)


def _t975(df: str) -> str:
    """SQL for t(0.975, df) with `df` an integer expression >= 1."""
    table = " ".join(f"WHEN {i} THEN {value!r}" for i, value in enumerate(T975, start=1))
    expansion = " + ".join(f"{c!r} / ({df} * 1.0){'' if p == 1 else f' / power({df} * 1.0, {p - 1})'}"
                           if p else repr(c) for p, c in enumerate(T975_TERMS))
    return f"(CASE {df} {table} ELSE {expansion} END)"


def _median(value: str, count: str, rank: str) -> str:
    return f"avg(CASE WHEN {rank} IN (({count} + 1) / 2, ({count} + 2) / 2) THEN {value} END)"


def _version(dialect: str, library: str) -> str:
    if dialect == "postgresql":
        return f"(w.inventory -> 'versions' ->> '{library}')"
    return f"json_extract(w.inventory, '$.versions.{library}')"


# One row per query window with its figures: headline, net, grams and node-wide per 1,000 queries.
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


def _per_job(dialect: str) -> str:
    """One row per job that has query windows: counts, sums, sum of squared deviations, extremes, totals."""
    if dialect == "postgresql":
        ss, job_mean = "var_pop(w.x) * count(w.x)", ""
    else:  # SQLite has no variance aggregate: a second pass around the job's mean
        ss, job_mean = "sum((w.x - w.job_mean) * (w.x - w.job_mean))", ", avg(f.x) OVER (PARTITION BY f.job_id) AS job_mean"
    return f"""SELECT j.sweep_id AS sweep_id, j.id AS job_id, j.task AS task, j.model AS model,
        j.hardware_class AS hardware_class,
        count(*) AS runs, count(w.x) AS n_x, sum(w.x) AS sum_x, sum(w.x) / NULLIF(count(w.x), 0) AS mean_x,
        {ss} AS ss_x, min(w.x) AS min_x, max(w.x) AS max_x, sum(w.net_x) AS sum_net_x, count(w.net_x) AS n_net_x,
        sum(w.g_x) AS sum_g_x, count(w.g_x) AS n_g_x, sum(w.energy) AS energy, sum(w.net_energy) AS net_energy,
        count(w.idle) AS idle_runs, sum(w.duration) AS duration, sum(w.queries) AS queries,
        max(w.cpu_estimated) AS cpu_estimated, max(w.gpu_estimated) AS gpu_estimated,
        sum(w.outlier) AS outliers, sum(w.unreliable) AS unreliable,
        sum(w.node_x) / NULLIF(count(w.node_x), 0) AS node_mean_x, sum(w.node_x) AS sum_node_x,
        count(w.node_x) AS n_node_x, sum(w.node_energy) AS node_energy, sum(w.node_wide) AS node_wide,
        avg(w.gpu_x) AS gpu_x, max(w.cpu_model) AS cpu_model, max(w.gpu_model) AS gpu_model
    FROM (SELECT f.*{job_mean} FROM ({FIGURES}) f) w
    JOIN jobs j ON j.id = w.job_id
    GROUP BY j.id, j.sweep_id, j.task, j.model, j.hardware_class"""


GROUP_STATS = [
    ("runs", "CAST(sum(k.runs) AS BIGINT)"),
    ("kwh_per_1k_mean", "sum(k.sum_x) / NULLIF(sum(k.n_x), 0)"),
    ("kwh_per_1k_std_pooled", "CASE WHEN sum(k.n_x) > 1 THEN "
                              "sqrt((sum(k.ss_x) + sum(k.n_x * (k.mean_x - k.grand_mean) * (k.mean_x - k.grand_mean)))"
                              " / (sum(k.n_x) - 1)) END"),
    ("kwh_per_1k_min", "min(k.min_x)"),
    ("kwh_per_1k_max", "max(k.max_x)"),
    ("kwh_per_1k_model_mean", "avg(k.mean_x)"),
    ("kwh_per_1k_model_median", _median("k.mean_x", "k.models_measured", "k.model_rank")),
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
    ("estimated_components", ESTIMATED_OF.format(agg="max", p="k.")),
    ("outlier_runs", "CAST(sum(k.outliers) AS BIGINT)"),
    ("unreliable_runs", "CAST(sum(k.unreliable) AS BIGINT)"),
    ("node_wide_runs", "CAST(sum(k.node_wide) AS BIGINT)"),
    ("node_kwh_per_1k_mean", "sum(k.sum_node_x) / NULLIF(sum(k.n_node_x), 0)"),
    ("node_kwh_per_1k_model_mean", "avg(k.node_mean_x)"),
    ("node_kwh_per_1k_model_std", "CASE WHEN count(k.node_mean_x) > 1 THEN "
                                  "sqrt(sum((k.node_mean_x - k.node_model_mean) * (k.node_mean_x - k.node_model_mean))"
                                  " / (count(k.node_mean_x) - 1)) END"),
    ("node_energy_kwh_total", "sum(k.node_energy)"),
]


def _group_view(dialect: str, name: str, keys: list[str], lead: list[tuple[str, str]], join: str = "") -> None:
    group = ", ".join(f"jw.{k}" for k in keys)
    ranked = f"""SELECT jw.*,
        sum(jw.sum_x) OVER g / NULLIF(sum(jw.n_x) OVER g, 0) AS grand_mean,
        avg(jw.mean_x) OVER g AS model_mean,
        avg(jw.node_mean_x) OVER g AS node_model_mean,
        count(jw.mean_x) OVER g AS models_measured,
        row_number() OVER (PARTITION BY {group} ORDER BY {NULLS_LAST.format(v='jw.mean_x')}) AS model_rank
    FROM ({_per_job(dialect)}) jw
    WINDOW g AS (PARTITION BY {group})"""
    columns = lead + GROUP_STATS
    select = (f"SELECT {', '.join(e for _, e in columns)}\nFROM (\n{ranked}\n) k{join}\n"
              f"GROUP BY {', '.join('k.' + k for k in keys)}")
    op.execute(f"CREATE VIEW {name} ({', '.join(c for c, _ in columns)}) AS\n{select}")


def _task_summary(dialect: str) -> None:
    lead = [("sweep_id", "k.sweep_id"), ("sweep_name", "max(s.name)"), ("hardware_class", "max(s.hardware_class)"),
            ("task", "k.task"), ("models", "count(DISTINCT k.model)")]
    _group_view(dialect, "v_task_summary", ["sweep_id", "task"], lead, "\nJOIN sweeps s ON s.id = k.sweep_id")


def _hardware_summary(dialect: str) -> None:
    lead = [("hardware_class", "k.hardware_class"), ("task", "k.task"), ("sweeps", "count(DISTINCT k.sweep_id)"),
            ("models", "count(DISTINCT k.model)"), ("cpu_model", "max(k.cpu_model)"),
            ("gpu_model", "max(k.gpu_model)")]
    _group_view(dialect, "v_hardware_summary", ["hardware_class", "task"], lead)


# Per job: the means over its query windows of latency and output figures, energy per generated token.
PER_JOB_EXTRA = f"""(SELECT m.job_id AS job_id, avg(m.latency_p50_s) AS latency_p50_s,
        avg(m.latency_p95_s) AS latency_p95_s, avg(m.throughput_queries_per_s) AS throughput,
        avg(m.ttft_p50_s) AS ttft_p50_s, avg(m.output_tokens_p50) AS output_p50, avg(m.output_tokens_p95) AS output_p95,
        sum(m.output_tokens) AS output_tokens,
        sum(CASE WHEN m.output_tokens IS NOT NULL THEN m.n_queries END) AS out_queries,
        sum(CASE WHEN m.output_tokens > 0 THEN {HEADLINE_KWH} END) AS out_energy, sum(m.audio_s) AS audio_s
    FROM measurements m WHERE m.phase = 'query' GROUP BY m.job_id)"""


def _model_summary(dialect: str) -> None:
    x = f"{HEADLINE_KWH} {PER_1K}"
    if dialect == "postgresql":
        medians = f"""SELECT m.job_id AS job_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY {x}) AS median_x
    FROM measurements m WHERE m.phase = 'query' GROUP BY m.job_id"""
    else:
        medians = f"""SELECT job_id, {_median('x', 'n', 'rank_x')} AS median_x
    FROM (
        SELECT f.job_id AS job_id, f.x AS x,
            row_number() OVER (PARTITION BY f.job_id ORDER BY {NULLS_LAST.format(v='f.x')}) AS rank_x,
            count(f.x) OVER (PARTITION BY f.job_id) AS n
        FROM (SELECT m.job_id AS job_id, {x} AS x FROM measurements m WHERE m.phase = 'query') f
    ) ranked
    GROUP BY job_id"""
    datasets = """SELECT r.job_id AS job_id, count(DISTINCT r.dataset) AS datasets
    FROM runs r WHERE r.status = 'done' GROUP BY r.job_id"""
    columns = {
        "sweep_id": "jw.sweep_id", "sweep_name": "s.name", "job_id": "jw.job_id", "task": "jw.task",
        "model": "jw.model", "model_kind": "j.model_kind", "hardware_class": "jw.hardware_class",
        "num_parameters": "j.num_parameters", "job_status": "j.status", "datasets": "COALESCE(ds.datasets, 0)",
        "runs": "jw.runs", "kwh_per_1k_mean": "jw.mean_x", "kwh_per_1k_median": "md.median_x",
        "kwh_per_1k_std_pooled": "CASE WHEN jw.n_x > 1 THEN sqrt(jw.ss_x / (jw.n_x - 1)) END",
        "kwh_per_1k_min": "jw.min_x", "kwh_per_1k_max": "jw.max_x",
        "net_kwh_per_1k_mean": "jw.sum_net_x / NULLIF(jw.n_net_x, 0)",
        "g_co2e_per_1k_mean": "jw.sum_g_x / NULLIF(jw.n_g_x, 0)", "energy_kwh_total": "jw.energy",
        "net_energy_kwh_total": "jw.net_energy", "idle_measured_runs": "jw.idle_runs",
        "duration_s_total": "jw.duration", "queries_total": "jw.queries",
        "estimated_components": ESTIMATED_OF.format(agg="", p="jw."),
        "outlier_runs": "jw.outliers", "unreliable_runs": "jw.unreliable",
        "load_energy_kwh": "l.energy_kwh", "load_duration_s": "l.duration_s",
        "cell_key": "j.cell_key", **{name: f"j.{name}" for name in AXES},
        "gpu_kwh_per_1k_mean": "jw.gpu_x",
        "latency_p50_s_mean": "x.latency_p50_s", "latency_p95_s_mean": "x.latency_p95_s",
        "throughput_queries_per_s_mean": "x.throughput", "ttft_p50_s_mean": "x.ttft_p50_s",
        "output_tokens_total": "x.output_tokens",
        "output_tokens_per_query_mean": "x.output_tokens * 1.0 / NULLIF(x.out_queries, 0)",
        "output_tokens_p50_mean": "x.output_p50", "output_tokens_p95_mean": "x.output_p95",
        "kwh_per_output_token": "x.out_energy / NULLIF(x.output_tokens, 0)",
        "audio_s_total": "x.audio_s",
        "node_wide_runs": "jw.node_wide", "node_kwh_per_1k_mean": "jw.node_mean_x",
        "node_energy_kwh_total": "jw.node_energy",
    }
    select = f"""SELECT {', '.join(columns.values())}
FROM ({_per_job(dialect)}) jw
JOIN jobs j ON j.id = jw.job_id
JOIN sweeps s ON s.id = jw.sweep_id
JOIN ({medians}) md ON md.job_id = jw.job_id
LEFT JOIN ({datasets}) ds ON ds.job_id = jw.job_id
LEFT JOIN {LATEST_LOAD} l ON l.job_id = jw.job_id
LEFT JOIN {PER_JOB_EXTRA} x ON x.job_id = jw.job_id"""
    op.execute(f"CREATE VIEW v_model_summary ({', '.join(columns)}) AS\n{select}")


def _cell_summary(dialect: str) -> None:
    """One row per (job, dataset) with query windows: the repetition statistics of the headline figure."""
    if dialect == "postgresql":
        ss, cell_mean = "var_pop(w.x) * count(w.x)", ""
    else:
        ss = "sum((w.x - w.cell_mean) * (w.x - w.cell_mean))"
        cell_mean = ", avg(f.x) OVER (PARTITION BY f.job_id, f.dataset) AS cell_mean"
    per_cell = f"""SELECT w.job_id AS job_id, w.dataset AS dataset, count(w.x) AS n, avg(w.x) AS mean_x,
        {ss} AS ss_x, min(w.x) AS min_x, max(w.x) AS max_x,
        sum(w.net_x) / NULLIF(count(w.net_x), 0) AS net_x, sum(w.g_x) / NULLIF(count(w.g_x), 0) AS g_x,
        avg(w.gpu_x) AS gpu_x, avg(w.node_x) AS node_x, CAST(sum(w.node_wide) AS BIGINT) AS node_wide,
        CAST(sum(w.outlier) AS BIGINT) AS outliers, CAST(sum(w.unreliable) AS BIGINT) AS unreliable,
        max(w.cpu_estimated) AS cpu_estimated, max(w.gpu_estimated) AS gpu_estimated, count(*) AS windows
    FROM (SELECT f.*{cell_mean} FROM (
        SELECT fig.*, r.dataset AS dataset FROM ({FIGURES}) fig JOIN runs r ON r.id = fig.run_id) f) w
    GROUP BY w.job_id, w.dataset"""
    std = "CASE WHEN c.n > 1 THEN sqrt(c.ss_x / (c.n - 1)) END"
    half = f"CASE WHEN c.n > 1 THEN {_t975('(c.n - 1)')} * sqrt(c.ss_x / (c.n - 1)) / sqrt(c.n * 1.0) END"
    columns = {
        "sweep_id": "j.sweep_id", "sweep_name": "s.name", "job_id": "j.id", "task": "j.task", "model": "j.model",
        "model_kind": "j.model_kind", "cell_key": "j.cell_key", "hardware_class": "j.hardware_class",
        "dataset": "c.dataset", "runs": "c.n", "kwh_per_1k_mean": "c.mean_x", "kwh_per_1k_std": std,
        "kwh_per_1k_ci95_low": f"c.mean_x - ({half})", "kwh_per_1k_ci95_high": f"c.mean_x + ({half})",
        "kwh_per_1k_cv": f"CASE WHEN c.mean_x <> 0 THEN ({std}) / c.mean_x END",
        "t_975": f"CASE WHEN c.n > 1 THEN {_t975('(c.n - 1)')} END",
        "kwh_per_1k_min": "c.min_x", "kwh_per_1k_max": "c.max_x", "net_kwh_per_1k_mean": "c.net_x",
        "g_co2e_per_1k_mean": "c.g_x", "gpu_kwh_per_1k_mean": "c.gpu_x", "node_kwh_per_1k_mean": "c.node_x",
        "node_wide_runs": "c.node_wide", "outlier_runs": "c.outliers", "unreliable_runs": "c.unreliable",
        "estimated_components": ESTIMATED_OF.format(agg="", p="c."),
    }
    select = f"""SELECT {', '.join(columns.values())}
FROM ({per_cell}) c
JOIN jobs j ON j.id = c.job_id
JOIN sweeps s ON s.id = j.sweep_id"""
    op.execute(f"CREATE VIEW v_cell_summary ({', '.join(columns)}) AS\n{select}")


def _runs(dialect: str) -> None:
    columns = {
        "sweep_id": "s.id", "sweep_name": "s.name", "sweep_mode": "s.mode", "job_id": "j.id", "task": "j.task",
        "model": "j.model", "model_kind": "j.model_kind", "model_revision": "j.model_revision",
        "model_dtype": "j.model_dtype", "num_parameters": "j.num_parameters", "hardware_class": "j.hardware_class",
        "job_status": "j.status", "run_id": "r.id", "dataset": "r.dataset", "repetition": "r.repetition",
        "run_status": "r.status", "run_error": "r.error", "n_queries": "COALESCE(m.n_queries, r.n_queries)",
        "batch_size": "r.batch_size", "finished_at": "r.finished_at", "measurement_id": "m.id",
        "worker_id": "COALESCE(m.worker_id, r.worker_id)", "hostname": "COALESCE(m.hostname, w.hostname)",
        "device": "w.device", "started_at": "m.started_at", "duration_s": "m.duration_s",
        "energy_kwh": HEADLINE_KWH, "idle_energy_kwh": IDLE_KWH, "net_energy_kwh": NET_KWH,
        "cpu_energy_kwh": CPU_KWH, "gpu_energy_kwh": "m.gpu_energy_kwh", "ram_energy_kwh": RAM_KWH,
        "emissions_kg": EMISSIONS_KG, "kwh_per_1k_queries": f"({HEADLINE_KWH} {PER_1K})",
        "net_kwh_per_1k_queries": f"({NET_KWH} {PER_1K})",
        "g_co2e_per_1k_queries": f"({EMISSIONS_KG} * 1000000.0 / NULLIF(m.n_queries, 0))",
        "input_tokens": "m.input_tokens", "output_tokens": "m.output_tokens", "images": "m.images",
        "cpu_method": "m.cpu_method", "gpu_method": "m.gpu_method", "ram_method": "m.ram_method",
        "estimated_components": f"CASE WHEN m.id IS NOT NULL THEN {ESTIMATED_ROW} END",
        "cpu_model": "m.cpu_model", "gpu_model": "m.gpu_model", "gpu_count": "m.gpu_count",
        "tracking_mode": "m.tracking_mode", "codecarbon_version": "m.codecarbon_version",
        "torch_version": _version(dialect, "torch"), "transformers_version": _version(dialect, "transformers"),
        "carbon_intensity_g_per_kwh": "m.carbon_intensity_g_per_kwh",
        "carbon_intensity_source": "m.carbon_intensity_source", "is_outlier": "m.is_outlier",
        "is_unreliable": "m.is_unreliable", "flags": "m.flags", "load_energy_kwh": "l.energy_kwh",
        "load_duration_s": "l.duration_s",
        "cell_key": "j.cell_key", **{name: f"j.{name}" for name in AXES if name != "batch_size"},
        "gpu_kwh_per_1k_queries": f"(m.gpu_energy_kwh {PER_1K})",
        **{name: f"m.{name}" for name in MEASURED},
        "energy_basis": f"CASE WHEN m.id IS NOT NULL THEN {BASIS} END", "host_id": "m.host_id",
        "max_concurrent_windows": "m.max_concurrent_windows", "shards": "m.shards",
        "node_energy_kwh": "m.energy_kwh", "node_cpu_energy_kwh": "m.cpu_energy_kwh",
        "node_ram_energy_kwh": "m.ram_energy_kwh", "node_idle_energy_kwh": "m.idle_energy_kwh",
        "node_emissions_kg": "m.emissions_kg", "node_kwh_per_1k_queries": f"(m.energy_kwh {PER_1K})",
    }
    select = f"""SELECT {', '.join(columns.values())}
FROM runs r
JOIN jobs j ON j.id = r.job_id
JOIN sweeps s ON s.id = j.sweep_id
LEFT JOIN measurements m ON m.run_id = r.id AND m.phase = 'query'
{BASELINE}
LEFT JOIN workers w ON w.id = COALESCE(m.worker_id, r.worker_id)
LEFT JOIN {LATEST_LOAD} l ON l.job_id = j.id"""
    op.execute(f"CREATE VIEW v_runs ({', '.join(columns)}) AS\n{select}")


def _sweep_progress() -> None:
    def count(column: str, value: str) -> str:
        return f"sum(CASE WHEN {column} = '{value}' THEN 1 ELSE 0 END)"

    columns = {
        "sweep_id": "s.id", "sweep_name": "s.name", "mode": "s.mode", "hardware_class": "s.hardware_class",
        "created_at": "s.created_at", "cancelled": "s.cancelled",
        "jobs_total": "COALESCE(jc.total, 0)", "jobs_queued": "COALESCE(jc.queued, 0)",
        "jobs_running": "COALESCE(jc.running, 0)", "jobs_done": "COALESCE(jc.done, 0)",
        "jobs_failed": "COALESCE(jc.failed, 0)", "jobs_cancelled": "COALESCE(jc.cancelled, 0)",
        "runs_total": "COALESCE(rc.total, 0)", "runs_pending": "COALESCE(rc.pending, 0)",
        "runs_done": "COALESCE(rc.done, 0)", "runs_failed": "COALESCE(rc.failed, 0)",
        "pct_runs_done": "CASE WHEN rc.total > 0 THEN 100.0 * rc.done / rc.total END",
        "first_run_finished_at": "rc.first_finished_at", "last_run_finished_at": "rc.last_finished_at",
        "query_energy_kwh_total": "mc.query_energy", "load_energy_kwh_total": "mc.load_energy",
        "node_query_energy_kwh_total": "mc.node_query_energy",
    }
    select = f"""SELECT {', '.join(columns.values())}
FROM sweeps s
LEFT JOIN (
    SELECT sweep_id, count(*) AS total, {count('status', 'queued')} AS queued,
        {count('status', 'running')} AS running, {count('status', 'done')} AS done,
        {count('status', 'failed')} AS failed, {count('status', 'cancelled')} AS cancelled
    FROM jobs GROUP BY sweep_id
) jc ON jc.sweep_id = s.id
LEFT JOIN (
    SELECT j.sweep_id AS sweep_id, count(*) AS total, {count('r.status', 'pending')} AS pending,
        {count('r.status', 'done')} AS done, {count('r.status', 'failed')} AS failed,
        min(r.finished_at) AS first_finished_at, max(r.finished_at) AS last_finished_at
    FROM runs r JOIN jobs j ON j.id = r.job_id GROUP BY j.sweep_id
) rc ON rc.sweep_id = s.id
LEFT JOIN (
    SELECT j.sweep_id AS sweep_id,
        sum(CASE WHEN m.phase = 'query' THEN {HEADLINE_KWH} END) AS query_energy,
        sum(CASE WHEN m.phase = 'load' THEN {HEADLINE_KWH} END) AS load_energy,
        sum(CASE WHEN m.phase = 'query' THEN m.energy_kwh END) AS node_query_energy
    FROM measurements m JOIN jobs j ON j.id = m.job_id GROUP BY j.sweep_id
) mc ON mc.sweep_id = s.id"""
    op.execute(f"CREATE VIEW v_sweep_progress ({', '.join(columns)}) AS\n{select}")


def _model_kind_summary() -> None:
    """0009's view over the new v_model_summary, plus the node-wide mean over models."""
    group = "sweep_id, sweep_name, task, model_kind"
    x, n, rank = "k.kwh_per_1k_mean", "k.models_measured", "k.model_rank"
    columns = {
        "sweep_id": "k.sweep_id", "sweep_name": "k.sweep_name", "task": "k.task", "model_kind": "k.model_kind",
        "models": "count(DISTINCT k.model)", "runs": "CAST(sum(k.runs) AS BIGINT)",
        "kwh_per_1k_model_mean": f"avg({x})", "kwh_per_1k_model_median": _median(x, n, rank),
        "kwh_per_1k_model_min": f"min({x})", "kwh_per_1k_model_max": f"max({x})",
        "g_co2e_per_1k_model_mean": "avg(k.g_co2e_per_1k_mean)",
        "node_kwh_per_1k_model_mean": "avg(k.node_kwh_per_1k_mean)",
    }
    ranked = f"""SELECT ms.sweep_id, ms.sweep_name, ms.task, ms.model_kind, ms.model, ms.runs, ms.kwh_per_1k_mean,
        ms.g_co2e_per_1k_mean, ms.node_kwh_per_1k_mean,
        count(ms.kwh_per_1k_mean) OVER (PARTITION BY {group}) AS models_measured,
        row_number() OVER (PARTITION BY {group} ORDER BY {NULLS_LAST.format(v='ms.kwh_per_1k_mean')}) AS model_rank
    FROM v_model_summary ms"""
    select = (f"SELECT {', '.join(columns.values())}\nFROM (\n{ranked}\n) k\n"
              f"GROUP BY {', '.join('k.' + c for c in group.split(', '))}")
    op.execute(f"CREATE VIEW v_model_kind_summary ({', '.join(columns)}) AS\n{select}")


def _revision(name: str):
    path = Path(__file__).resolve().parent / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_wattsweep_revision_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _grant(names) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"GRANT SELECT ON {', '.join(names)} TO wattsweep_reader")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name in OLD_VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.execute(f"UPDATE measurements SET kwh_per_1k_queries = {HEADLINE_KWH.replace('m.', '')} * 1000.0 / n_queries "
               "WHERE n_queries > 0")
    _runs(dialect)
    _model_summary(dialect)
    _task_summary(dialect)
    _hardware_summary(dialect)
    _sweep_progress()
    _model_kind_summary()
    _cell_summary(dialect)
    _grant(VIEWS)


def downgrade() -> None:
    """Back to 0013's views (0011's definitions); kWh per 1,000 queries node-wide again."""
    dialect = op.get_bind().dialect.name
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.execute("UPDATE measurements SET kwh_per_1k_queries = energy_kwh * 1000.0 / n_queries WHERE n_queries > 0")
    v7, v9, v11 = (_revision(n) for n in ("0007_result_views", "0009_model_kind_view", "0011_axes_and_latency"))
    v11._runs(dialect, v7)
    v11._model_summary(dialect, v7)
    v7._task_summary(dialect)
    v7._hardware_summary(dialect)
    v7._sweep_progress()
    v9.upgrade()
    _grant(OLD_VIEWS)
