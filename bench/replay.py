"""Replay a per-run trace through wattsweep's scheduling: makespan against the lower bound, and model loads.

Input: a TSV with one row per run: task, model, dataset, repetition, duration_s (bench/study_trace.tsv is a
synthetic one with the study's shape; bench/make_trace.py makes more). The trace is stored as earlier
measurements (an imported sweep), so the duration estimates come from the database as for any sweep; the
matching sweep is then built by submit's own code (scheduler.plan.submit.new_job: shards from max_unit_s, expected
durations) and stored (bench/replay_trace.py, shared by both modes). Two modes:

    python bench/replay.py bench/study_trace.tsv --simulate 64 [--join 32@0.5]
    python bench/replay.py bench/study_trace.tsv --real 8 --compress 2000 [--join 4@0.5]

--simulate N: a discrete-event simulation of N workers, each driving the workers' own decision code
(worker.process.loop.WorkLoop over db.queue.leases, db.queue.staffing and db.queue.policy, on a SQLite
database); only time is simulated: a unit takes its run's traced duration times its share of the queries, a model
load its expected load time.
--real N --compress F (bench/replay_real.py): N real worker processes (worker.process.celery_worker, the code
behind `wattsweep worker`) on Redis and Postgres; each query sleeps its share of the traced duration / F, each
load its expected load time / F.
The sleeping workload exists only in these benchmark processes (they replace the workload registry and the
dataset reader before serving); wattsweep's own tasks and `wattsweep worker` never see it, and the replayed
sweep lives in a scratch database that is dropped afterwards. Real mode also prints the measured overhead per
unit (the time between a worker's meter windows, plus how much longer a window is than the sleep it measured:
the meter's own start and stop), the bound the issue sets, 1.10 x lower bound + overhead x units / N, and where
the workers' time went (windows, gaps, loads, start-up, tail; the workers' CPU per unit).
--join M@T adds M workers at T x the lower bound. Real workers take a while to start (imports), so real mode
starts them that much before T (as long as the first N took) and also prints the bound for the moment they
were really ready.

Prints `makespan_s=`, `lower_bound_s=`, `ratio=`, `model_loads=` one per line, then details. The lower bound is
the GPUs' capacity, total work / N (with --join, its form for M more workers at T): claims split long units as the
queue drains (db.queue.splitting), so the longest unit submit made is no bound.
"""

from __future__ import annotations

import argparse
import heapq
import os
import sys
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.replay_trace import (  # noqa: E402  (the path above first)
    HARDWARE_CLASS,
    TraceRun,
    build_sweep,
    lower_bound_s,
    read_trace,
    trace_database,
    units_for_bound,
)

# --- --simulate: the workers' own decisions (worker.process.loop) on a database, simulated time


def simulate(trace: list[TraceRun], n: int, join: tuple[int, float] | None, *, queries: int,
             max_unit_s: float) -> dict:
    from sqlalchemy import func, select

    from db.models import Job, Run, Shard, Worker
    from db.queue.leases import Lease
    from db.queue.reconcile import sweep_dispatches
    from tests.factories import make_reading
    from worker.process.loop import Execute, Load, Loaded, LoopHooks, Measured, WorkLoop
    from worker.workloads.base import WorkDone

    sessions = trace_database(trace, queries, "replay")
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
        hooks = LoopHooks(transact=transact, send=messages.append, queue_length=lambda: len(messages),
                          clock=lambda: now[0])
        loops[index] = WorkLoop(lease=lease, hardware_class=HARDWARE_CLASS, lease_timeout_s=1e9, hooks=hooks)

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
            result = Measured(reading, WorkDone(queries=claim.n_queries))
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
        measured = session.scalar(select(func.count()).select_from(Shard).join(Job).where(Job.sweep_id == sweep_id))
    if left is not None:
        raise RuntimeError("the simulation ended with units left: a worker waited for a message that never came")
    return dict(makespan_s=now[0], lower_bound_s=bound, model_loads=loads[0], job_worker_pairs=pairs,
                units=len(units_s), units_measured=measured, longest_unit_s=max(units_s, default=0.0))


def parse_join(text: str | None) -> tuple[int, float] | None:
    if not text:
        return None
    count, _, at = text.partition("@")
    return int(count), float(at)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--serve-worker"]:  # a real-mode worker process (bench/replay_real.py)
        from bench.replay_real import serve_replay_worker

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
        units = units_for_bound(trace, args.queries, args.max_unit_s, args.compress if args.real else None)
        join = (join[0], join[1] * lower_bound_s(units, n, None))
    if args.simulate:
        result = simulate(trace, n, join, queries=args.queries, max_unit_s=args.max_unit_s)
    else:
        from bench.replay_real import real

        result = real(trace, n, join, compress=args.compress, queries=args.queries, max_unit_s=args.max_unit_s)
    print(f"makespan_s={result['makespan_s']:.1f}")
    print(f"lower_bound_s={result['lower_bound_s']:.1f}")
    print(f"ratio={result['makespan_s'] / result['lower_bound_s']:.4f}")
    print(f"model_loads={result['model_loads']}")
    print(f"job_worker_pairs={result['job_worker_pairs']} (loads per pair "
          f"{result['model_loads'] / max(result['job_worker_pairs'], 1):.3f}; target <= 1.2)")
    print(f"units={result['units']} workers={n}{f' + {join[0]} at {join[1]:.0f} s' if join else ''} "
          f"wall_s={time.monotonic() - started:.0f}")
    if "units_measured" in result:  # claims split units as the queue drained (db.queue.splitting)
        print(f"units_measured={result['units_measured']} (submit made {result['units']}, the longest "
              f"{result['longest_unit_s']:.0f} s; lower_bound_s is total work / workers, targets 1.05 up to 256 "
              f"workers, 1.10 at 1,024)")
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


if __name__ == "__main__":
    main(sys.argv[1:])
