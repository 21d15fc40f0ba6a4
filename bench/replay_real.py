"""bench/replay.py --real: real worker processes on Redis and Postgres, each query sleeping its share of the trace.

The sleeping workload exists only in these benchmark processes (they replace the
workload registry and the dataset reader before serving); wattsweep's own tasks
and `wattsweep worker` never see it. The workers are started as
`bench/replay.py --serve-worker QUEUE NAME`, which calls serve_replay_worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.distributed import process_cpu_s  # one reader of /proc CPU times for both benchmarks
from bench.replay_trace import CARBON, HARDWARE_CLASS, TraceRun, build_sweep, lower_bound_s, store_trace_as_measurements

ROOT = Path(__file__).resolve().parent.parent
REPLAY_SCRIPT = ROOT / "bench" / "replay.py"  # its main() serves `--serve-worker`
POSTGRES_ADMIN_URL = os.environ.get("WATTSWEEP_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("WATTSWEEP_TEST_REDIS", "redis://127.0.0.1:6379")


class ReplayWorkload:
    """Benchmark only: sleeps what the trace says a query took (compressed); registered in bench processes only."""

    task = "replay"
    input_kind = "text"
    default_params: dict = {}

    def load(self, model, device, params):
        time.sleep(params.get("replay_load_s", 0.0))
        return model

    def run(self, pipeline, queries, batch_size, params):
        from worker.workloads.base import WorkDone

        per_query = params["replay_s_per_query"]
        time.sleep(sum(per_query[query] for query in queries))
        return WorkDone(queries=len(queries))


def serve_replay_worker(queue: str, name: str) -> None:
    """A benchmark worker process: the real worker (worker.process.celery_worker), with the sleeping workload and a
    dataset
    reader whose queries are their dataset's name (so that each knows how long to sleep)."""
    from celery import signals

    import worker.data.datasets
    import worker.workloads
    from worker.process.celery_worker import WorkerOptions, serve

    workload = ReplayWorkload()
    worker.workloads.get_workload = lambda task, multi_purpose=False: workload
    worker.data.datasets.load_queries = lambda ref, n, input_kind=None: [ref] * n

    def mark_ready(**_) -> None:  # when this worker takes work (epoch seconds): what --join's bound counts from
        Path(f"{name}.ready").write_text(f"{time.time():.3f}")

    signals.worker_ready.connect(mark_ready, weak=False)
    sys.exit(serve(WorkerOptions(queue=queue, device="cpu", name=name, loglevel="WARNING")))


def _ready_times(folder: str, indices) -> list[float]:
    """Epoch seconds at which these benchmark workers were ready (those that are)."""
    found = []
    for index in indices:
        marker = Path(folder) / f"replay{index}@bench.ready"
        if marker.exists() and marker.read_text():
            found.append(float(marker.read_text()))
    return found


