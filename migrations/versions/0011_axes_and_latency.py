"""Sweep axes and latency: a job is one cell (task, model, hardware class, axis values); runs store latency.

- jobs: one column per sweep axis (batch_size, dtype, max_new_tokens,
  num_inference_steps, height_px, width_px, reasoning) holding the cell's
  value, given or default, so that SQL can group by it; cell_key names the
  values of the axes a sweep gave as lists ("" when none) and joins the
  unique key, so one model may have several cells. Existing jobs get their
  runs' batch size.
- measurements: audio_s (seconds transcribed), latency_p50_s / latency_p95_s
  (each query's time is its batch's, measured around the batch), throughput
  (queries / window duration), ttft_p50_s (generation: first new token after
  the batch starts), output_tokens_p50 / _p95 (per query, where lengths vary).
- v_runs and v_model_summary gain those columns plus GPU-only energy per
  1,000 queries (AI Energy Score rates by it) and, per job, energy per
  generated token; the other views are created again as 0007 and 0009 define
  them (the jobs table is rebuilt on SQLite, which needs its views dropped).

On SQLite the rebuild runs with foreign keys off (migrations/env.py): dropping
the old jobs table must not cascade to its runs.

Frozen like every revision: a later one that changes these views drops them
and creates them again with their full definition (v_model_kind_summary reads
v_model_summary: drop it first).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

VIEWS = ("v_model_kind_summary", "v_sweep_progress", "v_hardware_summary", "v_task_summary", "v_model_summary",
         "v_runs")
AXES = [("batch_size", sa.Integer()), ("dtype", sa.String(length=20)), ("max_new_tokens", sa.Integer()),
        ("num_inference_steps", sa.Integer()), ("height_px", sa.Integer()), ("width_px", sa.Integer()),
        ("reasoning", sa.String(length=10))]
MEASURED = ["audio_s", "latency_p50_s", "latency_p95_s", "throughput_queries_per_s", "ttft_p50_s",
            "output_tokens_p50", "output_tokens_p95"]
OLD_KEY = "uq_jobs_sweep_id_task_model_hardware_class"
NEW_KEY = "uq_jobs_sweep_id_task_model_hardware_class_cell_key"
KEY_COLUMNS = ["sweep_id", "task", "model", "hardware_class"]


def _revision(name: str):
    """A frozen earlier revision's module, for the view definitions this one keeps unchanged."""
    path = Path(__file__).resolve().parent / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_wattsweep_revision_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Per job: the means over its query windows of the new per-run figures.
PER_JOB_EXTRA = """(SELECT job_id, avg(latency_p50_s) AS latency_p50_s, avg(latency_p95_s) AS latency_p95_s,
        avg(throughput_queries_per_s) AS throughput, avg(ttft_p50_s) AS ttft_p50_s,
        avg(output_tokens_p50) AS output_p50, avg(output_tokens_p95) AS output_p95,
        sum(output_tokens) AS output_tokens, sum(CASE WHEN output_tokens IS NOT NULL THEN n_queries END) AS out_queries,
        sum(CASE WHEN output_tokens > 0 THEN energy_kwh END) AS out_energy, sum(audio_s) AS audio_s,
        avg(gpu_energy_kwh * 1000.0 / NULLIF(n_queries, 0)) AS gpu_x
    FROM measurements WHERE phase = 'query' GROUP BY job_id)"""


