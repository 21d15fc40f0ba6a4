"""Reading the result views (migrations 0014 and 0018, over 0007, 0009 and 0011; v_decode: 0016; v_serving and
v_serving_cells: 0020; their SQL is in migrations/views): their columns and types, and the queries reports make.

Energy is the headline everywhere (a window's own: pinned GPU + attributed CPU and RAM, db.results.stats.headline_kwh);
the node-wide readings are the `node_*` columns. Every aggregate is computed by the database in a view; Python
only reads the rows (one per task, model or run). Column types are declared here so that
SQLite returns the same Python values as Postgres (datetimes, booleans).
docs/sql.md documents each column.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Float, String, text
from sqlalchemy.orm import Session

INT, F, S, B, T = BigInteger(), Float(), String(), Boolean(), DateTime(timezone=True)

_GROUP_STATS = {
    "runs": INT, "kwh_per_1k_mean": F, "kwh_per_1k_std_pooled": F, "kwh_per_1k_min": F, "kwh_per_1k_max": F,
    "kwh_per_1k_model_mean": F, "kwh_per_1k_model_median": F, "kwh_per_1k_model_std": F,
    "net_kwh_per_1k_mean": F, "g_co2e_per_1k_mean": F, "energy_kwh_total": F, "net_energy_kwh_total": F,
    "idle_measured_runs": INT, "duration_s_total": F, "queries_total": INT, "estimated_components": S,
    "outlier_runs": INT, "unreliable_runs": INT,
    # 0014: runs whose headline is node-wide (nothing attributed), and the node-wide figures (the study's)
    "node_wide_runs": INT, "node_kwh_per_1k_mean": F, "node_kwh_per_1k_model_mean": F,
    "node_kwh_per_1k_model_std": F, "node_energy_kwh_total": F,
    "excluded_runs": INT,  # 0029: windows with no GPU reading (gpu-energy-zero), kept out of every figure
}

VIEW_COLUMNS: dict[str, dict[str, Any]] = {
    "v_runs": {
        "sweep_id": INT, "sweep_name": S, "sweep_mode": S, "job_id": INT, "task": S, "model": S, "model_kind": S,
        "model_revision": S, "model_dtype": S, "num_parameters": INT, "hardware_class": S, "job_status": S,
        "run_id": INT, "dataset": S, "repetition": INT, "run_status": S, "run_error": S, "n_queries": INT,
        "batch_size": INT, "finished_at": T, "measurement_id": INT, "worker_id": S, "hostname": S, "device": S,
        "started_at": T, "duration_s": F, "energy_kwh": F, "idle_energy_kwh": F, "net_energy_kwh": F,
        "cpu_energy_kwh": F, "gpu_energy_kwh": F, "ram_energy_kwh": F, "emissions_kg": F, "kwh_per_1k_queries": F,
        "net_kwh_per_1k_queries": F,
        "g_co2e_per_1k_queries": F, "input_tokens": INT, "output_tokens": INT, "images": INT, "cpu_method": S,
        "gpu_method": S, "ram_method": S, "estimated_components": S, "cpu_model": S, "gpu_model": S,
        "gpu_count": INT, "tracking_mode": S, "codecarbon_version": S, "torch_version": S,
        "transformers_version": S, "carbon_intensity_g_per_kwh": F, "carbon_intensity_source": S,
        "is_outlier": B, "is_unreliable": B, "flags": S, "load_energy_kwh": F, "load_duration_s": F,
        # 0011: the cell's axes, GPU-only energy, latency
        "cell_key": S, "dtype": S, "max_new_tokens": INT, "num_inference_steps": INT, "height_px": INT,
        "width_px": INT, "reasoning": S, "gpu_kwh_per_1k_queries": F, "audio_s": F, "latency_p50_s": F,
        "latency_p95_s": F, "throughput_queries_per_s": F, "ttft_p50_s": F, "output_tokens_p50": F,
        "output_tokens_p95": F,
        # 0014: what the headline is made of, co-location, and the node-wide readings
        "energy_basis": S, "host_id": S, "max_concurrent_windows": INT, "shards": INT, "node_energy_kwh": F,
        "node_cpu_energy_kwh": F, "node_ram_energy_kwh": F, "node_idle_energy_kwh": F, "node_emissions_kg": F,
        "node_kwh_per_1k_queries": F,
        # 0024: every stored provenance column (issue 18)
        "pue": F, "cpu_tdp_w": F, "gpu_uuid": S, "codecarbon_warnings": S, "country_iso_code": S, "region": S,
        "cpu_count": INT, "ram_total_gb": F, "baseline_id": INT, "ended_at": T, "cpu_utilization_pct": F,
        "gpu_utilization_pct": F, "ram_utilization_pct": F, "gpu_temperature_start_c": F,
        "gpu_sm_clock_start_mhz": F, "gpu_power_limit_start_w": F, "gpu_throttle_start": INT,
        "gpu_temperature_end_c": F, "gpu_sm_clock_end_mhz": F, "gpu_power_limit_end_w": F, "gpu_throttle_end": INT,
        "float32_matmul_precision": S, "tf32_matmul": B, "tf32_cudnn": B,
        # 0031: the GPUs as the job ran on them (issue 21)
        "gpus": INT, "quantization_method": S, "quantization_bits": INT, "power_limit_w": F, "power_limit_set_w": F,
        "power_limit_read_w": F, "gpu_energies": S,
    },
    "v_model_summary": {
        "sweep_id": INT, "sweep_name": S, "job_id": INT, "task": S, "model": S, "model_kind": S, "hardware_class": S,
        "num_parameters": INT, "job_status": S, "datasets": INT, "runs": INT, "kwh_per_1k_mean": F,
        "kwh_per_1k_median": F, "kwh_per_1k_std_pooled": F, "kwh_per_1k_min": F, "kwh_per_1k_max": F,
        "net_kwh_per_1k_mean": F, "g_co2e_per_1k_mean": F, "energy_kwh_total": F, "net_energy_kwh_total": F,
        "idle_measured_runs": INT, "duration_s_total": F, "queries_total": INT, "estimated_components": S,
        "outlier_runs": INT, "unreliable_runs": INT, "load_energy_kwh": F, "load_duration_s": F,
        # 0011: the cell's axes, GPU-only energy, latency, output lengths
        "cell_key": S, "batch_size": INT, "dtype": S, "max_new_tokens": INT, "num_inference_steps": INT,
        "height_px": INT, "width_px": INT, "reasoning": S, "gpu_kwh_per_1k_mean": F, "latency_p50_s_mean": F,
        "latency_p95_s_mean": F, "throughput_queries_per_s_mean": F, "ttft_p50_s_mean": F,
        "output_tokens_total": INT, "output_tokens_per_query_mean": F, "output_tokens_p50_mean": F,
        "output_tokens_p95_mean": F, "kwh_per_output_token": F, "audio_s_total": F,
        "node_wide_runs": INT, "node_kwh_per_1k_mean": F, "node_energy_kwh_total": F,  # 0014
        "excluded_runs": INT,  # 0029
    },
    "v_task_summary": {"sweep_id": INT, "sweep_name": S, "hardware_class": S, "task": S, "models": INT} | _GROUP_STATS,
    "v_hardware_summary": {
        "hardware_class": S, "task": S, "sweeps": INT, "models": INT, "cpu_model": S, "gpu_model": S,
    } | _GROUP_STATS,
    "v_model_kind_summary": {
        "sweep_id": INT, "sweep_name": S, "task": S, "model_kind": S, "models": INT, "runs": INT,
        "kwh_per_1k_model_mean": F, "kwh_per_1k_model_median": F, "kwh_per_1k_model_min": F,
        "kwh_per_1k_model_max": F, "g_co2e_per_1k_model_mean": F, "node_kwh_per_1k_model_mean": F,
    },
    "v_decode": {  # 0016: runs with a prefill window
        "sweep_id": INT, "job_id": INT, "task": S, "model": S, "hardware_class": S, "cell_key": S,
        "max_new_tokens": INT, "run_id": INT, "dataset": S, "repetition": INT, "n_queries": INT,
        "query_energy_kwh": F, "prefill_energy_kwh": F, "decode_energy_kwh": F, "decode_gpu_energy_kwh": F,
        "decode_tokens": INT, "kwh_per_decode_token": F, "gpu_kwh_per_decode_token": F,
        "prefill_kwh_per_1k_queries": F, "is_unreliable": B,
    },
    "v_sweep_progress": {
        "sweep_id": INT, "sweep_name": S, "mode": S, "hardware_class": S, "created_at": T, "cancelled": B,
        "jobs_total": INT, "jobs_queued": INT, "jobs_running": INT, "jobs_done": INT, "jobs_failed": INT,
        "jobs_cancelled": INT, "runs_total": INT, "runs_pending": INT, "runs_done": INT, "runs_failed": INT,
        "pct_runs_done": F, "first_run_finished_at": T, "last_run_finished_at": T, "query_energy_kwh_total": F,
        "load_energy_kwh_total": F, "node_query_energy_kwh_total": F,
    },
    "v_cell_summary": {  # 0014: one row per (job, dataset), the repetitions of one cell
        "sweep_id": INT, "sweep_name": S, "job_id": INT, "task": S, "model": S, "model_kind": S, "cell_key": S,
        "hardware_class": S, "dataset": S, "runs": INT, "kwh_per_1k_mean": F, "kwh_per_1k_std": F,
        "kwh_per_1k_ci95_low": F, "kwh_per_1k_ci95_high": F, "kwh_per_1k_cv": F, "t_975": F, "kwh_per_1k_min": F,
        "kwh_per_1k_max": F, "net_kwh_per_1k_mean": F, "g_co2e_per_1k_mean": F, "gpu_kwh_per_1k_mean": F,
        "node_kwh_per_1k_mean": F, "node_wide_runs": INT, "outlier_runs": INT, "unreliable_runs": INT,
        "estimated_components": S, "excluded_runs": INT,  # 0029
    },
    # 0020: served runs (worker/engines) and their cells
    "v_serving": {
        "sweep_id": INT, "job_id": INT, "task": S, "model": S, "hardware_class": S, "cell_key": S, "engine": S,
        "engine_version": S, "max_new_tokens": INT, "concurrency": INT, "request_rate": F, "run_id": INT,
        "dataset": S, "repetition": INT, "measurement_id": INT, "worker_id": S, "duration_s": F, "energy_kwh": F,
        "requests": INT, "failed_requests": INT, "input_tokens": INT, "output_tokens": INT, "steady_started_at": T,
        "steady_ended_at": T, "steady_duration_s": F, "steady_energy_kwh": F, "steady_output_tokens": F,
        "steady_requests": F, "kwh_per_output_token": F, "kwh_per_request": F, "steady_share": F, "ttft_p50_s": F,
        "ttft_p90_s": F, "ttft_p99_s": F, "itl_p50_s": F, "itl_p90_s": F, "itl_p99_s": F, "tpot_p50_s": F,
        "e2e_p50_s": F, "e2e_p99_s": F, "throughput_output_tokens_per_s": F, "client_ttft_mean_s": F,
        "engine_ttft_mean_s": F, "client_itl_mean_s": F, "engine_itl_mean_s": F, "client_e2e_mean_s": F,
        "engine_e2e_mean_s": F, "preemptions": F, "kv_cache_peak": F, "engine_load_mean": F, "serving_flags": S,
        "flags": S, "is_unreliable": B,
    },
    "v_serving_cells": {
        "sweep_id": INT, "job_id": INT, "task": S, "model": S, "hardware_class": S, "cell_key": S, "engine": S,
        "engine_version": S, "max_new_tokens": INT, "concurrency": INT, "request_rate": F, "runs": INT,
        "steady_runs": INT, "kwh_per_output_token": F, "kwh_per_request": F, "itl_p99_s": F, "ttft_p50_s": F,
        "e2e_p50_s": F, "throughput_output_tokens_per_s": F, "steady_share": F, "requests": INT,
        "output_tokens": INT, "excluded_runs": INT,  # 0029
    },
}


def _query(view: str, where: str = "", order: str = "", columns: list[str] | None = None):
    types = VIEW_COLUMNS[view]
    names = columns or list(types)
    sql = f"SELECT {', '.join(names)} FROM {view}" + (f" WHERE {where}" if where else "")
    sql += f" ORDER BY {order}" if order else ""
    return text(sql).columns(**{name: types[name] for name in names})


def _rows(session: Session, statement, **params) -> list[dict[str, Any]]:
    """Every row as a dict, fetched at once (a 10,000-model sweep's rows one fetch at a time, each through
    Row._mapping, cost more than the query).

    Postgres: read in the binary protocol (a float arrives as its 8 bytes, not as text to parse: a 10,000-model
    sweep's rows load in half the time), through psycopg's own cursor; then the declared type's result processor,
    the one SQLAlchemy would apply, on the few columns that have one (a `numeric` read as Float), so that the
    values are those SQLAlchemy returns."""
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name != "postgresql":
        result = connection.execute(statement, params)
        keys = list(result.keys())
        return [dict(zip(keys, row, strict=True)) for row in result.all()]
    compiled = statement.compile(dialect=dialect)
    with connection.connection.driver_connection.cursor(binary=True) as cursor:
        cursor.execute(str(compiled), compiled.construct_params(params))
        keys = [column.name for column in cursor.description]
        types = {column.name: column.type for column in statement.selected_columns}
        processors = [(key, processor) for key, column in zip(keys, cursor.description, strict=True)
                      if (processor := types[key].dialect_impl(dialect).result_processor(dialect, column.type_code))]
        rows = [dict(zip(keys, row, strict=True)) for row in cursor.fetchall()]
    for key, processor in processors:
        for row in rows:
            row[key] = processor(row[key])
    return rows


def task_rows(session: Session, *, sweep_id: int) -> list[dict[str, Any]]:
    """Per-task summary of a sweep, cheapest task first (by the median over its models)."""
    return _rows(session, _query("v_task_summary", "sweep_id = :sweep_id",
                                 "kwh_per_1k_model_median, task"), sweep_id=sweep_id)


def model_rows(session: Session, *, sweep_id: int) -> list[dict[str, Any]]:
    """Per-model (per-job) summary of a sweep, by task then energy."""
    return _rows(session, _query("v_model_summary", "sweep_id = :sweep_id", "task, kwh_per_1k_mean, model, cell_key"),
                 sweep_id=sweep_id)


def model_kind_rows(session: Session, *, sweep_id: int) -> list[dict[str, Any]]:
    """Per (task, model kind) of a sweep: the models' energy, task-specific and multi-purpose side by side."""
    return _rows(session, _query("v_model_kind_summary", "sweep_id = :sweep_id", "task, model_kind"),
                 sweep_id=sweep_id)


def cell_rows(session: Session, *, sweep_id: int) -> list[dict[str, Any]]:
    """Per (task, model [axis cell], dataset) of a sweep: the repetition statistics, by task then energy."""
    return _rows(session, _query("v_cell_summary", "sweep_id = :sweep_id",
                                 "task, kwh_per_1k_mean, model, cell_key, dataset"), sweep_id=sweep_id)


def cell_count(session: Session, *, sweep_id: int) -> int:
    """How many rows cell_rows would return (the terminal report lists them only up to a limit)."""
    return session.execute(text("SELECT count(*) FROM v_cell_summary WHERE sweep_id = :sweep_id"),
                           {"sweep_id": sweep_id}).scalar_one()


def model_count(session: Session, *, sweep_id: int) -> int:
    """How many rows model_rows would return."""
    return session.execute(text("SELECT count(*) FROM v_model_summary WHERE sweep_id = :sweep_id"),
                           {"sweep_id": sweep_id}).scalar_one()


def hardware_rows(session: Session) -> list[dict[str, Any]]:
    return _rows(session, _query("v_hardware_summary", order="hardware_class, task"))


def progress_row(session: Session, *, sweep_id: int) -> dict[str, Any] | None:
    rows = _rows(session, _query("v_sweep_progress", "sweep_id = :sweep_id"), sweep_id=sweep_id)
    return rows[0] if rows else None


def decode_rows(session: Session, *, sweep_id: int) -> list[dict[str, Any]]:
    """Prefill and decode energy per run of a sweep (runs measured with `measure_prefill`)."""
    return _rows(session, _query("v_decode", "sweep_id = :sweep_id", "job_id, dataset, repetition"),
                 sweep_id=sweep_id)


def run_rows(session: Session, *, sweep_id: int, batch_size: int = 5000) -> Iterator[list[dict[str, Any]]]:
    """The flat runs view of a sweep in batches (streamed: a million runs never sit in memory at once)."""
    statement = _query("v_runs", "sweep_id = :sweep_id", "job_id, dataset, repetition")
    result = session.execute(statement.execution_options(yield_per=batch_size), {"sweep_id": sweep_id})
    for partition in result.partitions(batch_size):
        yield [dict(row._mapping) for row in partition]


def serving_rows(session: Session, *, sweep_id: int, batch_size: int = 5000) -> Iterator[list[dict[str, Any]]]:
    """The served runs of a sweep (v_serving), in batches as run_rows."""
    statement = _query("v_serving", "sweep_id = :sweep_id", "job_id, dataset, repetition")
    result = session.execute(statement.execution_options(yield_per=batch_size), {"sweep_id": sweep_id})
    for partition in result.partitions(batch_size):
        yield [dict(row._mapping) for row in partition]


def serving_cell_rows(session: Session, *, sweep_id: int) -> list[dict[str, Any]]:
    """Per served cell of a sweep: energy per output token and latency at each load (model, then load)."""
    return _rows(session, _query("v_serving_cells", "sweep_id = :sweep_id",
                                 "model, engine, concurrency, request_rate, job_id"), sweep_id=sweep_id)


PROVENANCE_COLUMNS = ["worker_id", "hostname", "device", "cpu_model", "gpu_model", "gpu_count", "cpu_method",
                      "gpu_method", "ram_method", "tracking_mode", "codecarbon_version", "torch_version",
                      "transformers_version", "carbon_intensity_source"]


def provenance_rows(session: Session, *, sweep_id: int) -> list[dict[str, Any]]:
    """Distinct measurement set-ups of a sweep's runs: hardware, versions, how each component was measured.

    The same rows as grouping v_runs (its query windows) by PROVENANCE_COLUMNS, read from job_setups (0032): each
    job's query windows grouped by worker and set-up, kept in step with the windows (migrations/views/figures.py;
    the run's worker stands in for a window that names none, as in v_runs). A million-run sweep has a handful of
    set-ups per job: its jobs' rows are summed per worker and set-up first, and only those few sums are joined to
    `workers` (whose inventory JSON is parsed for the versions once per set-up, not once per job); no window is read.
    """
    types = VIEW_COLUMNS["v_runs"]
    keys = ", ".join(PROVENANCE_COLUMNS)
    window_keys = ["cpu_model", "gpu_model", "gpu_count", "cpu_method", "gpu_method", "ram_method", "tracking_mode",
                   "codecarbon_version", "carbon_intensity_source"]
    setup = ", ".join(f"g.{name}" for name in ["worker_id", "hostname", *window_keys])
    outer = {
        "worker_id": "g.worker_id", "hostname": "COALESCE(g.hostname, w.hostname)", "device": "w.device",
        **{name: f"g.{name}" for name in window_keys},
        "torch_version": _version_of(session, "torch"), "transformers_version": _version_of(session, "transformers"),
    }
    statement = text(
        f"SELECT {', '.join(f'{value} AS {name}' for name, value in outer.items())}, "
        f"CAST(sum(g.runs) AS BIGINT) AS runs, min(g.intensity_min) AS intensity_min, "
        f"max(g.intensity_max) AS intensity_max "
        f"FROM (SELECT {setup}, sum(g.runs) AS runs, min(g.intensity_min) AS intensity_min, "
        f"max(g.intensity_max) AS intensity_max "
        f"FROM job_setups g JOIN jobs j ON j.id = g.job_id WHERE j.sweep_id = :sweep_id GROUP BY {setup}) g "
        f"LEFT JOIN workers w ON w.id = g.worker_id "
        f"GROUP BY {', '.join(value for value in outer.values())} ORDER BY runs DESC, {keys}"
    ).columns(**{name: types[name] for name in PROVENANCE_COLUMNS}, runs=INT, intensity_min=F, intensity_max=F)
    return _rows(session, statement, sweep_id=sweep_id)


def _version_of(session: Session, library: str) -> str:
    """A library's version from the worker's inventory, as v_runs reads it (migrations.views.expressions)."""
    if session.get_bind().dialect.name == "postgresql":
        return f"(w.inventory -> 'versions' ->> '{library}')"
    return f"json_extract(w.inventory, '$.versions.{library}')"


def compare_rows(session: Session, *, sweep_a: int, sweep_b: int) -> list[dict[str, Any]]:
    """Per (task, model, sweep-axis cell) in both sweeps: the two headline kWh per 1,000 queries and their ratio
    B / A, with the node-wide figures beside them (`node_wide_runs`: runs of either with no attributed share)."""
    statement = text("""
        SELECT a.task AS task, a.model AS model, a.cell_key AS cell_key, a.hardware_class AS hardware_a,
            b.hardware_class AS hardware_b,
            a.runs AS runs_a, b.runs AS runs_b, a.kwh_per_1k_mean AS kwh_per_1k_a, b.kwh_per_1k_mean AS kwh_per_1k_b,
            b.kwh_per_1k_mean / NULLIF(a.kwh_per_1k_mean, 0) AS ratio,
            a.node_kwh_per_1k_mean AS node_kwh_per_1k_a, b.node_kwh_per_1k_mean AS node_kwh_per_1k_b,
            a.node_wide_runs + b.node_wide_runs AS node_wide_runs
        FROM v_model_summary a
        JOIN v_model_summary b ON b.task = a.task AND b.model = a.model AND b.cell_key = a.cell_key
        WHERE a.sweep_id = :a AND b.sweep_id = :b
        ORDER BY a.task, a.model, a.hardware_class, b.hardware_class
    """).columns(task=S, model=S, cell_key=S, hardware_a=S, hardware_b=S, runs_a=INT, runs_b=INT, kwh_per_1k_a=F,
                 kwh_per_1k_b=F, ratio=F, node_kwh_per_1k_a=F, node_kwh_per_1k_b=F, node_wide_runs=INT)
    return _rows(session, statement, a=sweep_a, b=sweep_b)


def unmatched_models(session: Session, *, sweep_a: int, sweep_b: int) -> tuple[int, int]:
    """How many (task, model) pairs only one of the two sweeps measured: (only in A, only in B)."""
    statement = text("""
        SELECT
            (SELECT count(*) FROM v_model_summary a WHERE a.sweep_id = :a AND NOT EXISTS (
                SELECT 1 FROM v_model_summary b WHERE b.sweep_id = :b AND b.task = a.task AND b.model = a.model
                    AND b.cell_key = a.cell_key)),
            (SELECT count(*) FROM v_model_summary b WHERE b.sweep_id = :b AND NOT EXISTS (
                SELECT 1 FROM v_model_summary a WHERE a.sweep_id = :a AND a.task = b.task AND a.model = b.model
                    AND a.cell_key = b.cell_key))
    """)
    only_a, only_b = session.execute(statement, {"a": sweep_a, "b": sweep_b}).one()
    return int(only_a), int(only_b)
