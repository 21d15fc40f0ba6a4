"""Result benchmarks (issue: views, report, import). Prints figures; asserts nothing.

1. v_task_summary over 1,000,000 runs on Postgres, seeded here with generate_series (target: < 1 s), with the
   headline's attributed CPU and RAM set on every window and an idle baseline (the views' headline, idle and
   node-wide arithmetic all run); v_model_summary, v_cell_summary and v_sweep_progress beside it;
2. the HTML report of a 10,000-run sweep (targets: < 5 s, < 3 MB);
3. importing 10,000 CodeCarbon CSV rows (target: < 10 s).

Postgres: WATTSWEEP_TEST_POSTGRES (default postgres@127.0.0.1:5432, trust auth);
each run creates a scratch database and drops it.
"""

from __future__ import annotations

import csv
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.results_data seeds the report sweep
ADMIN_URL = os.environ.get("WATTSWEEP_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TASKS = ("text-classification", "question-answering", "fill-mask", "token-classification", "image-classification",
         "object-detection", "text-generation", "summarization", "image-to-text", "text-to-image")

SEED_1M = """
INSERT INTO sweeps (id, name, spec, hardware_class, mode, grid_intensity_g_per_kwh, cancelled, created_at)
VALUES (1, 'bench-1m', '{}', 'a100', 'distributed', 297.6, false, now());
INSERT INTO workers (id, hostname, device, hardware_class, inventory, started_at, heartbeat_at)
VALUES ('gpu0@bench', 'bench', 'cuda:0', 'a100', '{"versions": {"torch": "2.4.1"}}', now(), now());
INSERT INTO idle_baselines (id, worker_id, hostname, measured_at, duration_s, cpu_power_w, gpu_power_w, ram_power_w,
    cpu_method, gpu_method, ram_method)
VALUES (1, 'gpu0@bench', 'bench', now(), 20, 60, 55, 20, 'rapl', 'nvml-energy-counter', 'codecarbon-dimm-estimate');
INSERT INTO jobs (id, sweep_id, task, model, hardware_class, params, status, attempts, max_attempts, created_at,
                  num_parameters)
SELECT g, 1, (ARRAY[:tasks])[1 + (g - 1) % 10], 'hub:org/model-' || g, 'a100', '{}', 'done', 1, 3, now(), 1000000 * g
FROM generate_series(1, :jobs) g;
INSERT INTO runs (id, job_id, dataset, repetition, n_queries, batch_size, warmup, status, worker_id, finished_at)
SELECT (j - 1) * :per_job + k, j, 'dataset-' || (k % 3), k / 3, 1000, 1, 10, 'done', 'gpu0@bench', now()
FROM generate_series(1, :jobs) j, generate_series(1, :per_job) k;
INSERT INTO measurements (job_id, run_id, phase, worker_id, hostname, started_at, duration_s, energy_kwh,
    cpu_energy_kwh, gpu_energy_kwh, ram_energy_kwh, emissions_kg, cpu_method, gpu_method, ram_method, tracking_mode,
    codecarbon_version, carbon_intensity_source, n_queries, kwh_per_1k_queries, idle_energy_kwh, cpu_model, gpu_model,
    cpu_energy_attributed_kwh, ram_energy_attributed_kwh, baseline_id)
SELECT r.job_id, r.id, 'query', 'gpu0@bench', 'bench', now(), 60, e, e * 0.2, e * 0.7, e * 0.1, e * 0.2976, 'rapl',
    'nvml-energy-counter', 'codecarbon-dimm-estimate', 'machine', '3.3.2', 'explicit', 1000, e * 0.775, e * 0.1,
    'Xeon', 'A100', e * 0.05, e * 0.025, 1
FROM (SELECT id, job_id, 0.001 * (1 + job_id % 10) * (1 + random()) AS e FROM runs) r;
INSERT INTO measurements (job_id, run_id, phase, worker_id, started_at, duration_s, energy_kwh, cpu_energy_kwh,
    gpu_energy_kwh, ram_energy_kwh, emissions_kg, cpu_method, gpu_method, ram_method, tracking_mode,
    codecarbon_version, carbon_intensity_source)
SELECT id, NULL, 'load', 'gpu0@bench', now(), 5, 0.0001, 0, 0.0001, 0, 0.00003, 'rapl', 'nvml-energy-counter',
    'codecarbon-dimm-estimate', 'machine', '3.3.2', 'explicit' FROM jobs;
"""


def scratch_postgres():
    from tests.scratch_db import scratch_database

    return scratch_database(ADMIN_URL, "wattsweep_bench")


