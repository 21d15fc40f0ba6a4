"""Replay a per-run trace through wattsweep's scheduling: makespan against the lower bound, and model loads.

Input: a TSV with one row per run: task, model, dataset, repetition, duration_s (bench/study_trace.tsv is a
synthetic one with the study's shape; bench/make_trace.py makes more). The trace is stored as earlier
measurements (an imported sweep), so the duration estimates come from the database as for any sweep; the
matching sweep is then built by submit's own code (scheduler.plan.submit.new_job: shards from max_unit_s, expected
durations) and stored. Two modes:

    python bench/replay.py bench/study_trace.tsv --simulate 64 [--join 32@0.5]
    python bench/replay.py bench/study_trace.tsv --real 8 --compress 2000 [--join 4@0.5]

--simulate N: a discrete-event simulation of N workers, each driving the workers' own decision code
(worker.process.loop.WorkLoop over db.queue.leases, db.queue.staffing and db.queue.policy, on a SQLite
database); only time is simulated: a unit takes its run's traced duration times its share of the queries, a model
load its expected load time.
--real N --compress F: N real worker processes (worker.process.celery_worker, the code behind `wattsweep worker`)
on Redis
and Postgres; each query sleeps its share of the traced duration / F, each load its expected load time / F.
The sleeping workload exists only in these benchmark processes (they replace the workload registry and the
dataset reader before serving); wattsweep's own tasks and `wattsweep worker` never see it, and the replayed
sweep lives in a scratch database that is dropped afterwards. Real mode also prints the measured overhead per
unit (the time between a worker's meter windows, plus how much longer a window is than the sleep it measured:
the meter's own start and stop), the bound the issue sets, 1.10 x lower bound + overhead x units / N, and where
the workers' time went (windows, gaps, loads, start-up, tail; the workers' CPU per unit).
--join M@T adds M workers at T x the lower bound. Real workers take a while to start (imports), so real mode
starts them that much before T (as long as the first N took) and also prints the bound for the moment they
were really ready.

Prints `makespan_s=`, `lower_bound_s=`, `ratio=`, `model_loads=` one per line, then details.
"""

from __future__ import annotations

import argparse
import csv
import heapq
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.distributed import process_cpu_s  # noqa: E402  (one reader of /proc CPU times for both benchmarks)