def _model_summary(dialect: str, v7) -> None:
    """0007's v_model_summary, plus the cell's axes, latency, output lengths and GPU-only energy."""
    if dialect == "postgresql":
        medians = """SELECT j.sweep_id AS sweep_id, m.job_id AS job_id,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY m.kwh_per_1k_queries) AS median_x
    FROM measurements m JOIN jobs j ON j.id = m.job_id
    WHERE m.phase = 'query'
    GROUP BY j.sweep_id, m.job_id"""
    else:
        medians = f"""SELECT sweep_id, job_id, {v7._median('x', 'n', 'rank_x')} AS median_x
    FROM (
        SELECT j.sweep_id AS sweep_id, m.job_id AS job_id, m.kwh_per_1k_queries AS x,
            row_number() OVER (PARTITION BY m.job_id ORDER BY {v7.NULLS_LAST.format(v='m.kwh_per_1k_queries')})
                AS rank_x,
            count(m.kwh_per_1k_queries) OVER (PARTITION BY m.job_id) AS n
        FROM measurements m JOIN jobs j ON j.id = m.job_id
        WHERE m.phase = 'query'
    ) ranked
    GROUP BY sweep_id, job_id"""
    datasets = """SELECT j.sweep_id AS sweep_id, r.job_id AS job_id, count(DISTINCT r.dataset) AS datasets
    FROM runs r JOIN jobs j ON j.id = r.job_id
    WHERE r.status = 'done'
    GROUP BY j.sweep_id, r.job_id"""
    columns = {
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
        "estimated_components": ("(CASE WHEN jw.cpu_estimated = 1 THEN 'cpu, ' ELSE '' END) || "
                                 "(CASE WHEN jw.gpu_estimated = 1 THEN 'gpu, ' ELSE '' END) || 'ram'"),
        "outlier_runs": "jw.outliers", "unreliable_runs": "jw.unreliable",
        "load_energy_kwh": "l.energy_kwh", "load_duration_s": "l.duration_s",
        # 0011:
        "cell_key": "j.cell_key", **{name: f"j.{name}" for name, _ in AXES},
        "gpu_kwh_per_1k_mean": "x.gpu_x",
        "latency_p50_s_mean": "x.latency_p50_s", "latency_p95_s_mean": "x.latency_p95_s",
        "throughput_queries_per_s_mean": "x.throughput", "ttft_p50_s_mean": "x.ttft_p50_s",
        "output_tokens_total": "x.output_tokens",
        "output_tokens_per_query_mean": "x.output_tokens * 1.0 / NULLIF(x.out_queries, 0)",
        "output_tokens_p50_mean": "x.output_p50", "output_tokens_p95_mean": "x.output_p95",
        "kwh_per_output_token": "x.out_energy / NULLIF(x.output_tokens, 0)",
        "audio_s_total": "x.audio_s",
    }
    select = f"""SELECT {', '.join(columns.values())}
FROM ({v7._per_job(dialect)}) jw
JOIN jobs j ON j.id = jw.job_id
JOIN sweeps s ON s.id = jw.sweep_id
JOIN ({medians}) md ON md.job_id = jw.job_id AND md.sweep_id = jw.sweep_id
LEFT JOIN ({datasets}) ds ON ds.job_id = jw.job_id AND ds.sweep_id = jw.sweep_id
LEFT JOIN {v7.LATEST_LOAD} l ON l.job_id = jw.job_id
LEFT JOIN {PER_JOB_EXTRA} x ON x.job_id = jw.job_id"""
    op.execute(f"CREATE VIEW v_model_summary ({', '.join(columns)}) AS\n{select}")


