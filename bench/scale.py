"""Lab scale (issue 22): submitting big sweeps, and reports and status beside a million measured runs.

Prints figures; asserts nothing. Targets on a 2-core machine: submit 100,000 runs < 5 s and 1,000,000 < 30 s;
any report or `status` of the million-run sweep < 1 s; a small sweep's report < 0.3 s whatever else the
database holds.

1. submit: 10 tasks x 1,000 models x 1 dataset x 10 repetitions through scheduler.dispatch.submit_sweep
   (validate, expand, estimate, one transaction, one message per job) into a scratch Postgres and a Redis
   database of its own: 10,000 jobs and 100,000 runs, then the same jobs with 100 repetitions, 1,000,000 runs
   (`--no-million` skips the second; the big sweep is then the first);
2. the big sweep measured: every run done with one query window and every job a load window, in SQL that
   writes what the real storage path writes for that shape (one worker, one idle baseline, attributed CPU and
   RAM on every window: the views' headline, idle and node-wide arithmetic all run; checked column by column
   against the real path by tests/db/test_scale_bench_mirrors_storage.py);
3. a 20-run sweep beside it, each job joined, its load window and each unit stored through the real storage
   path (db.queue.staffing.join_job, db.results.store.record_load, db.queue.unit_store.store_unit);
4. for both: `wattsweep report` in each format and level, `wattsweep status`, and the per-task view
   (SELECT * FROM v_task_summary WHERE sweep_id = ...), each run twice (first, then warm).

    python bench/scale.py [--no-million] [--submit-only [--repeat N]]

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
UPDATE shards SET status = 'done', worker_id = 'gpu0@bench', lease_worker_id = 'gpu0@bench', progress_at = now(),
    finished_at = now(), attempts = 1
    WHERE job_id IN (SELECT id FROM jobs WHERE sweep_id = :sweep);
UPDATE jobs SET status = 'done', attempts = 1, started_at = now(), finished_at = now() WHERE sweep_id = :sweep;
INSERT INTO measurements (job_id, run_id, shard_id, phase, worker_id, hostname, host_id, started_at, ended_at,
    duration_s, energy_kwh, cpu_energy_kwh, gpu_energy_kwh, ram_energy_kwh, cpu_power_w, gpu_power_w, ram_power_w,
    emissions_kg, cpu_utilization_pct, ram_utilization_pct, cpu_method, gpu_method, ram_method, tracking_mode,
    codecarbon_version, carbon_intensity_source, carbon_intensity_g_per_kwh, pue, n_queries, batch_size,
    kwh_per_1k_queries, baseline_id, idle_energy_kwh, idle_cpu_energy_kwh, idle_gpu_energy_kwh, idle_ram_energy_kwh,
    cpu_model, cpu_count, gpu_model, gpu_count, ram_total_gb, cpu_energy_attributed_kwh, ram_energy_attributed_kwh,
    max_concurrent_windows, is_outlier, is_unreliable, latency_p50_s, latency_p95_s, throughput_queries_per_s)
SELECT r.job_id, r.id, r.shard_id, 'query', 'gpu0@bench', 'bench', 'bench', now(), now() + interval '60 s',
    60, e, e * 0.2, e * 0.7, e * 0.1, e * 12000, e * 42000, e * 6000,
    e * 0.2976, 50, 10, 'rapl', 'nvml-energy-counter', 'codecarbon-dimm-estimate', 'machine',
    '3.3.2', 'explicit', 297.6, 1.0, r.n_queries, r.batch_size,
    e * 1000.0 / r.n_queries, 1, 0.00225, 0.001, 0.055 / 60, 0.02 / 60,
    'Xeon', 2, 'A100', 1, 24, e * 0.2, e * 0.1,
    1, false, false, 0.05, 0.08, r.n_queries / 60.0
FROM (SELECT r.id, r.job_id, r.n_queries, r.batch_size, sh.id AS shard_id,
             0.001 * (1 + r.job_id % 10) * (1 + random()) AS e
      FROM runs r JOIN jobs j ON j.id = r.job_id JOIN shards sh ON sh.run_id = r.id WHERE j.sweep_id = :sweep) r;
INSERT INTO measurements (job_id, run_id, phase, worker_id, hostname, host_id, started_at, ended_at, duration_s,
    energy_kwh, cpu_energy_kwh, gpu_energy_kwh, ram_energy_kwh, cpu_power_w, gpu_power_w, ram_power_w, emissions_kg,
    cpu_utilization_pct, ram_utilization_pct, cpu_method, gpu_method, ram_method, tracking_mode, codecarbon_version,
    carbon_intensity_source, carbon_intensity_g_per_kwh, pue, baseline_id, idle_energy_kwh, idle_cpu_energy_kwh,
    idle_gpu_energy_kwh, idle_ram_energy_kwh, cpu_model, cpu_count, gpu_model, gpu_count, ram_total_gb,
    cpu_energy_attributed_kwh, ram_energy_attributed_kwh, max_concurrent_windows, is_outlier, is_unreliable)
SELECT id, NULL, 'load', 'gpu0@bench', 'bench', 'bench', now(), now() + interval '5 s', 5,
    0.0001, 0.00002, 0.00007, 0.00001, 14.4, 50.4, 7.2, 0.00002976,
    50, 10, 'rapl', 'nvml-energy-counter', 'codecarbon-dimm-estimate', 'machine', '3.3.2',
    'explicit', 297.6, 1.0, 1, 0.0001875, 0.3 / 3600, 0.275 / 3600, 0.1 / 3600, 'Xeon', 2, 'A100', 1, 24,
    0.00002, 0.00001, 1, false, false
FROM jobs WHERE sweep_id = :sweep;
"""
BASELINE_ID = 1  # the bench worker's idle baseline (WORKER)
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
        # one bulk load, and at its commit the summaries of every job of the sweep (migration 0032's triggers):
        # minutes for a million windows, past the sessions' statement timeout
        connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
        connection.execute(text(QUERY_WINDOWS.replace(":sweep", str(int(sweep_id)))))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")
    return time.perf_counter() - start