def real(trace: list[TraceRun], n: int, join: tuple[int, float] | None, *, compress: float, queries: int,
         max_unit_s: float) -> dict:
    import redis
    from sqlalchemy import func, select

    from db.models import Job, Measurement, Run, Shard
    from db.queue.reconcile import mark_dispatched, sweep_dispatches
    from db.session import session_factory
    from tests.scratch_db import scratch_database
    from worker.contract.celery_app import make_app, send_job_ids

    number = _free_redis_number()
    broker = f"{REDIS_URL}/{number}"
    client = redis.Redis.from_url(broker)
    try:
        with scratch_database(POSTGRES_ADMIN_URL, "wattsweep_replay") as url, \
                tempfile.TemporaryDirectory() as folder:
            sessions, app = session_factory(url), make_app(broker)
            with sessions.begin() as session:
                store_trace_as_measurements(session, trace, queries)
            env = {k: v for k, v in os.environ.items() if not k.startswith("WATTSWEEP_")} | {
                "WATTSWEEP_DATABASE_URL": url, "WATTSWEEP_BROKER_URL": broker, "WATTSWEEP_BASELINE_WINDOW_S": "0",
                "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
            processes = []

            def start(count: int) -> None:
                for _ in range(count):
                    index = len(processes)
                    with open(Path(folder) / f"worker{index}.log", "w") as log:
                        processes.append(subprocess.Popen(
                            [sys.executable, str(REPLAY_SCRIPT), "--serve-worker", HARDWARE_CLASS,
                             f"replay{index}@bench"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=folder))

            try:
                launched = time.time()
                start(n)
                _wait(lambda: len(_ready_times(folder, range(n))) >= n, "workers to be ready", 900)
                start_up_s = max(_ready_times(folder, range(n))) - launched  # how long a worker takes to start
                _warm_up(sessions, app, n)
                with sessions.begin() as session:
                    sweep_id, jobs = build_sweep(session, trace, queries=queries, max_unit_s=max_unit_s,
                                                 compress=compress)
                    dispatches = sweep_dispatches(session, sweep_id=sweep_id)
                    mark_dispatched(session, sweep_id=sweep_id)
                units_s = [s for job in jobs for run in job.runs
                           for size, _ in run["shards"]
                           for s in [job.params["replay_s_per_query"][run["dataset"]] * size]]
                bound = lower_bound_s(units_s, n, (join[0], join[1]) if join else None)
                started, started_epoch = time.monotonic(), time.time()
                cpu_before = {process.pid: process_cpu_s(process.pid) for process in processes}
                with sessions() as session:
                    t0 = session.scalar(select(func.now()))
                send_job_ids(app, dispatches)
                joined = False

                def finished() -> bool:
                    nonlocal joined
                    # Joiners start their start-up that much early, so that they are ready at about T.
                    if join and not joined and time.monotonic() - started >= join[1] - start_up_s:
                        start(join[0])
                        joined = True
                    with sessions() as session:
                        return session.scalar(select(func.count()).select_from(Job).where(
                            Job.sweep_id == sweep_id, Job.status.in_(("queued", "running")))) == 0

                _wait(finished, "the replayed sweep", 48 * 3600)
                worker_cpu_s = sum(process_cpu_s(process.pid) - cpu_before.get(process.pid, 0.0)
                                   for process in processes)
                joined_ready = _ready_times(folder, range(n, n + join[0])) if join else []
                with sessions() as session:
                    last = session.scalar(select(func.max(Shard.finished_at)).join(Job)
                                          .where(Job.sweep_id == sweep_id))
                    loads = session.scalar(select(func.count()).select_from(Measurement).join(Job).where(
                        Job.sweep_id == sweep_id, Measurement.phase == "load"))
                    pairs = len(set(session.execute(select(Shard.job_id, Shard.worker_id).join(Job)
                                                    .where(Job.sweep_id == sweep_id)).all()))
                    windows = session.execute(
                        select(Measurement.worker_id, Measurement.started_at, Measurement.ended_at,
                               Measurement.n_queries, Job.params, Run.dataset)
                        .join(Job, Job.id == Measurement.job_id).join(Shard, Shard.id == Measurement.shard_id)
                        .join(Run, Run.id == Shard.run_id)
                        .where(Job.sweep_id == sweep_id, Measurement.phase.in_(("query", "shard")),
                               Measurement.shards.is_(None))
                        .order_by(Measurement.worker_id, Measurement.started_at)).all()
                    load_windows = session.execute(
                        select(Measurement.started_at, Measurement.ended_at)
                        .join(Job).where(Job.sweep_id == sweep_id, Measurement.phase == "load")).all()
            finally:
                for process in processes:
                    process.send_signal(signal.SIGTERM)
                for process in processes:
                    try:
                        process.wait(60)
                    except subprocess.TimeoutExpired:
                        process.kill()
    finally:
        client.flushdb()
        client.close()
    gaps = [b.started_at - a.ended_at for a, b in zip(windows, windows[1:], strict=False)
            if a.worker_id == b.worker_id]
    between_s = sum(g.total_seconds() for g in gaps) / len(gaps) if gaps else 0.0
    # A window is longer than the sleep it measured by what the meter costs (CodeCarbon's start and stop of a
    # task, read inside the window's bounds): per-unit overhead too, though inside the window.
    excess = [(w.ended_at - w.started_at).total_seconds() - w.params["replay_s_per_query"][w.dataset] * w.n_queries
              for w in windows]
    inside_s = sum(excess) / len(excess) if excess else 0.0
    overhead_s = between_s + inside_s
    result = dict(makespan_s=(last - t0).total_seconds(), lower_bound_s=bound, model_loads=loads,
                  job_worker_pairs=pairs, units=len(units_s), overhead_per_unit_s=overhead_s,
                  overhead_between_windows_s=between_s, overhead_inside_windows_s=inside_s,
                  workers=n + (join[0] if join else 0),
                  breakdown=_breakdown(windows, load_windows, t0, last, worker_cpu_s, len(units_s)))
    if join:  # the bound as the joiners really joined: when the last of them was ready
        result["joined_at_s"] = max(joined_ready) - started_epoch if joined_ready else None
        if joined_ready:
            result["lower_bound_joined_s"] = lower_bound_s(units_s, n, (join[0], result["joined_at_s"]))
            # The same bound when every unit costs its sleep plus the measured overhead per unit.
            result["lower_bound_joined_with_overhead_s"] = lower_bound_s(
                [seconds + overhead_s for seconds in units_s], n, (join[0], result["joined_at_s"]))
    return result


def _breakdown(windows, load_windows, t0, last, worker_cpu_s: float, units: int) -> dict:
    """Where the real makespan went, summed over workers: inside meter windows (sleeping the trace), in model
    loads, between windows (claims, stores, waiting for a message), and before a worker's first window or after
    its last (start-up and the tail). Plus the workers' own CPU per unit while the sweep ran."""
    per_worker: dict[str, list] = {}
    for window in windows:
        per_worker.setdefault(window.worker_id, []).append(window)
    span_s = (last - t0).total_seconds()
    inside = sum((w.ended_at - w.started_at).total_seconds() for w in windows)
    first = [(ws[0].started_at - t0).total_seconds() for ws in per_worker.values()]
    tail = [(last - ws[-1].ended_at).total_seconds() for ws in per_worker.values()]
    between = sum((ws[-1].ended_at - ws[0].started_at).total_seconds() for ws in per_worker.values()) - inside
    return dict(span_s=span_s, workers=len(per_worker), inside_windows_s=inside,
                loads_s=sum((b - a).total_seconds() for a, b in load_windows), between_windows_s=between,
                before_first_s=(sum(first), max(first, default=0.0)), after_last_s=(sum(tail), max(tail, default=0.0)),
                worker_cpu_per_unit_ms=worker_cpu_s / max(units, 1) * 1000, worker_cpu_s=worker_cpu_s)


def _free_redis_number() -> int:
    import redis

    for number in range(15, 0, -1):
        client = redis.Redis.from_url(f"{REDIS_URL}/{number}")
        if client.dbsize() == 0 and client.set("wattsweep-test-lock", "replay", nx=True, ex=24 * 3600):
            client.close()
            return number
        client.close()
    raise RuntimeError("no free Redis database")


def _wait(condition, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _warm_up(sessions, app, n: int) -> None:
    """One tiny job per worker first: CodeCarbon's one-off hardware probe is not scheduling."""
    from sqlalchemy import func, select

    from db.models import Job
    from db.queue.reconcile import sweep_dispatches
    from db.queue.sweeps import NewJob, insert_sweep
    from worker.contract.celery_app import send_job_ids

    run = dict(dataset="warm-up", repetition=0, n_queries=1, batch_size=1, warmup=0)
    with sessions.begin() as session:
        sweep = insert_sweep(session, name="warm-up", spec={}, hardware_class=HARDWARE_CLASS, mode="distributed",
                             carbon=CARBON, jobs=[NewJob("replay", f"warm-{i}", HARDWARE_CLASS,
                                                         {"replay_s_per_query": {"warm-up": 0.0}}, [run],
                                                         load_expected_s=1e9) for i in range(2 * n)])
        sweep_id = sweep.id
        dispatches = sweep_dispatches(session, sweep_id=sweep_id)
    send_job_ids(app, dispatches)

    def done() -> bool:
        with sessions() as session:
            return session.scalar(select(func.count()).select_from(Job).where(
                Job.sweep_id == sweep_id, Job.status.in_(("queued", "running")))) == 0

    _wait(done, "the warm-up jobs", 900)
