"""Distributed-mode benchmarks (issue 3). Prints figures; asserts nothing.

1. submit throughput: expand, write and enqueue a sweep of 10,000 jobs / 100,000 runs (target < 10 s);
2. orchestration efficiency: 200 jobs of a calibration workload (one 0.5 s sleep per job, so CPU count does
   not limit it) over 1, 4 and 8 real `wattsweep worker` processes; efficiency = ideal makespan / measured
   (target >= 0.95 at 8 workers);
3. per-unit bookkeeping overhead with 8 workers at once: heartbeat + store + claim in Postgres, median
   (target < 10 ms).

Needs Postgres on 127.0.0.1:5432 and Redis on 127.0.0.1:6379, as the tests do. Each part uses a fresh
database and a Redis database of its own. Usage: python bench/distributed.py [submit] [efficiency] [bookkeeping]

The calibration workload is registered only in this benchmark's processes (the study's registry keeps its
ten tasks): the workers are this script started with --serve-worker, which registers it and then runs the
ordinary worker. Each worker first runs warm-up jobs (CodeCarbon's one-off hardware probe, ~1.6 s per
process) so that the makespan measures steady-state orchestration: claim, meter windows, store, ack, next.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

POSTGRES_ADMIN_URL = os.environ.get("WATTSWEEP_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("WATTSWEEP_TEST_REDIS", "redis://127.0.0.1:6379")
SLEEP_S = 0.5
CARBON = dict(country_iso_code=None, region=None, grid_intensity_g_per_kwh=100.0)


class Calibration:
    """A fixed-duration job: loading is free, the one run sleeps SLEEP_S."""

    task = "calibration"
    input_kind = "text"
    default_params: dict = {}

    def load(self, model, device, params):
        return None

    def run(self, pipeline, queries, batch_size, params):
        from worker.workloads.base import WorkDone

        time.sleep(SLEEP_S)
        return WorkDone(queries=len(queries))


def fresh_database():
    from tests.scratch_db import scratch_database

    return scratch_database(POSTGRES_ADMIN_URL, "wattsweep_bench")


@contextlib.contextmanager
def free_redis() -> Iterator[str]:
    """A Redis database nobody uses (the tests' lock key), flushed afterwards."""
    import redis

    for number in range(15, 0, -1):
        client = redis.Redis.from_url(f"{REDIS_URL}/{number}")
        if client.dbsize() == 0 and client.set("wattsweep-test-lock", "bench", nx=True, ex=3600):
            try:
                yield f"{REDIS_URL}/{number}"
            finally:
                client.flushdb()
                client.close()
            return
        client.close()
    raise RuntimeError("no free Redis database")


def submit_throughput(n_models: int = 1000, repetitions: int = 10) -> None:
    """10 tasks x 1,000 models x 1 dataset x 10 repetitions = 10,000 jobs / 100,000 runs."""
    import yaml

    from db.session import session_factory
    from scheduler.dispatch import submit_sweep
    from scheduler.spec.reading import parse_sweep
    from worker.contract.celery_app import make_app

    quickstart = yaml.safe_load((ROOT / "examples/quickstart.yaml").read_text())
    tasks = {
        task: {"models": [f"hub:bench-org/{task}-{i}" for i in range(n_models)], "datasets": body["datasets"],
               **({"params": body["params"]} if "params" in body else {})}
        for task, body in quickstart["tasks"].items()
    }
    data = {"name": "submit-bench", "hardware_class": "bench", "carbon": {"grid_intensity_g_per_kwh": 100},
            "defaults": {"queries": 1000, "repetitions": repetitions}, "tasks": tasks}
    with fresh_database() as url, free_redis() as broker:
        import redis

        sessions, app = session_factory(url), make_app(broker)
        start = time.perf_counter()
        spec = parse_sweep(data)
        done = submit_sweep(sessions, spec, app=app)
        wall_s = time.perf_counter() - start
        queued = redis.Redis.from_url(broker).llen("bench")
    print(f"submit: {done.jobs:,} jobs / {done.runs:,} runs validated, written and enqueued in {wall_s:.2f} s "
          f"({done.jobs / wall_s:,.0f} jobs/s; {queued:,} messages in Redis) - target < 10 s")


def serve_calibration_worker(queue: str, name: str) -> None:
    """Entry point of a benchmark worker process: register the calibration workload, then run the real worker."""
    from worker.workloads import WORKLOADS

    WORKLOADS["calibration"] = Calibration()
    if os.environ.get("BENCH_NO_ATTRIBUTION"):  # diagnosis only: skip shared-energy attribution
        import db.results.store

        db.results.store.attribute_shared_energy = lambda session, windows: None
    from worker.process.celery_worker import WorkerOptions, serve

    loglevel = os.environ.get("BENCH_WORKER_LOGLEVEL", "WARNING")
    sys.exit(serve(WorkerOptions(queue=queue, device="cpu", name=name, loglevel=loglevel)))


def start_workers(n: int, queue: str, env: dict, folder: Path) -> list[tuple[subprocess.Popen, Path]]:
    workers = []
    for i in range(n):
        log_path = folder / f"worker{i}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [sys.executable, __file__, "--serve-worker", queue, f"cal{i}@bench"],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=folder,
            )
        workers.append((process, log_path))
    return workers