HARDWARE_CLASS = "replay"
CARBON = dict(country_iso_code=None, region=None, grid_intensity_g_per_kwh=100.0)
POSTGRES_ADMIN_URL = os.environ.get("WATTSWEEP_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("WATTSWEEP_TEST_REDIS", "redis://127.0.0.1:6379")


@dataclass(frozen=True)
class TraceRun:
    task: str
    model: str
    dataset: str
    repetition: int
    duration_s: float


def read_trace(path: Path) -> list[TraceRun]:
    with open(path, newline="") as handle:
        return [TraceRun(row["task"], row["model"], row["dataset"], int(row["repetition"]), float(row["duration_s"]))
                for row in csv.DictReader(handle, delimiter="\t")]


def store_trace_as_measurements(session, trace: list[TraceRun], queries: int) -> None:
    """The trace as an imported sweep of earlier measurements on HARDWARE_CLASS (what estimates read)."""
    from sqlalchemy import insert

    from db.models import Job, Measurement, Run, Sweep

    now = datetime.now(UTC)
    sweep = Sweep(name="trace", spec={"mode": "imported"}, hardware_class=HARDWARE_CLASS, mode="imported")
    session.add(sweep)
    session.flush()
    jobs = {}
    for run in trace:
        if (run.task, run.model) not in jobs:
            job = Job(sweep_id=sweep.id, task=run.task, model=run.model, hardware_class=HARDWARE_CLASS, params={},
                      status="done", attempts=1, max_attempts=1)
            session.add(job)
            jobs[(run.task, run.model)] = job
    session.flush()
    run_ids = session.scalars(insert(Run).returning(Run.id, sort_by_parameter_order=True), [
        dict(job_id=jobs[(r.task, r.model)].id, dataset=r.dataset, repetition=r.repetition, n_queries=queries,
             batch_size=1, warmup=0, status="done") for r in trace]).all()
    session.execute(insert(Measurement), [
        dict(job_id=jobs[(r.task, r.model)].id, run_id=run_id, phase="query", started_at=now, ended_at=now,
             duration_s=r.duration_s, energy_kwh=0.0, cpu_energy_kwh=0.0, gpu_energy_kwh=0.0, ram_energy_kwh=0.0,
             emissions_kg=0.0, n_queries=queries, cpu_method="constant", gpu_method="none", ram_method="constant",
             tracking_mode="process", codecarbon_version="trace", carbon_intensity_source="explicit")
        for r, run_id in zip(trace, run_ids, strict=True)])


def build_sweep(session, trace: list[TraceRun], *, queries: int, max_unit_s: float, compress: float | None = None):
    """The replayed sweep, split and estimated by submit's code; returns (sweep id, its NewJobs)."""
    from db.queue.sweeps import insert_sweep
    from db.results.estimates import earlier_estimates
    from scheduler.plan.expand import PlannedJob, PlannedRun
    from scheduler.plan.submit import UnitSettings, job_estimate, new_job

    estimates = earlier_estimates(session, hardware_class=HARDWARE_CLASS)
    grouped: dict[tuple[str, str], list[TraceRun]] = {}
    for run in trace:
        grouped.setdefault((run.task, run.model), []).append(run)
    jobs = []
    for (task, model), runs in grouped.items():
        planned = PlannedJob(task, model, HARDWARE_CLASS, {},
                             tuple(PlannedRun(r.dataset, r.repetition, queries, 1, 0) for r in runs))
        estimate = job_estimate(planned, estimates, {})
        job = new_job(planned, estimate, UnitSettings(None, max_unit_s))
        if compress:  # real mode: what the benchmark's sleeping workload sleeps (benchmark processes only)
            job.params.update(replay_load_s=(job.load_expected_s or 0.0) / compress, replay_s_per_query={
                dataset: estimate.seconds_per_query(dataset) / compress for dataset in {r.dataset for r in runs}})
        jobs.append(job)
    sweep = insert_sweep(session, name="replay", spec={}, hardware_class=HARDWARE_CLASS, mode="distributed",
                         carbon=CARBON, jobs=jobs, max_attempts=3)
    return sweep.id, jobs


def lower_bound_s(units_s: list[float], n: int, join: tuple[int, float] | None) -> float:
    from scheduler.plan.simulate import lower_bound_s as bound

    return bound(units_s, n, join)


# --- --simulate: the workers' own decisions (worker.process.loop) on a database, simulated time


def simulate(trace: list[TraceRun], n: int, join: tuple[int, float] | None, *, queries: int,
             max_unit_s: float) -> dict:
    from sqlalchemy import select

    from db.migrate import upgrade
    from db.models import Job, Run, Shard, Worker
    from db.queue.leases import Lease
    from db.queue.reconcile import sweep_dispatches
    from db.session import session_factory
    from tests.factories import make_reading
    from worker.process.loop import Execute, Load, Loaded, Measured, WorkLoop
    from worker.workloads.base import WorkUnits

    folder = tempfile.mkdtemp(prefix="wattsweep-replay-")
    url = f"sqlite:///{folder}/replay.db"
    upgrade(url)
    sessions = session_factory(url)
    with sessions.begin() as session:
        store_trace_as_measurements(session, trace, queries)
    with sessions.begin() as session:
        sweep_id, _ = build_sweep(session, trace, queries=queries, max_unit_s=max_unit_s)
        messages = deque(d.job_id for d in sweep_dispatches(session, sweep_id=sweep_id))
    with sessions() as session:
        traced = {(r.task, r.model, r.dataset, r.repetition): r.duration_s for r in trace}
        run_seconds = {run_id: traced[(task, model, dataset, repetition)] for run_id, task, model, dataset, repetition
                       in session.execute(select(Run.id, Job.task, Job.model, Run.dataset, Run.repetition)
                                          .join(Job).where(Job.sweep_id == sweep_id))}
        load_s = dict(session.execute(select(Job.id, Job.load_expected_s).where(Job.sweep_id == sweep_id)).all())
        units_s = [run_seconds[run_id] * n_queries / queries for run_id, n_queries in session.execute(
            select(Shard.run_id, Shard.n_queries).join(Job).where(Job.sweep_id == sweep_id))]
    bound = lower_bound_s(units_s, n, join)
    now = [0.0]
    epoch = datetime.now(UTC) - timedelta(days=400)

    def transact(work):
        with sessions.begin() as session:
            return work(session)

    loops: dict[int, WorkLoop] = {}
    flows: dict[int, object] = {}

    def add_worker(index: int) -> None:
        lease = Lease(f"sim{index}@replay", f"token-{index}")
        with sessions.begin() as session:
            session.add(Worker(id=lease.worker_id, hostname=f"sim{index}", host_id=f"sim{index}", device="cpu",
                               hardware_class=HARDWARE_CLASS, inventory={}, token=lease.token))
        loops[index] = WorkLoop(lease=lease, hardware_class=HARDWARE_CLASS, lease_timeout_s=1e9, transact=transact,
                                send=messages.append, queue_length=lambda: len(messages), clock=lambda: now[0])

    events: list[tuple[float, int, int, object]] = []
    idle: deque[int] = deque()
    sequence = [0]
    loads = [0]

    def step(index: int, answer) -> None:
        """Resume a worker's flow; schedule the end of what it asks for, or let it take the next message."""
        try:
            request = flows[index].send(answer)
        except StopIteration:
            del flows[index]
            idle.append(index)
            return
        if isinstance(request, Load):
            loads[0] += 1
            duration, result = load_s.get(request.claim.job_id) or 0.0, Loaded()
        elif isinstance(request, Execute):
            claim = request.claim
            duration = run_seconds[claim.run_id] * claim.n_queries / claim.run_queries
            reading = make_reading(1e-6 * claim.n_queries, duration, started_at=epoch + timedelta(seconds=now[0]),
                                   is_unreliable=False, flags=None)
            result = Measured(reading, WorkUnits(queries=claim.n_queries))
        else:  # pragma: no cover
            raise TypeError(request)
        sequence[0] += 1
        heapq.heappush(events, (now[0] + duration, sequence[0], index, result))

    def wake() -> None:
        while idle and messages:
            index = idle.popleft()
            flows[index] = loops[index].serve(messages.popleft())
            step(index, None)

    for index in range(n):
        add_worker(index)
        idle.append(index)
    wake()
    joiners = list(range(n, n + (join[0] if join else 0)))
    join_at = join[1] if join else None
    while events or joiners:
        if joiners and (not events or join_at <= events[0][0]):
            now[0] = max(now[0], join_at)
            for index in joiners:
                add_worker(index)
                loops[index].recruit_now()  # what worker.process.celery_worker does when a worker is ready
                idle.append(index)
            joiners = []
            wake()
            continue
        if not events:
            break
        now[0], _, index, result = heapq.heappop(events)
        step(index, result)
        wake()
    with sessions() as session:
        left = session.scalar(select(Shard.id).join(Job).where(Job.sweep_id == sweep_id, Shard.status != "done")
                              .limit(1))
        pairs = len(set(session.execute(select(Shard.job_id, Shard.worker_id).join(Job)
                                        .where(Job.sweep_id == sweep_id)).all()))
    if left is not None:
        raise RuntimeError("the simulation ended with units left: a worker waited for a message that never came")
    return dict(makespan_s=now[0], lower_bound_s=bound, model_loads=loads[0], job_worker_pairs=pairs,
                units=len(units_s))


# --- --real: real worker processes, sleeping their share


class ReplayWorkload:
    """Benchmark only: sleeps what the trace says a query took (compressed); registered in bench processes only."""

    task = "replay"
    input_kind = "text"
    default_params: dict = {}

    def load(self, model, device, params):
        time.sleep(params.get("replay_load_s", 0.0))
        return model

    def run(self, pipeline, queries, batch_size, params):
        from worker.workloads.base import WorkUnits

        per_query = params["replay_s_per_query"]
        time.sleep(sum(per_query[query] for query in queries))
        return WorkUnits(queries=len(queries))


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
                            [sys.executable, __file__, "--serve-worker", HARDWARE_CLASS, f"replay{index}@bench"],
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


def parse_join(text: str | None) -> tuple[int, float] | None:
    if not text:
        return None
    count, _, at = text.partition("@")
    return int(count), float(at)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--serve-worker"]:
        serve_replay_worker(argv[1], argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trace", type=Path)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--simulate", type=int, metavar="N")
    mode.add_argument("--real", type=int, metavar="N")
    parser.add_argument("--compress", type=float, default=1000.0, help="real mode: time compression factor F")
    parser.add_argument("--join", metavar="M@T", help="M more workers at T x the lower bound")
    parser.add_argument("--queries", type=int, default=1000, help="queries per run (the study: 1,000)")
    parser.add_argument("--max-unit-s", type=float, default=1800.0, help="the sweep's max_unit_s")
    args = parser.parse_args(argv)
    trace = read_trace(args.trace)
    join = parse_join(args.join)
    n = args.simulate or args.real
    started = time.monotonic()
    if join:  # T is a fraction of the lower bound with the first N workers
        units = _units_for_bound(trace, args.queries, args.max_unit_s, args.compress if args.real else None)
        join = (join[0], join[1] * lower_bound_s(units, n, None))
    if args.simulate:
        result = simulate(trace, n, join, queries=args.queries, max_unit_s=args.max_unit_s)
    else:
        result = real(trace, n, join, compress=args.compress, queries=args.queries, max_unit_s=args.max_unit_s)
    print(f"makespan_s={result['makespan_s']:.1f}")
    print(f"lower_bound_s={result['lower_bound_s']:.1f}")
    print(f"ratio={result['makespan_s'] / result['lower_bound_s']:.4f}")
    print(f"model_loads={result['model_loads']}")
    print(f"job_worker_pairs={result['job_worker_pairs']} (loads per pair "
          f"{result['model_loads'] / max(result['job_worker_pairs'], 1):.3f}; target <= 1.2)")
    print(f"units={result['units']} workers={n}{f' + {join[0]} at {join[1]:.0f} s' if join else ''} "
          f"wall_s={time.monotonic() - started:.0f}")
    if "overhead_per_unit_s" in result:
        overhead = result["overhead_per_unit_s"]
        allowed = 1.10 * result["lower_bound_s"] + overhead * result["units"] / result["workers"]
        print(f"overhead_per_unit_s={overhead:.4f} ({result['overhead_between_windows_s']:.4f} between a worker's "
              f"meter windows: claim, store, loads, waits for a message; {result['overhead_inside_windows_s']:.4f} "
              f"inside them beyond the sleep: the meter's own start and stop)")
        print(f"1.10 x lower bound + overhead x units / workers = {allowed:.1f} s: makespan "
              f"{result['makespan_s'] / allowed:.3f} of that (target <= 1)")
        fair = 1.10 * (result["lower_bound_s"] + overhead * result["units"] / result["workers"])
        print(f"(read as 1.10 x (lower bound + overhead x units / workers) = {fair:.1f} s: makespan "
              f"{result['makespan_s'] / fair:.3f} of that)")
    if "breakdown" in result:
        b = result["breakdown"]
        first_sum, first_max = b["before_first_s"]
        tail_sum, tail_max = b["after_last_s"]
        print(f"where the {b['workers']} workers' {b['workers'] * b['span_s']:.0f} worker-seconds went: "
              f"meter windows {b['inside_windows_s']:.0f} s, between windows {b['between_windows_s']:.0f} s, "
              f"model loads (before or between windows) {b['loads_s']:.0f} s, before a worker's first window "
              f"{first_sum:.0f} s (max {first_max:.1f}), after its last {tail_sum:.0f} s (max {tail_max:.1f}); "
              f"worker CPU {b['worker_cpu_per_unit_ms']:.0f} ms per unit ({b['worker_cpu_s']:.0f} s); "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    if "joined_at_s" in result and result["joined_at_s"] is None:
        print("the joiners were not ready before the sweep ended: they took no part (a trace too short for --join)")
    if result.get("lower_bound_joined_s"):
        joined_bound = result["lower_bound_joined_s"]
        print(f"joiners ready at {result['joined_at_s']:.1f} s (asked for {join[1]:.1f} s): lower bound as they "
              f"joined {joined_bound:.1f} s, ratio {result['makespan_s'] / joined_bound:.4f}")
        with_overhead = result["lower_bound_joined_with_overhead_s"]
        allowed = 1.10 * joined_bound + (with_overhead - joined_bound)  # as without --join: overhead not x 1.10
        print(f"lower bound as they joined with each unit costing its sleep + overhead_per_unit_s: "
              f"{with_overhead:.1f} s, makespan {result['makespan_s'] / with_overhead:.4f} of that; 1.10 x lower "
              f"bound as they joined + the overhead's share = {allowed:.1f} s: makespan "
              f"{result['makespan_s'] / allowed:.3f} of that (target <= 1)")


def _units_for_bound(trace, queries: int, max_unit_s: float, compress: float | None) -> list[float]:
    """The unit durations the lower bound is taken over, before the sweep exists (for --join's T)."""
    from db.migrate import upgrade
    from db.session import session_factory

    folder = tempfile.mkdtemp(prefix="wattsweep-replay-bound-")
    url = f"sqlite:///{folder}/bound.db"
    upgrade(url)
    sessions = session_factory(url)
    with sessions.begin() as session:
        store_trace_as_measurements(session, trace, queries)
        _, jobs = build_sweep(session, trace, queries=queries, max_unit_s=max_unit_s, compress=compress)
    traced = {(r.task, r.model, r.dataset, r.repetition): r.duration_s for r in trace}
    if compress:
        return [job.params["replay_s_per_query"][run["dataset"]] * size
                for job in jobs for run in job.runs for size, _ in run["shards"]]
    return [traced[(job.task, job.model, run["dataset"], run["repetition"])] * size / queries
            for job in jobs for run in job.runs for size, _ in run["shards"]]


if __name__ == "__main__":
    main(sys.argv[1:])
