"""Result views: v_runs, v_model_summary, v_task_summary, v_hardware_summary, v_sweep_progress.

Reports, exports and analysts read these, never Python loops over rows. Each
view has an explicit column list, the same on Postgres and SQLite (docs/sql.md
documents every column). Summaries cover query windows only.

Summaries are built from one aggregate per job (per model), so a task over a
million runs is one parallel pass: run-level mean and standard deviation are
combined from per-job counts, sums and sums of squared deviations (exact, no
cancellation), and the model-level figures (the study's Table 2 and the
per-task chart: mean, median, std over the models' means) come from those
rows. Medians use row_number() over sorted values (interpolated, like
percentile_cont(0.5)), which both databases have. The per-job sum of squared
deviations is var_pop * count on Postgres and a second pass around the job's
mean on SQLite, which has no variance aggregate. sqrt() needs SQLite >= 3.35
with math functions, as Python's sqlite3 has.

Frozen like every revision: a later revision that changes a view drops it and
creates it again with its full definition. On SQLite, a later revision that
rebuilds a table these views read (batch "move and copy": anything but
add_column) must drop the views first and create them again afterwards:
SQLite refuses to rename a table while a view refers to a missing one.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

VIEWS = ("v_sweep_progress", "v_hardware_summary", "v_task_summary", "v_model_summary", "v_runs")

# Components not measured on the host: CPU unless RAPL, GPU when power-sampled (or unknown), RAM always.
CPU_ESTIMATED = "m.cpu_method <> 'rapl'"
GPU_ESTIMATED = "m.gpu_method NOT IN ('none', 'nvml-energy-counter')"
ESTIMATED_ROW = (f"(CASE WHEN {CPU_ESTIMATED} THEN 'cpu, ' ELSE '' END) || "
                 f"(CASE WHEN {GPU_ESTIMATED} THEN 'gpu, ' ELSE '' END) || 'ram'")
ESTIMATED_JOBS = ("(CASE WHEN max(k.cpu_estimated) = 1 THEN 'cpu, ' ELSE '' END) || "
                  "(CASE WHEN max(k.gpu_estimated) = 1 THEN 'gpu, ' ELSE '' END) || 'ram'")
NET_KWH = "(m.energy_kwh - m.idle_energy_kwh)"
NET_PER_1K = f"({NET_KWH} * 1000.0 / NULLIF(m.n_queries, 0))"
G_PER_1K = "(m.emissions_kg * 1000000.0 / NULLIF(m.n_queries, 0))"
# The latest load window of each job (a retried job loads its model again).
LATEST_LOAD = """(SELECT job_id, energy_kwh, duration_s FROM measurements
    WHERE id IN (SELECT max(id) FROM measurements WHERE phase = 'load' GROUP BY job_id))"""
NULLS_LAST = "CASE WHEN {v} IS NULL THEN 1 ELSE 0 END, {v}"


def _median(value: str, count: str, rank: str) -> str:
    """Interpolated median from a rank (row_number over sorted values, NULLs last) and the count of non-NULLs."""
    return f"avg(CASE WHEN {rank} IN (({count} + 1) / 2, ({count} + 2) / 2) THEN {value} END)"


def _per_job(dialect: str, hardware: bool = False) -> str:
    """One row per job that has query windows: counts, sums, sum of squared deviations, extremes, totals."""
    models = ",\n        max(w.cpu_model) AS cpu_model, max(w.gpu_model) AS gpu_model" if hardware else ""
    if dialect == "postgresql":
        ss, job_mean = "var_pop(w.x) * count(w.x)", ""
    else:
        ss = "sum((w.x - w.job_mean) * (w.x - w.job_mean))"
        job_mean = ", avg(m.kwh_per_1k_queries) OVER (PARTITION BY m.job_id) AS job_mean"
    return f"""SELECT j.sweep_id AS sweep_id, j.id AS job_id, j.task AS task, j.model AS model,
        j.hardware_class AS hardware_class,
        count(*) AS runs, count(w.x) AS n_x, sum(w.x) AS sum_x, sum(w.x) / NULLIF(count(w.x), 0) AS mean_x,
        {ss} AS ss_x,
        min(w.x) AS min_x, max(w.x) AS max_x, sum(w.net_x) AS sum_net_x, count(w.net_x) AS n_net_x,
        sum(w.g_x) AS sum_g_x, count(w.g_x) AS n_g_x, sum(w.energy) AS energy, sum(w.net_energy) AS net_energy,
        count(w.idle) AS idle_runs, sum(w.duration) AS duration, sum(w.queries) AS queries,
        max(w.cpu_estimated) AS cpu_estimated, max(w.gpu_estimated) AS gpu_estimated,
        sum(w.outlier) AS outliers, sum(w.unreliable) AS unreliable{models}
    FROM (
        SELECT m.job_id AS job_id, m.kwh_per_1k_queries AS x, {NET_PER_1K} AS net_x, {G_PER_1K} AS g_x,
            m.energy_kwh AS energy, {NET_KWH} AS net_energy, m.idle_energy_kwh AS idle,
            m.duration_s AS duration, m.n_queries AS queries,
            CASE WHEN {CPU_ESTIMATED} THEN 1 ELSE 0 END AS cpu_estimated,
            CASE WHEN {GPU_ESTIMATED} THEN 1 ELSE 0 END AS gpu_estimated,
            CASE WHEN m.is_outlier THEN 1 ELSE 0 END AS outlier,
            CASE WHEN m.is_unreliable THEN 1 ELSE 0 END AS unreliable,
            m.cpu_model AS cpu_model, m.gpu_model AS gpu_model{job_mean}
        FROM measurements m
        WHERE m.phase = 'query'
    ) w
    JOIN jobs j ON j.id = w.job_id
    GROUP BY j.id, j.sweep_id, j.task, j.model, j.hardware_class"""


# Columns of a group of jobs `k` (task or hardware summary): (name, expression).
GROUP_STATS = [
    ("runs", "CAST(sum(k.runs) AS BIGINT)"),
    ("kwh_per_1k_mean", "sum(k.sum_x) / NULLIF(sum(k.n_x), 0)"),
    ("kwh_per_1k_std", "CASE WHEN sum(k.n_x) > 1 THEN "
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
    ("estimated_components", ESTIMATED_JOBS),
    ("outlier_runs", "CAST(sum(k.outliers) AS BIGINT)"),
    ("unreliable_runs", "CAST(sum(k.unreliable) AS BIGINT)"),
]


def _group_view(dialect: str, name: str, keys: list[str], lead: list[tuple[str, str]], join: str = "",
                hardware: bool = False) -> None:
    """A summary over groups of jobs: the per-job rows with window figures of their group, then aggregated."""
    group = ", ".join(f"jw.{k}" for k in keys)
    ranked = f"""SELECT jw.*,
        sum(jw.sum_x) OVER g / NULLIF(sum(jw.n_x) OVER g, 0) AS grand_mean,
        avg(jw.mean_x) OVER g AS model_mean,
        count(jw.mean_x) OVER g AS models_measured,
        row_number() OVER (PARTITION BY {group} ORDER BY {NULLS_LAST.format(v='jw.mean_x')}) AS model_rank
    FROM ({_per_job(dialect, hardware)}) jw
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
    _group_view(dialect, "v_hardware_summary", ["hardware_class", "task"], lead, hardware=True)


