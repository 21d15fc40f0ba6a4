"""Lab scale (issue 22): submitting big sweeps, and reports and status beside a million measured runs.

Prints figures; asserts nothing. Targets on a 2-core machine: submit 100,000 runs < 5 s and 1,000,000 < 30 s;
any report or `status` of the million-run sweep < 1 s; a small sweep's report < 0.3 s whatever else the
database holds.

1. submit: 10 tasks x 1,000 models x 1 dataset x 10 repetitions through scheduler.dispatch.submit_sweep
   (validate, expand, estimate, one transaction, one message per job) into a scratch Postgres and a Redis
   database of its own: 10,000 jobs and 100,000 runs, then the same jobs with 100 repetitions, 1,000,000 runs
   (`--no-million` skips the second; the big sweep is then the first);
2. the big sweep measured: every run done with one query window and every job a load window, in SQL that
   writes the rows bench/reports.py's million-run seed writes (one worker, one idle baseline, attributed CPU
   and RAM on every window: the views' headline, idle and node-wide arithmetic all run);
3. a 20-run sweep beside it, each unit stored through the real storage path (db.queue.unit_store.store_unit);
4. for both: `wattsweep report` in each format and level, `wattsweep status`, and the per-task view
   (SELECT * FROM v_task_summary WHERE sweep_id = ...), each run twice (first, then warm).

    python bench/scale.py [--no-million]

The scratch database (about 1.3 GB with the million runs) is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.distributed import free_redis, fresh_database  # noqa: E402  (scratch Postgres, a free Redis database)

QUERY_WINDOWS = """
UPDATE runs SET status = 'done', worker_id = 'gpu0@bench', finished_at = now()
    WHERE job_id IN (SELECT id FROM jobs WHERE sweep_id = :sweep);
UPDATE shards SET status = 'done', worker_id = 'gpu0@bench', finished_at = now(), attempts = 1
    WHERE job_id IN (SELECT id FROM jobs WHERE sweep_id = :sweep);
UPDATE jobs SET status = 'done', attempts = 1, finished_at = now() WHERE sweep_id = :sweep;
INSERT INTO measurements (job_id, run_id, phase, worker_id, hostname, started_at, ended_at, duration_s, energy_kwh,
    cpu_energy_kwh, gpu_energy_kwh, ram_energy_kwh, emissions_kg, cpu_method, gpu_method, ram_method, tracking_mode,
    codecarbon_version, carbon_intensity_source, carbon_intensity_g_per_kwh, n_queries, kwh_per_1k_queries,
    idle_energy_kwh, cpu_model, gpu_model, gpu_count, cpu_energy_attributed_kwh, ram_energy_attributed_kwh,
    baseline_id, is_outlier, is_unreliable, latency_p50_s, latency_p95_s, throughput_queries_per_s)
SELECT r.job_id, r.id, 'query', 'gpu0@bench', 'bench', now(), now(), 60, e, e * 0.2, e * 0.7, e * 0.1, e * 0.2976,
    'rapl', 'nvml-energy-counter', 'codecarbon-dimm-estimate', 'machine', '3.3.2', 'explicit', 297.6, r.n_queries,
    e * 0.775 * 1000.0 / r.n_queries, e * 0.1, 'Xeon', 'A100', 1, e * 0.05, e * 0.025, 1, false, false, 0.05, 0.08,
    r.n_queries / 60.0
FROM (SELECT r.id, r.job_id, r.n_queries, 0.001 * (1 + r.job_id % 10) * (1 + random()) AS e
      FROM runs r JOIN jobs j ON j.id = r.job_id WHERE j.sweep_id = :sweep) r;
INSERT INTO measurements (job_id, run_id, phase, worker_id, hostname, started_at, ended_at, duration_s, energy_kwh,
    cpu_energy_kwh, gpu_energy_kwh, ram_energy_kwh, emissions_kg, cpu_method, gpu_method, ram_method, tracking_mode,
    codecarbon_version, carbon_intensity_source)
SELECT id, NULL, 'load', 'gpu0@bench', 'bench', now(), now(), 5, 0.0001, 0, 0.0001, 0, 0.00003, 'rapl',
    'nvml-energy-counter', 'codecarbon-dimm-estimate', 'machine', '3.3.2', 'explicit' FROM jobs WHERE sweep_id = :sweep;
"""
WORKER = """
INSERT INTO workers (id, hostname, host_id, device, hardware_class, inventory, started_at, heartbeat_at)
VALUES ('gpu0@bench', 'bench', 'bench', 'cuda:0', 'bench', '{"versions": {"torch": "2.4.1"}}', now(), now());
INSERT INTO idle_baselines (id, worker_id, hostname, measured_at, duration_s, cpu_power_w, gpu_power_w, ram_power_w,
    cpu_method, gpu_method, ram_method)