def bench_reading(energy_kwh: float, duration_s: float, started_at: datetime):
    """A GPU node's reading as the fast path's SQL writes it: RAPL CPU, the GPU's energy counter, an A100."""
    from tests.factories import make_reading

    return make_reading(energy_kwh, duration_s, started_at=started_at, cpu_energy_kwh=energy_kwh * 0.2,
                        gpu_energy_kwh=energy_kwh * 0.7, ram_energy_kwh=energy_kwh * 0.1,
                        emissions_kg=energy_kwh * 0.2976, cpu_method="rapl", gpu_method="nvml-energy-counter",
                        cpu_model="Xeon", gpu_model="A100", gpu_count=1, codecarbon_version="3.3.2",
                        carbon_intensity_g_per_kwh=297.6)


def _timing():
    from worker.workloads.base import BatchTiming

    return BatchTiming(batch_s=(0.05,) * 50 + (0.08,) * 50, batch_queries=(1,) * 100)


def measure_for_real(sessions, sweep_id: int) -> None:
    """Every unit of the sweep stored as a worker stores it (one worker, consecutive windows): it joins each job
    (db.queue.staffing), stores the model's load window, then each unit under its lease (db.queue.unit_store)."""
    from sqlalchemy import select

    from db.models import Job
    from db.queue.leases import Lease
    from db.queue.staffing import join_job
    from db.queue.unit_store import store_unit
    from db.results.store import record_load
    from worker.workloads.base import WorkDone

    lease = Lease("gpu0@bench", "bench-token")
    start = datetime.now(UTC) - timedelta(days=1)
    timing = _timing()  # 100 queries of batch 1: p50 0.05 s, p95 0.08 s, as the fast path's
    with sessions() as session:
        job_ids = session.scalars(select(Job.id).where(Job.sweep_id == sweep_id).order_by(Job.id)).all()
    for job_id in job_ids:
        with sessions.begin() as session:
            claim = join_job(session, lease=lease, hardware_class="bench", lease_timeout_s=600, mode=None,
                             only_job_id=job_id).claim
            record_load(session, job_id=job_id, worker_id=lease.worker_id,
                        reading=bench_reading(0.0001, 5.0, start), baseline_id=BASELINE_ID)
            start += timedelta(seconds=10)  # windows one after another, 5 s apart: no two overlap
        while claim is not None:  # each store leases the job's next unit (affinity), as a worker's does
            with sessions.begin() as session:
                claim = store_unit(session, lease=lease, claim=claim, baseline_id=BASELINE_ID, lease_timeout_s=600,
                                   reading=bench_reading(0.002 * claim.n_queries / 100, 60.0, start),
                                   units=WorkDone(queries=claim.n_queries, timing=timing)).next
                start += timedelta(seconds=65)


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


def submits_only(args) -> None:
    """Each submit `--repeat` times, each in a database of its own (empty, as a lab's first big sweep finds it).

    Besides the wall time, the CPU seconds of this process and of the database's backends (read from /proc where
    Postgres runs on this machine): on a shared machine those stay when the wall time does not."""
    from sqlalchemy import event

    from db.session import get_engine, session_factory
    from worker.contract.celery_app import make_app

    sizes = [(10, "< 5 s")] + ([] if args.no_million else [(100, "< 30 s")])
    for repetitions, target in sizes:
        for _ in range(args.repeat):
            with fresh_database() as url, free_redis() as broker:
                get_engine(url).dispose()  # new connections, each a backend counted from its start
                backends: list[int] = []
                event.listen(get_engine(url), "connect",
                             lambda dbapi, _, pids=backends: pids.append(dbapi.info.backend_pid))
                load, cpu = os.getloadavg()[0], time.process_time()
                done, seconds = submit(session_factory(url), make_app(broker), "scale", args.models, repetitions)
                cpu, server = time.process_time() - cpu, _backends_cpu_s(backends)
                where = f", database {server:.2f} s" if server is not None else ""
                print(f"submit {done.runs:,} runs ({done.jobs:,} jobs): {seconds:.2f} s (target {target}; "
                      f"load average {load:.1f} before; CPU: this process {cpu:.2f} s{where})", flush=True)


def _backends_cpu_s(pids: list[int]) -> float | None:
    """CPU seconds the database backends `pids` used so far (None unless each is a process on this machine)."""
    try:
        fields = [Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split() for pid in pids]
    except OSError:
        return None
    return sum(int(f[11]) + int(f[12]) for f in fields) / os.sysconf("SC_CLK_TCK") if fields else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-million", action="store_true", help="skip the 1,000,000-run submit")
    parser.add_argument("--models", type=int, default=1000, help="models per task (a smoke run: 10)")
    parser.add_argument("--submit-only", action="store_true",
                        help="time the submits (each --repeat times, in a fresh database) and stop: no measured runs")
    parser.add_argument("--repeat", type=int, default=1, help="with --submit-only: how many times to time each submit")
    args = parser.parse_args()
    from db.session import get_engine, session_factory
    from worker.contract.celery_app import make_app

    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    if args.submit_only:
        submits_only(args)
        return
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