def _runs(dialect: str, v7) -> None:
    """0007's v_runs, plus the cell's axes (batch_size is the run's, as before), latency and GPU-only energy."""
    columns = {
        "sweep_id": "s.id", "sweep_name": "s.name", "sweep_mode": "s.mode", "job_id": "j.id", "task": "j.task",
        "model": "j.model", "model_kind": "j.model_kind", "model_revision": "j.model_revision",
        "model_dtype": "j.model_dtype", "num_parameters": "j.num_parameters", "hardware_class": "j.hardware_class",
        "job_status": "j.status", "run_id": "r.id", "dataset": "r.dataset", "repetition": "r.repetition",
        "run_status": "r.status", "run_error": "r.error", "n_queries": "COALESCE(m.n_queries, r.n_queries)",
        "batch_size": "r.batch_size", "finished_at": "r.finished_at", "measurement_id": "m.id",
        "worker_id": "COALESCE(m.worker_id, r.worker_id)", "hostname": "COALESCE(m.hostname, w.hostname)",
        "device": "w.device", "started_at": "m.started_at", "duration_s": "m.duration_s",
        "energy_kwh": "m.energy_kwh", "idle_energy_kwh": "m.idle_energy_kwh", "net_energy_kwh": v7.NET_KWH,
        "cpu_energy_kwh": "m.cpu_energy_kwh", "gpu_energy_kwh": "m.gpu_energy_kwh",
        "ram_energy_kwh": "m.ram_energy_kwh", "cpu_energy_attributed_kwh": "m.cpu_energy_attributed_kwh",
        "ram_energy_attributed_kwh": "m.ram_energy_attributed_kwh", "emissions_kg": "m.emissions_kg",
        "kwh_per_1k_queries": "m.kwh_per_1k_queries", "net_kwh_per_1k_queries": v7.NET_PER_1K,
        "g_co2e_per_1k_queries": v7.G_PER_1K, "input_tokens": "m.input_tokens", "output_tokens": "m.output_tokens",
        "images": "m.images", "cpu_method": "m.cpu_method", "gpu_method": "m.gpu_method",
        "ram_method": "m.ram_method",
        "estimated_components": f"CASE WHEN m.id IS NOT NULL THEN {v7.ESTIMATED_ROW} END",
        "cpu_model": "m.cpu_model", "gpu_model": "m.gpu_model", "gpu_count": "m.gpu_count",
        "tracking_mode": "m.tracking_mode", "codecarbon_version": "m.codecarbon_version",
        "torch_version": v7._version(dialect, "torch"), "transformers_version": v7._version(dialect, "transformers"),
        "carbon_intensity_g_per_kwh": "m.carbon_intensity_g_per_kwh",
        "carbon_intensity_source": "m.carbon_intensity_source", "is_outlier": "m.is_outlier",
        "is_unreliable": "m.is_unreliable", "flags": "m.flags", "load_energy_kwh": "l.energy_kwh",
        "load_duration_s": "l.duration_s",
        # 0011:
        "cell_key": "j.cell_key", **{name: f"j.{name}" for name, _ in AXES if name != "batch_size"},
        "gpu_kwh_per_1k_queries": "(m.gpu_energy_kwh * 1000.0 / NULLIF(m.n_queries, 0))",
        **{name: f"m.{name}" for name in MEASURED},
    }
    select = f"""SELECT {', '.join(columns.values())}
FROM runs r
JOIN jobs j ON j.id = r.job_id
JOIN sweeps s ON s.id = j.sweep_id
LEFT JOIN measurements m ON m.run_id = r.id AND m.phase = 'query'
LEFT JOIN workers w ON w.id = COALESCE(m.worker_id, r.worker_id)
LEFT JOIN {v7.LATEST_LOAD} l ON l.job_id = j.id"""
    op.execute(f"CREATE VIEW v_runs ({', '.join(columns)}) AS\n{select}")


def _drop_views() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    v7, v9 = _revision("0007_result_views"), _revision("0009_model_kind_view")
    _drop_views()
    with op.batch_alter_table("jobs", schema=None, recreate="auto") as batch_op:
        batch_op.drop_constraint(OLD_KEY, type_="unique")
        batch_op.add_column(sa.Column("cell_key", sa.String(length=300), nullable=False, server_default=""))
        for name, column_type in AXES:
            batch_op.add_column(sa.Column(name, column_type, nullable=True))
        batch_op.create_unique_constraint(NEW_KEY, [*KEY_COLUMNS, "cell_key"])
    op.execute("UPDATE jobs SET batch_size = (SELECT max(r.batch_size) FROM runs r WHERE r.job_id = jobs.id)")
    for name in MEASURED:  # plain ADD COLUMN: no copy of the largest table
        op.add_column("measurements", sa.Column(name, sa.Float(), nullable=True))
    _runs(dialect, v7)
    _model_summary(dialect, v7)
    v7._task_summary(dialect)
    v7._hardware_summary(dialect)
    v7._sweep_progress()
    v9.upgrade()  # v_model_kind_summary, over the new v_model_summary
    if dialect == "postgresql":
        op.execute(f"GRANT SELECT ON {', '.join(VIEWS)} TO wattsweep_reader")


def downgrade() -> None:
    """Back to 0010. Fails if a sweep has several cells of one (task, model, hardware class): the old key."""
    dialect = op.get_bind().dialect.name
    v7, v9 = _revision("0007_result_views"), _revision("0009_model_kind_view")
    _drop_views()
    for name in reversed(MEASURED):
        op.drop_column("measurements", name)
    with op.batch_alter_table("jobs", schema=None, recreate="auto") as batch_op:
        batch_op.drop_constraint(NEW_KEY, type_="unique")
        for name, _ in reversed(AXES):
            batch_op.drop_column(name)
        batch_op.drop_column("cell_key")
        batch_op.create_unique_constraint(OLD_KEY, KEY_COLUMNS)
    v7.upgrade()
    v9.upgrade()
    if dialect == "postgresql":
        op.execute(f"GRANT SELECT ON {', '.join(VIEWS)} TO wattsweep_reader")
