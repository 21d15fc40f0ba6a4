"""v_model_summary: one row per job (a model in one cell) with query windows: the run-level mean, median and
spread, totals, load energy, and (0011 on) the cell's axes, latency and output lengths.

0021: the same columns and figures as 0014, but every per-job subquery (median, datasets, latest load, the
latency and output means) carries its sweep and is joined on it, so that `WHERE sweep_id = ...` reaches each
of them and the database aggregates that sweep's windows only: 0014 grouped every window of every sweep by job
first (2.6-3.1 s for a 20-run sweep beside a million-run one), then filtered.

0029: 0021's, over the windows with a GPU reading only (expressions.kept: a `gpu-energy-zero` window holds no
measurement): `runs` counts those, `excluded_runs` the others; a latest load with no GPU reading has no energy.

0032: 0029's rows, read from the table job_figures (migrations/views/figures.py) instead of computed.
"""

from __future__ import annotations

import re

from migrations.views.energy import HEADLINE_KWH, LATEST_LOAD, NODE_LATEST_LOAD, PER_1K
from migrations.views.expressions import create_view, estimated_flags, has_gpu_reading, kept, median, nulls_last
from migrations.views.per_job import per_job_0007, per_job_0014, per_job_0029

AXES = ["batch_size", "dtype", "max_new_tokens", "num_inference_steps", "height_px", "width_px", "reasoning"]


def _medians_0007(dialect: str, rank_break: str = " ") -> str:
    """Each job's median kWh per 1,000 queries (`rank_break`: 0011 wrapped a line of the SQLite text)."""
    if dialect == "postgresql":
        return """SELECT j.sweep_id AS sweep_id, m.job_id AS job_id,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY m.kwh_per_1k_queries) AS median_x
    FROM measurements m JOIN jobs j ON j.id = m.job_id
    WHERE m.phase = 'query'
    GROUP BY j.sweep_id, m.job_id"""
    order = nulls_last("m.kwh_per_1k_queries")
    return f"""SELECT sweep_id, job_id, {median('x', 'n', 'rank_x')} AS median_x
    FROM (
        SELECT j.sweep_id AS sweep_id, m.job_id AS job_id, m.kwh_per_1k_queries AS x,
            row_number() OVER (PARTITION BY m.job_id ORDER BY {order}){rank_break}AS rank_x,
            count(m.kwh_per_1k_queries) OVER (PARTITION BY m.job_id) AS n
        FROM measurements m JOIN jobs j ON j.id = m.job_id
        WHERE m.phase = 'query'
    ) ranked
    GROUP BY sweep_id, job_id"""


DATASETS_0007 = """SELECT j.sweep_id AS sweep_id, r.job_id AS job_id, count(DISTINCT r.dataset) AS datasets
    FROM runs r JOIN jobs j ON j.id = r.job_id
    WHERE r.status = 'done'
    GROUP BY j.sweep_id, r.job_id"""


def _body(per_job: str, medians: str, datasets: str, latest_load: str, extra: str = "", on_sweep: bool = True) -> str:
    """Per-job rows joined to their job, sweep, median, datasets, load window and `extra` (per-job means)."""
    sweep = " AND {0}.sweep_id = jw.sweep_id" if on_sweep else ""
    extra = f"\nLEFT JOIN {extra} x ON x.job_id = jw.job_id" if extra else ""
    return f"""FROM ({per_job}) jw
JOIN jobs j ON j.id = jw.job_id
JOIN sweeps s ON s.id = jw.sweep_id
JOIN ({medians}) md ON md.job_id = jw.job_id{sweep.format('md')}
LEFT JOIN ({datasets}) ds ON ds.job_id = jw.job_id{sweep.format('ds')}
LEFT JOIN {latest_load} l ON l.job_id = jw.job_id{extra}"""