def wait_registered(sessions, n: int, timeout_s: float = 300) -> None:
    from sqlalchemy import func, select

    from db.models import Worker

    deadline = time.monotonic() + timeout_s
    while True:
        with sessions() as session:
            if session.scalar(select(func.count()).select_from(Worker)) >= n:
                return
        if time.monotonic() > deadline:
            raise TimeoutError("workers did not start")
        time.sleep(0.2)


def run_calibration_sweep(sessions, app, queue: str, n_jobs: int, name: str) -> tuple[float, float]:
    """Insert and send `n_jobs` calibration jobs; returns (start, last finish) as epoch seconds."""
    from sqlalchemy import func, select

    from db.models import Job
    from db.queue.reconcile import mark_dispatched, sweep_dispatches
    from db.queue.sweeps import NewJob, insert_sweep
    from worker.contract.celery_app import send_job_ids

    run = dict(dataset="builtin:texts", repetition=0, n_queries=1, batch_size=1, warmup=0)
    start = time.time()
    with sessions.begin() as session:
        sweep = insert_sweep(session, name=name, spec={}, hardware_class=queue, mode="distributed", carbon=CARBON,
                             jobs=[NewJob("calibration", f"sleep-{i}", queue, {}, [run]) for i in range(n_jobs)])
        sweep_id = sweep.id
        dispatches = sweep_dispatches(session, sweep_id=sweep_id)
        mark_dispatched(session, sweep_id=sweep_id)
    send_job_ids(app, dispatches)
    while True:
        with sessions() as session:
            left = session.scalar(select(func.count()).select_from(Job)
                                  .where(Job.sweep_id == sweep_id, Job.status.in_(("queued", "running"))))
            if left == 0:
                last = session.scalar(select(func.max(Job.finished_at)).where(Job.sweep_id == sweep_id))
                return start, last.timestamp()
        time.sleep(0.05)


def orchestration_efficiency(worker_counts=(1, 4, 8), n_jobs: int = 200) -> None:
    from db.session import session_factory
    from worker.contract.celery_app import make_app

    for n in worker_counts:
        with fresh_database() as url, free_redis() as broker, tempfile.TemporaryDirectory() as folder:
            queue = f"calibration-{uuid.uuid4().hex[:6]}"
            env = {k: v for k, v in os.environ.items() if not k.startswith("WATTSWEEP_")} | {
                "WATTSWEEP_DATABASE_URL": url, "WATTSWEEP_BROKER_URL": broker,
                "WATTSWEEP_BASELINE_WINDOW_S": "0",  # the idle baseline is measurement, not orchestration
                "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
            }
            sessions, app = session_factory(url), make_app(broker)
            workers = start_workers(n, queue, env, Path(folder))
            try:
                wait_registered(sessions, n)
                run_calibration_sweep(sessions, app, queue, 2 * n, "warm-up")
                start, last = run_calibration_sweep(sessions, app, queue, n_jobs, "calibration")
            finally:
                for process, _ in workers:
                    process.send_signal(signal.SIGTERM)
                for process, _ in workers:
                    try:
                        process.wait(30)
                    except subprocess.TimeoutExpired:
                        process.kill()
        measured_s = last - start
        ideal_s = math.ceil(n_jobs / n) * SLEEP_S
        print(f"efficiency: {n} worker(s), {n_jobs} jobs of {SLEEP_S} s: makespan {measured_s:.2f} s, "
              f"ideal {ideal_s:.2f} s, efficiency {ideal_s / measured_s:.3f} (target >= 0.95 at 8), "
              f"overhead {(measured_s - ideal_s) / math.ceil(n_jobs / n) * 1000:.0f} ms per job per worker")