def _model_summary(dialect: str) -> None:
    """One row per job with query windows, with the run-level median and the datasets measured."""
    if dialect == "postgresql":
        medians = """SELECT j.sweep_id AS sweep_id, m.job_id AS job_id,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY m.kwh_per_1k_queries) AS median_x
    FROM measurements m JOIN jobs j ON j.id = m.job_id
    WHERE m.phase = 'query'
    GROUP BY j.sweep_id, m.job_id"""
    else:
        medians = f"""SELECT sweep_id, job_id, {_median('x', 'n', 'rank_x')} AS median_x
    FROM (
        SELECT j.sweep_id AS sweep_id, m.job_id AS job_id, m.kwh_per_1k_queries AS x,
            row_number() OVER (PARTITION BY m.job_id ORDER BY {NULLS_LAST.format(v='m.kwh_per_1k_queries')}) AS rank_x,
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
    }
    select = f"""SELECT {', '.join(columns.values())}
FROM ({_per_job(dialect)}) jw
JOIN jobs j ON j.id = jw.job_id
JOIN sweeps s ON s.id = jw.sweep_id
JOIN ({medians}) md ON md.job_id = jw.job_id AND md.sweep_id = jw.sweep_id
LEFT JOIN ({datasets}) ds ON ds.job_id = jw.job_id AND ds.sweep_id = jw.sweep_id
LEFT JOIN {LATEST_LOAD} l ON l.job_id = jw.job_id"""
    op.execute(f"CREATE VIEW v_model_summary ({', '.join(columns)}) AS\n{select}")


def _version(dialect: str, library: str) -> str:
    if dialect == "postgresql":
        return f"(w.inventory -> 'versions' ->> '{library}')"
    return f"json_extract(w.inventory, '$.versions.{library}')"


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
        "energy_kwh": "m.energy_kwh", "idle_energy_kwh": "m.idle_energy_kwh", "net_energy_kwh": NET_KWH,
        "cpu_energy_kwh": "m.cpu_energy_kwh", "gpu_energy_kwh": "m.gpu_energy_kwh",
        "ram_energy_kwh": "m.ram_energy_kwh", "cpu_energy_attributed_kwh": "m.cpu_energy_attributed_kwh",
        "ram_energy_attributed_kwh": "m.ram_energy_attributed_kwh", "emissions_kg": "m.emissions_kg",
        "kwh_per_1k_queries": "m.kwh_per_1k_queries", "net_kwh_per_1k_queries": NET_PER_1K,
        "g_co2e_per_1k_queries": G_PER_1K, "input_tokens": "m.input_tokens", "output_tokens": "m.output_tokens",
        "images": "m.images", "cpu_method": "m.cpu_method", "gpu_method": "m.gpu_method",
        "ram_method": "m.ram_method", "estimated_components": f"CASE WHEN m.id IS NOT NULL THEN {ESTIMATED_ROW} END",
        "cpu_model": "m.cpu_model", "gpu_model": "m.gpu_model", "gpu_count": "m.gpu_count",
        "tracking_mode": "m.tracking_mode", "codecarbon_version": "m.codecarbon_version",
        "torch_version": _version(dialect, "torch"), "transformers_version": _version(dialect, "transformers"),
        "carbon_intensity_g_per_kwh": "m.carbon_intensity_g_per_kwh",
        "carbon_intensity_source": "m.carbon_intensity_source", "is_outlier": "m.is_outlier",
        "is_unreliable": "m.is_unreliable", "flags": "m.flags", "load_energy_kwh": "l.energy_kwh",
        "load_duration_s": "l.duration_s",
    }
    select = f"""SELECT {', '.join(columns.values())}
FROM runs r
JOIN jobs j ON j.id = r.job_id
JOIN sweeps s ON s.id = j.sweep_id
LEFT JOIN measurements m ON m.run_id = r.id AND m.phase = 'query'
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
        sum(CASE WHEN m.phase = 'query' THEN m.energy_kwh END) AS query_energy,
        sum(CASE WHEN m.phase = 'load' THEN m.energy_kwh END) AS load_energy
    FROM measurements m JOIN jobs j ON j.id = m.job_id GROUP BY j.sweep_id
) mc ON mc.sweep_id = s.id"""
    op.execute(f"CREATE VIEW v_sweep_progress ({', '.join(columns)}) AS\n{select}")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    _runs(dialect)
    _model_summary(dialect)
    _task_summary(dialect)
    _hardware_summary(dialect)
    _sweep_progress()
    if dialect == "postgresql":  # covered by 0005's default privileges too; explicit for clarity
        op.execute(f"GRANT SELECT ON {', '.join(VIEWS)} TO wattsweep_reader")


def downgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