_COLUMNS_0007 = {
    "sweep_id": "jw.sweep_id", "sweep_name": "s.name", "job_id": "jw.job_id", "task": "jw.task",
    "model": "jw.model", "model_kind": "j.model_kind", "hardware_class": "jw.hardware_class",
    "num_parameters": "j.num_parameters", "job_status": "j.status", "datasets": "COALESCE(ds.datasets, 0)",
    "runs": "jw.runs", "kwh_per_1k_mean": "jw.mean_x", "kwh_per_1k_median": "md.median_x",
    "kwh_per_1k_std": "CASE WHEN jw.n_x > 1 THEN sqrt(jw.ss_x / (jw.n_x - 1)) END",
    "kwh_per_1k_min": "jw.min_x", "kwh_per_1k_max": "jw.max_x",
    "net_kwh_per_1k_mean": "jw.sum_net_x / NULLIF(jw.n_net_x, 0)",
    "g_co2e_per_1k_mean": "jw.sum_g_x / NULLIF(jw.n_g_x, 0)", "energy_kwh_total": "jw.energy",
    "net_energy_kwh_total": "jw.net_energy", "idle_measured_runs": "jw.idle_runs",
    "duration_s_total": "jw.duration", "queries_total": "jw.queries",
    "estimated_components": estimated_flags("jw.{}"),
    "outlier_runs": "jw.outliers", "unreliable_runs": "jw.unreliable",
    "load_energy_kwh": "l.energy_kwh", "load_duration_s": "l.duration_s",
}

# 0011: per job, the means over its query windows of the new per-run figures.
_PER_JOB_EXTRA_0011 = """(SELECT job_id, avg(latency_p50_s) AS latency_p50_s, avg(latency_p95_s) AS latency_p95_s,
        avg(throughput_queries_per_s) AS throughput, avg(ttft_p50_s) AS ttft_p50_s,
        avg(output_tokens_p50) AS output_p50, avg(output_tokens_p95) AS output_p95,
        sum(output_tokens) AS output_tokens, sum(CASE WHEN output_tokens IS NOT NULL THEN n_queries END) AS out_queries,
        sum(CASE WHEN output_tokens > 0 THEN energy_kwh END) AS out_energy, sum(audio_s) AS audio_s,
        avg(gpu_energy_kwh * 1000.0 / NULLIF(n_queries, 0)) AS gpu_x
    FROM measurements WHERE phase = 'query' GROUP BY job_id)"""

_COLUMNS_0011 = _COLUMNS_0007 | {
    "cell_key": "j.cell_key", **{name: f"j.{name}" for name in AXES},
    "gpu_kwh_per_1k_mean": "x.gpu_x",
    "latency_p50_s_mean": "x.latency_p50_s", "latency_p95_s_mean": "x.latency_p95_s",
    "throughput_queries_per_s_mean": "x.throughput", "ttft_p50_s_mean": "x.ttft_p50_s",
    "output_tokens_total": "x.output_tokens",
    "output_tokens_per_query_mean": "x.output_tokens * 1.0 / NULLIF(x.out_queries, 0)",
    "output_tokens_p50_mean": "x.output_p50", "output_tokens_p95_mean": "x.output_p95",
    "kwh_per_output_token": "x.out_energy / NULLIF(x.output_tokens, 0)",
    "audio_s_total": "x.audio_s",
}


def _medians_0014(dialect: str) -> str:
    x = f"{HEADLINE_KWH} {PER_1K}"
    if dialect == "postgresql":
        return f"""SELECT m.job_id AS job_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY {x}) AS median_x
    FROM measurements m WHERE m.phase = 'query' GROUP BY m.job_id"""
    return f"""SELECT job_id, {median('x', 'n', 'rank_x')} AS median_x
    FROM (
        SELECT f.job_id AS job_id, f.x AS x,
            row_number() OVER (PARTITION BY f.job_id ORDER BY {nulls_last('f.x')}) AS rank_x,
            count(f.x) OVER (PARTITION BY f.job_id) AS n
        FROM (SELECT m.job_id AS job_id, {x} AS x FROM measurements m WHERE m.phase = 'query') f
    ) ranked
    GROUP BY job_id"""