def _bookkeeping_worker(url: str, index: int, start_at: float, results) -> None:
    """One worker process: join a job, then per unit: heartbeat, then store + claim the next (one transaction)."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import text

    from db.queue.leases import Lease, beat
    from db.queue.staffing import join_job
    from db.queue.unit_store import store_unit
    from db.session import session_factory
    from tests.factories import make_reading
    from worker.workloads.base import WorkDone

    sessions = session_factory(url)
    lease = Lease(f"w{index}@bench", f"token-{index}")
    window_start = datetime.now(UTC) - timedelta(days=1, seconds=index * 100_000)
    times, cpu_times = [], []
    with sessions() as session:  # one transaction at a time: the pool keeps using this one connection
        backend = session.scalar(text("SELECT pg_backend_pid()"))
    server_before = process_cpu_s(backend)
    while time.time() < start_at:
        time.sleep(0.01)
    while True:
        with sessions.begin() as session:
            claim = join_job(session, lease=lease, hardware_class="cpu", lease_timeout_s=120, mode="distributed").claim
        if claim is None:
            break
        while claim is not None:
            # One worker's windows follow each other (nothing to share), as on a real worker.
            reading = make_reading(started_at=window_start, duration_s=0.9)
            window_start += timedelta(seconds=1)
            t0, c0 = time.perf_counter(), time.process_time()
            with sessions.begin() as session:
                beat(session, lease=lease, shard_id=claim.shard_id)
            with sessions.begin() as session:
                claim = store_unit(session, lease=lease, claim=claim, reading=reading,
                                   units=WorkDone(queries=4)).next
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
    results.put((times, cpu_times, process_cpu_s(backend) - server_before))


def process_cpu_s(pid: int) -> float:
    """CPU seconds a process has used (Postgres runs on this machine, as in the tests); 0 if unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bookkeeping_overhead(n_workers: int = 8, jobs_per_worker: int = 3) -> None:
    """What workers write around their units, on study-shaped jobs (3 datasets x 10 repetitions = 30 units), with
    `n_workers` processes at once: per unit a heartbeat, then the store (the lease check, the run, its window,
    shared-energy attribution, outlier flags) and the claim of the next unit, in one transaction; a join per job."""
    import multiprocessing

    from db.models import Worker
    from db.queue.sweeps import NewJob, insert_sweep
    from db.session import session_factory

    runs = [dict(dataset=f"builtin:{name}", repetition=r, n_queries=4, batch_size=1, warmup=0, expected_s=1.0)
            for name in ("texts", "reviews", "news") for r in range(10)]
    with fresh_database() as url:
        sessions = session_factory(url)
        with sessions.begin() as session:
            for index in range(n_workers):
                session.add(Worker(id=f"w{index}@bench", hostname=f"bench{index}", device="cpu", hardware_class="cpu",
                                   inventory={}, token=f"token-{index}"))
            insert_sweep(session, name="bookkeeping", spec={}, hardware_class="cpu", mode="distributed",
                         carbon=CARBON, jobs=[NewJob("fill-mask", f"m{i}", "cpu", {}, runs, load_expected_s=1e6)
                                              for i in range(n_workers * jobs_per_worker)])
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        start_at = time.time() + 8  # every process connected before the clock starts
        processes = [context.Process(target=_bookkeeping_worker, args=(url, i, start_at, results))
                     for i in range(n_workers)]
        for process in processes:
            process.start()
        per_worker = [results.get(timeout=600) for _ in processes]
        for process in processes:
            process.join(60)
    units = [t for times, _, _ in per_worker for t in times[10:]]  # each process's first units warm its pool
    cpu = [t for _, cpu_times, _ in per_worker for t in cpu_times[10:]]
    count = sum(len(times) for times, _, _ in per_worker)
    server_ms = sum(server for _, _, server in per_worker) / count * 1000
    median_ms = statistics.median(units) * 1000
    p95_ms = statistics.quantiles(units, n=20)[-1] * 1000
    client_ms = statistics.median(cpu) * 1000
    print(f"bookkeeping: per unit (heartbeat + store + claim of the next) {median_ms:.1f} ms median, p95 "
          f"{p95_ms:.1f} ms, {n_workers} workers at once, {count} units; Postgres, fsync on - target < 10 ms")
    # What the wall time is made of, whatever else the machine runs: CPU per unit in the worker and in its
    # Postgres backend. With W workers on C cores, the median cannot be below W / C x their sum while CPU-bound.
    load = os.getloadavg()[0]
    print(f"bookkeeping CPU per unit: worker {client_ms:.1f} ms median, its Postgres backend {server_ms:.1f} ms mean; "
          f"{os.cpu_count()} cores, load average {load:.1f} during the run")


def main(argv: list[str]) -> None:
    if argv[:1] == ["--serve-worker"]:
        serve_calibration_worker(argv[1], argv[2])
        return
    parts = argv or ["submit", "efficiency", "bookkeeping"]
    if "submit" in parts:
        submit_throughput()
    if "bookkeeping" in parts:
        bookkeeping_overhead()
    if "efficiency" in parts:
        orchestration_efficiency()


if __name__ == "__main__":
    main(sys.argv[1:])