VALUES (1, 'gpu0@bench', 'bench', now(), 20, 60, 55, 20, 'rapl', 'nvml-energy-counter', 'codecarbon-dimm-estimate');
"""


def spec_data(name: str, models: int, repetitions: int = 10) -> dict:
    """10 tasks (the quickstart's datasets and params) x `models` models x 1 dataset x `repetitions`."""
    import yaml

    quickstart = yaml.safe_load((ROOT / "examples/quickstart.yaml").read_text())
    tasks = {task: {"models": [f"hub:bench-org/{name}-{task}-{i}" for i in range(models)],
                    "datasets": body["datasets"][:1], **({"params": body["params"]} if "params" in body else {})}
             for task, body in quickstart["tasks"].items()}
    return {"name": name, "hardware_class": "bench", "carbon": {"grid_intensity_g_per_kwh": 100},
            "defaults": {"queries": 100, "repetitions": repetitions, "warmup": 0}, "tasks": tasks}


def submit(sessions, app, name: str, models: int, repetitions: int = 10):
    from scheduler.dispatch import submit_sweep
    from scheduler.spec.reading import parse_sweep

    start = time.perf_counter()
    done = submit_sweep(sessions, parse_sweep(spec_data(name, models, repetitions)), app=app)
    return done, time.perf_counter() - start


def measure_in_sql(engine, sweep_id: int) -> float:
    from sqlalchemy import text

    start = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(text(QUERY_WINDOWS.replace(":sweep", str(int(sweep_id)))))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")
    return time.perf_counter() - start


def measure_for_real(sessions, sweep_id: int) -> None:
    """Every unit of the sweep claimed and stored as a worker stores it (one worker, consecutive windows)."""
    from sqlalchemy import select

    from db.models import Job
    from db.queue.leases import Lease, claim_next
    from db.queue.unit_store import store_unit
    from tests.factories import make_reading
    from worker.workloads.base import WorkDone

    lease = Lease("gpu0@bench", "bench-token")
    start = datetime.now(UTC) - timedelta(days=1)
    with sessions() as session:
        job_ids = session.scalars(select(Job.id).where(Job.sweep_id == sweep_id).order_by(Job.id)).all()
    for job_id in job_ids:
        while True:
            with sessions.begin() as session:
                claim = claim_next(session, lease=lease, job_id=job_id, lease_timeout_s=600)
                if claim is None:
                    break
                start += timedelta(seconds=70)
                store_unit(session, lease=lease, claim=claim, claim_next_unit=False,
                           reading=make_reading(0.002 * claim.n_queries / 100, 60.0, started_at=start),
                           units=WorkDone(queries=claim.n_queries))


def timed(function) -> tuple[float, float]:
    """(first, again) seconds."""
    times = []
    for _ in range(2):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times[0], times[1]


def cli(url: str, *args: str):
    from typer.testing import CliRunner

    from scheduler.cli import app

    def run() -> None:
        result = CliRunner().invoke(app, [*args, "--database-url", url])
        if result.exit_code != 0:
            raise RuntimeError(f"wattsweep {' '.join(args)}: {result.output[-500:]}") from result.exception
    return run


def reads(url: str, engine, sweep_id: int, label: str) -> None:
    from sqlalchemy import text

    def per_task() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT * FROM v_task_summary WHERE sweep_id = :s"), {"s": sweep_id}).all()

    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"wattsweep-scale-{os.getpid()}.html"
    commands = {
        "report --format json": cli(url, "report", str(sweep_id), "--format", "json"),
        "report --format csv": cli(url, "report", str(sweep_id), "--format", "csv"),
        "report --format csv --level model": cli(url, "report", str(sweep_id), "--format", "csv", "--level", "model"),
        "report --format csv --level cell": cli(url, "report", str(sweep_id), "--format", "csv", "--level", "cell"),
        "report (table)": cli(url, "report", str(sweep_id)),
        "report --format html": cli(url, "report", str(sweep_id), "--format", "html", "--out", str(out)),
        "status": cli(url, "status", str(sweep_id)),
        "SELECT * FROM v_task_summary WHERE sweep_id": per_task,
    }
    for name, function in commands.items():
        first, again = timed(function)
        print(f"  {label}: {name}: {first:.2f} s, again {again:.2f} s", flush=True)
    out.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-million", action="store_true", help="skip the 1,000,000-run submit")
    parser.add_argument("--models", type=int, default=1000, help="models per task (a smoke run: 10)")
    args = parser.parse_args()
    from db.session import get_engine, session_factory
    from worker.contract.celery_app import make_app

    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    with fresh_database() as url, free_redis() as broker:
        sessions, app, engine = session_factory(url), make_app(broker), get_engine(url)
        done, seconds = submit(sessions, app, "scale-100k", args.models)
        print(f"submit {done.runs:,} runs ({done.jobs:,} jobs): {seconds:.2f} s (target < 5 s)", flush=True)
        big = done
        if not args.no_million:
            done, seconds = submit(sessions, app, "scale-1m", args.models, repetitions=100)
            print(f"submit {done.runs:,} runs ({done.jobs:,} jobs): {seconds:.2f} s (target < 30 s)", flush=True)
            big = done
        with engine.begin() as connection:
            connection.exec_driver_sql(WORKER)
        seconds = measure_in_sql(engine, big.sweep_id)
        print(f"the {big.runs:,}-run sweep measured in SQL in {seconds:.0f} s", flush=True)
        small, _ = submit(sessions, app, "scale-small", 1, repetitions=2)
        measure_for_real(sessions, small.sweep_id)
        print(f"a {small.runs}-run sweep beside it, stored through db.queue.unit_store", flush=True)
        with engine.connect() as connection:
            size = connection.exec_driver_sql("SELECT pg_size_pretty(pg_database_size(current_database()))").scalar()
        print(f"database: {size}; load average {os.getloadavg()[0]:.1f}", flush=True)
        reads(url, engine, small.sweep_id, f"small sweep ({small.runs} runs; target < 0.3 s)")
        reads(url, engine, big.sweep_id, f"big sweep ({big.runs:,} runs; target < 1 s)")
        print(f"load average {os.getloadavg()[0]:.1f} at the end", flush=True)


if __name__ == "__main__":
    main()