_DATASETS_0014 = """SELECT r.job_id AS job_id, count(DISTINCT r.dataset) AS datasets
    FROM runs r WHERE r.status = 'done' GROUP BY r.job_id"""

# 0014: per job, the means over its query windows of latency and output figures, energy per generated token.
_PER_JOB_EXTRA_0014 = f"""(SELECT m.job_id AS job_id, avg(m.latency_p50_s) AS latency_p50_s,
        avg(m.latency_p95_s) AS latency_p95_s, avg(m.throughput_queries_per_s) AS throughput,
        avg(m.ttft_p50_s) AS ttft_p50_s, avg(m.output_tokens_p50) AS output_p50, avg(m.output_tokens_p95) AS output_p95,
        sum(m.output_tokens) AS output_tokens,
        sum(CASE WHEN m.output_tokens IS NOT NULL THEN m.n_queries END) AS out_queries,
        sum(CASE WHEN m.output_tokens > 0 THEN {HEADLINE_KWH} END) AS out_energy, sum(m.audio_s) AS audio_s
    FROM measurements m WHERE m.phase = 'query' GROUP BY m.job_id)"""

# 0014: 0011's columns over the headline figures; the spread pools datasets, and is named so; node-wide beside.
_COLUMNS_0014 = {("kwh_per_1k_std_pooled" if name == "kwh_per_1k_std" else name): value
                 for name, value in _COLUMNS_0011.items()} | {
    "estimated_components": estimated_flags("(jw.{})"), "gpu_kwh_per_1k_mean": "jw.gpu_x",
    "node_wide_runs": "jw.node_wide", "node_kwh_per_1k_mean": "jw.node_mean_x",
    "node_energy_kwh_total": "jw.node_energy",
}


def medians_0021(dialect: str, x: str = f"{HEADLINE_KWH} {PER_1K}") -> str:
    """0014's medians of `x`, grouped by the job's sweep too."""
    if dialect == "postgresql":
        return f"""SELECT j.sweep_id AS sweep_id, m.job_id AS job_id,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY {x}) AS median_x
    FROM measurements m JOIN jobs j ON j.id = m.job_id WHERE m.phase = 'query' GROUP BY j.sweep_id, m.job_id"""
    return f"""SELECT sweep_id, job_id, {median('x', 'n', 'rank_x')} AS median_x
    FROM (
        SELECT j.sweep_id AS sweep_id, f.job_id AS job_id, f.x AS x,
            row_number() OVER (PARTITION BY f.job_id ORDER BY {nulls_last('f.x')}) AS rank_x,
            count(f.x) OVER (PARTITION BY f.job_id) AS n
        FROM (SELECT m.job_id AS job_id, {x} AS x FROM measurements m WHERE m.phase = 'query') f
        JOIN jobs j ON j.id = f.job_id
    ) ranked
    GROUP BY sweep_id, job_id"""


# 0021: the latest load window of each job, found among its sweep's load windows (the (job_id, phase) index).
_LATEST_LOAD_0021 = f"""(SELECT lj.sweep_id AS sweep_id, m.job_id AS job_id, {HEADLINE_KWH} AS energy_kwh,
        m.duration_s AS duration_s
    FROM (SELECT j.sweep_id AS sweep_id, max(lm.id) AS id FROM measurements lm JOIN jobs j ON j.id = lm.job_id
          WHERE lm.phase = 'load' GROUP BY j.sweep_id, lm.job_id) lj
    JOIN measurements m ON m.id = lj.id)"""

_PER_JOB_EXTRA_0021 = _PER_JOB_EXTRA_0014.replace(
    "(SELECT m.job_id AS job_id,", "(SELECT j.sweep_id AS sweep_id, m.job_id AS job_id,").replace(
    "FROM measurements m WHERE m.phase = 'query' GROUP BY m.job_id)",
    "FROM measurements m JOIN jobs j ON j.id = m.job_id WHERE m.phase = 'query' GROUP BY j.sweep_id, m.job_id)")