def timed(function, repeat: int = 5) -> tuple[float, float]:
    """(first, median of the rest) seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times[0], statistics.median(times[1:])


def task_summary_1m(jobs: int = 1000, per_job: int = 1000) -> None:
    from db.session import get_engine

    with scratch_postgres() as url:
        engine = get_engine(url)
        start = time.perf_counter()
        sql = SEED_1M.replace(":tasks", ", ".join(f"'{t}'" for t in TASKS)).replace(":jobs", str(jobs))
        raw = engine.raw_connection()  # plain psycopg: the seed has no parameters and uses the % operator
        try:
            raw.cursor().execute(sql.replace(":per_job", str(per_job)))
            raw.commit()
        finally:
            raw.close()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
        seed_s = time.perf_counter() - start
        with engine.connect() as connection:
            runs = connection.execute(text("SELECT count(*) FROM measurements WHERE phase = 'query'")).scalar()

            def query(view: str):
                return lambda: connection.execute(text(f"SELECT * FROM {view} WHERE sweep_id = 1")).all()

            first, warm = timed(query("v_task_summary"))
            model_first, model_warm = timed(query("v_model_summary"), repeat=3)
            cell_first, cell_warm = timed(query("v_cell_summary"), repeat=3)
            progress_first, progress_warm = timed(query("v_sweep_progress"), repeat=3)
    print(f"v_task_summary over {runs:,} runs (Postgres, seeded in {seed_s:.0f} s): first {first:.2f} s, "
          f"warm median {warm:.2f} s (target < 1 s)")
    print(f"  for comparison: v_model_summary {model_first:.2f} s / {model_warm:.2f} s, "
          f"v_cell_summary {cell_first:.2f} s / {cell_warm:.2f} s, "
          f"v_sweep_progress {progress_first:.2f} s / {progress_warm:.2f} s")


def html_report_10k(database: str = "sqlite") -> None:
    from db.migrate import upgrade
    from db.models import Sweep
    from db.session import session_factory
    from scheduler.report.data import ReportOptions, gather
    from scheduler.report.render import render
    from tests.results_data import SeedModel, seed_sweep

    def run(url: str) -> None:
        import random

        random.seed(5)
        models = [SeedModel(task, f"hub:org/{task}-model-{m}",
                            [0.001 * (1 + i) * random.lognormvariate(0, 0.3) for _ in range(100)],
                            kind="multi-purpose" if m >= 8 else "task-specific", num_parameters=10**7 * (m + 1),
                            datasets=["a", "b", "c"])
                  for i, task in enumerate(TASKS) for m in range(10)]
        sessions = session_factory(url)
        with sessions.begin() as session:
            sweep_id = seed_sweep(session, name="bench-10k", models=models)
        start = time.perf_counter()
        with sessions() as session:
            html = render(gather(session, session.get(Sweep, sweep_id), ReportOptions()), "html")
        seconds = time.perf_counter() - start
        size = len(html.encode())
        print(f"HTML report, 10,000-run sweep ({database}, 100 models): {seconds:.2f} s, {size / 1e6:.2f} MB "
              "(targets < 5 s, < 3 MB)")

    if database == "postgres":
        with scratch_postgres() as url:
            run(url)
    else:
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/bench.db"
            upgrade(url)
            run(url)


CODECARBON_3_HEADER = [
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions", "emissions_rate", "cpu_power",
    "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed", "water_consumed",
    "country_name", "country_iso_code", "region", "cloud_provider", "cloud_region", "os", "python_version",
    "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude", "latitude",
    "ram_total_size", "tracking_mode", "cpu_utilization_percent", "gpu_utilization_percent",
    "ram_utilization_percent", "ram_used_gb", "on_cloud", "pue", "wue",
]


def import_10k(database: str = "sqlite", rows: int = 10_000) -> None:
    from typer.testing import CliRunner

    from db.migrate import upgrade
    from scheduler.cli import app

    def run(url: str, folder: str) -> None:
        path = Path(folder) / "emissions.csv"
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(CODECARBON_3_HEADER)
            for i in range(rows):
                e = 0.002 * (1 + (i % 7) / 10)
                writer.writerow(["2024-05-01T10:00:00", f"org/model-{i % 50}", uuid.uuid4(), "x", 60.0, e * 0.3,
                                 0.0001, 100.0, 250.0, 30.0, e * 0.2, e * 0.7, e * 0.1, e, 0.0, "United States",
                                 "USA", "oregon", "", "", "Linux", "3.11.7", "3.3.2", 64, "Xeon", 1,
                                 "1 x NVIDIA A100-SXM4-80GB", "", "", 512.0, "machine", 50.0, 90.0, 20.0, 100.0,
                                 "N", 1.0, 0.0])
        start = time.perf_counter()
        result = CliRunner().invoke(app, ["import", "codecarbon", str(path), "--task", "text-classification",
                                          "--queries", "1000", "--database-url", url])
        seconds = time.perf_counter() - start
        assert result.exit_code == 0, result.output
        print(f"import of {rows:,} CodeCarbon rows ({database}): {seconds:.2f} s (target < 10 s)")

    with tempfile.TemporaryDirectory() as folder:
        if database == "postgres":
            with scratch_postgres() as url:
                run(url, folder)
        else:
            url = f"sqlite:///{folder}/bench.db"
            upgrade(url)
            run(url, folder)


if __name__ == "__main__":
    task_summary_1m()
    for database in ("sqlite", "postgres"):
        html_report_10k(database)
        import_10k(database)