# 0029: the kept windows only (expressions.kept).
LATEST_LOAD_0029 = _LATEST_LOAD_0021.replace(f"{HEADLINE_KWH} AS energy_kwh", f"{kept(HEADLINE_KWH)} AS energy_kwh")
PER_JOB_EXTRA_0029 = _PER_JOB_EXTRA_0021.replace(
    "WHERE m.phase = 'query' GROUP BY", f"WHERE m.phase = 'query' AND {has_gpu_reading()} GROUP BY")
_COLUMNS_0029 = _COLUMNS_0014 | {"excluded_runs": "jw.excluded"}


def _v0007(dialect: str) -> str:
    body = _body(per_job_0007(dialect), _medians_0007(dialect), DATASETS_0007, NODE_LATEST_LOAD)
    return create_view("v_model_summary", _COLUMNS_0007, body)


def _v0011(dialect: str) -> str:
    medians = _medians_0007(dialect, rank_break="\n                ")
    body = _body(per_job_0007(dialect), medians, DATASETS_0007, NODE_LATEST_LOAD, _PER_JOB_EXTRA_0011)
    return create_view("v_model_summary", _COLUMNS_0011, body)


def _v0014(dialect: str) -> str:
    body = _body(per_job_0014(dialect), _medians_0014(dialect), _DATASETS_0014, LATEST_LOAD, _PER_JOB_EXTRA_0014,
                 on_sweep=False)
    return create_view("v_model_summary", _COLUMNS_0014, body)


def _v0021(dialect: str) -> str:
    body = _body(per_job_0014(dialect), medians_0021(dialect), DATASETS_0007, _LATEST_LOAD_0021,
                 _PER_JOB_EXTRA_0021, on_sweep=True)
    body = body.replace("l ON l.job_id = jw.job_id", "l ON l.job_id = jw.job_id AND l.sweep_id = jw.sweep_id")
    body = body.replace("x ON x.job_id = jw.job_id", "x ON x.job_id = jw.job_id AND x.sweep_id = jw.sweep_id")
    return create_view("v_model_summary", _COLUMNS_0014, body)


def _v0029(dialect: str) -> str:
    body = _body(per_job_0029(dialect), medians_0021(dialect, kept(f"{HEADLINE_KWH} {PER_1K}")), DATASETS_0007,
                 LATEST_LOAD_0029, PER_JOB_EXTRA_0029, on_sweep=True)
    body = body.replace("l ON l.job_id = jw.job_id", "l ON l.job_id = jw.job_id AND l.sweep_id = jw.sweep_id")
    body = body.replace("x ON x.job_id = jw.job_id", "x ON x.job_id = jw.job_id AND x.sweep_id = jw.sweep_id")
    return create_view("v_model_summary", _COLUMNS_0029, body)


# 0032: 0029's columns, read from job_figures (migrations/views/figures.py: the same per-job SELECTs, kept in step
# with the windows by triggers), so that a sweep's rows are read, not computed from every window.
_COLUMNS_0032 = {name: re.sub(r"\bl\.(energy_kwh|duration_s)", r"jw.load_\1", re.sub(r"\b(md|ds|x)\.", "jw.", value))
                 for name, value in _COLUMNS_0029.items()}


def _v0032(dialect: str) -> str:
    return create_view("v_model_summary", _COLUMNS_0032, """FROM job_figures jw
JOIN jobs j ON j.id = jw.job_id
JOIN sweeps s ON s.id = jw.sweep_id
WHERE jw.has_query = 1""")


VERSIONS = {"v_model_summary": {"0007": _v0007, "0011": _v0011, "0014": _v0014, "0021": _v0021, "0029": _v0029,
                                "0032": _v0032}}
