"""Replay a per-run trace through wattsweep's scheduling: makespan against the lower bound, and model loads.

Input: a TSV with one row per run: task, model, dataset, repetition, duration_s (bench/study_trace.tsv is a
synthetic one with the study's shape; bench/make_trace.py makes more). The trace is stored as earlier
measurements (an imported sweep), so the duration estimates come from the database as for any sweep; the
matching sweep is then built by submit's own code (scheduler.plan.submit.new_job: shards from max_unit_s, expected
durations) and stored (bench/replay_trace.py, shared by both modes). Two modes:

    python bench/replay.py bench/study_trace.tsv --simulate 64 [--join 32@0.5]
    python bench/replay.py bench/study_trace.tsv --simulate 64 --group-share 0.1 --group-size 4 [--dissolve]
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
--group-share F --group-size G (simulated mode): jobs chosen at random (bench/replay_trace.mark_groups, --group-seed)
until their GPU-seconds, G x their traced seconds, are F of the trace's need G GPUs; the N GPUs are split into
workers of G GPUs and one-GPU workers in proportion to each size's GPU-seconds (scheduler.plan.simulate.split_gpus,
as `plan --workers`), each size taking only its own jobs from its own queue (db.queue.staffing's `gpus`), and the
bound is GPU-seconds / N. --dissolve: a group worker with an empty queue, between jobs, whose size has nothing left
(no claimable unit, none held) while one-GPU jobs have claimable units becomes G one-GPU workers, as `wattsweep
worker --gpus ... --split-when-drained` does (the same check, db.queue.staffing.group_drained).
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
    mark_groups,
    read_trace,
    trace_database,
    units_for_bound,
)

# --- --simulate: the workers' own decisions (worker.process.loop) on a database, simulated time


def simulate(trace: list[TraceRun], n: int, join: tuple[int, float] | None, *, queries: int,
             max_unit_s: float, groups: dict[tuple[str, str], int] | None = None, dissolve: bool = False) -> dict:
    """`groups`: the jobs that need a group of GPUs (mark_groups); the N GPUs are then split into workers of each
    size (scheduler.plan.simulate.split_gpus), each size taking only its own jobs from its own queue. `dissolve`: a
    group worker that is drained becomes one-GPU workers, as `wattsweep worker --gpus ... --split-when-drained`
    does (the same check: db.queue.staffing.group_drained)."""
    from sqlalchemy import func, select, update

    from db.models import Job, Run, Shard, Worker
    from db.queue.leases import Lease
    from db.queue.reconcile import sweep_dispatches
    from db.queue.staffing import group_drained
    from scheduler.plan.simulate import split_gpus
    from tests.factories import make_reading
    from worker.process.loop import Execute, Load, Loaded, LoopHooks, Measured, WorkLoop
    from worker.workloads.base import WorkDone

    sessions = trace_database(trace, queries, "replay")
    messages: dict[int, deque[int]] = {1: deque()}  # group size -> its queue (job_queue(class, size))
    with sessions.begin() as session:
        sweep_id, _ = build_sweep(session, trace, queries=queries, max_unit_s=max_unit_s, gpus=groups)
        for dispatch in sweep_dispatches(session, sweep_id=sweep_id):
            messages.setdefault(dispatch.gpus, deque()).append(dispatch.job_id)
    with sessions() as session:
        traced = {(r.task, r.model, r.dataset, r.repetition): r.duration_s for r in trace}
        run_seconds = {run_id: traced[(task, model, dataset, repetition)] for run_id, task, model, dataset, repetition
                       in session.execute(select(Run.id, Job.task, Job.model, Run.dataset, Run.repetition)
                                          .join(Job).where(Job.sweep_id == sweep_id))}
        load_s = dict(session.execute(select(Job.id, Job.load_expected_s).where(Job.sweep_id == sweep_id)).all())
        units = [(run_seconds[run_id] * n_queries / queries, gpus) for run_id, n_queries, gpus in session.execute(
            select(Shard.run_id, Shard.n_queries, Job.gpus).join(Job).where(Job.sweep_id == sweep_id))]
    units_s = [seconds for seconds, _ in units]
    gpu_s: dict[int, float] = {}
    for seconds, gpus in units:
        gpu_s[gpus] = gpu_s.get(gpus, 0.0) + seconds * gpus
    bound = lower_bound_s([seconds * gpus for seconds, gpus in units], n, join)  # GPU-seconds / GPUs
    pools = split_gpus(gpu_s, n)
    now = [0.0]
    epoch = datetime.now(UTC) - timedelta(days=400)

    def transact(work):
        with sessions.begin() as session:
            return work(session)

    loops: dict[int, WorkLoop] = {}
    flows: dict[int, object] = {}
    sizes: dict[int, int] = {}  # worker -> the GPUs it holds
    idle: dict[int, deque[int]] = {size: deque() for size in messages}

    def add_worker(index: int, size: int = 1) -> None:
        lease = Lease(f"sim{index}@replay", f"token-{index}")
        with sessions.begin() as session:
            session.add(Worker(id=lease.worker_id, hostname=f"sim{index}", host_id=f"sim{index}", device="cpu",
                               hardware_class=HARDWARE_CLASS, inventory={}, token=lease.token))
        queue = messages.setdefault(size, deque())
        hooks = LoopHooks(transact=transact, send=queue.append, queue_length=lambda: len(queue),
                          clock=lambda: now[0])
        loops[index] = WorkLoop(lease=lease, hardware_class=HARDWARE_CLASS, lease_timeout_s=1e9, hooks=hooks,
                                gpus=size)
        sizes[index] = size
        idle.setdefault(size, deque()).append(index)

    events: list[tuple[float, int, int, object]] = []
    sequence = [0]
    loads = [0]
    dissolved = []  # (seconds, group worker) when a group became one-GPU workers

    def drained(index: int) -> bool:
        """The question `wattsweep worker --split-when-drained` asks between jobs (worker.process.drain): its queue
        is empty, and db.queue.staffing.group_drained says nothing is left for its size (claimable or held) while
        one-GPU jobs have claimable units."""
        size = sizes[index]
        if messages[size]:
            return False
        with sessions() as session:
            return group_drained(session, lease=loops[index].lease, hardware_class=HARDWARE_CLASS, gpus=size,
                                 lease_timeout_s=1e9)

    def dissolve_group(index: int) -> None:
        """Its GPUs become one-GPU workers, which look for work at once (as a worker that starts does)."""
        with sessions.begin() as session:
            session.execute(update(Worker).where(Worker.id == loops[index].lease.worker_id)
                            .values(stopped_reason="group dissolved into one-GPU workers"))
        dissolved.append((now[0], index))
        for _ in range(sizes[index]):
            new = max(sizes) + 1
            add_worker(new)
            loops[new].recruit_now()  # what worker.process.celery_worker does when a worker is ready

    def step(index: int, answer) -> None:
        """Resume a worker's flow; schedule the end of what it asks for, or let it take the next message."""
        try:
            request = flows[index].send(answer)
        except StopIteration:
            del flows[index]
            idle[sizes[index]].append(index)  # (wake splits it once it is drained)
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

    def dissolve_idle() -> None:
        """Idle groups (between jobs, as the real check) that are drained split; the real worker asks every
        heartbeat interval, the simulation after every event."""
        for size, waiting in idle.items():
            if size > 1:
                for index in [index for index in waiting if drained(index)]:
                    waiting.remove(index)
                    dissolve_group(index)

    def wake() -> None:
        if dissolve:
            dissolve_idle()
        while any(idle[size] and messages[size] for size in idle):
            for size, waiting in idle.items():
                while waiting and messages[size]:
                    index = waiting.popleft()
                    flows[index] = loops[index].serve(messages[size].popleft())
                    step(index, None)

    for size, count in sorted(pools.items(), reverse=True):
        for _ in range(count):
            add_worker(len(sizes), size)
    wake()
    joiners = join[0] if join else 0
    join_at = join[1] if join else None
    while events or joiners:
        if joiners and (not events or join_at <= events[0][0]):
            now[0] = max(now[0], join_at)
            for _ in range(joiners):
                index = max(sizes) + 1
                add_worker(index)
                loops[index].recruit_now()  # what worker.process.celery_worker does when a worker is ready
            joiners = 0
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
        size_of = {loop.lease.worker_id: sizes[index] for index, loop in loops.items()}
        placed = {(gpus, size_of[worker_id]) for gpus, worker_id in session.execute(  # (job's GPUs, worker's)
            select(Job.gpus, Shard.worker_id).join(Job).where(Job.sweep_id == sweep_id).distinct())}
    if left is not None:
        raise RuntimeError("the simulation ended with units left: a worker waited for a message that never came")
    return dict(makespan_s=now[0], lower_bound_s=bound, model_loads=loads[0], job_worker_pairs=pairs,
                units=len(units_s), units_measured=measured, longest_unit_s=max(units_s, default=0.0), pools=pools,
                gpu_s=gpu_s, dissolved_at_s=[at for at, _ in dissolved], placed=placed)


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
    parser.add_argument("--group-share", type=float, default=0.0, metavar="F",
                        help="--simulate: jobs holding this share of the GPU-seconds need --group-size GPUs")
    parser.add_argument("--group-size", type=int, default=4, metavar="G", help="GPUs those jobs need (default 4)")
    parser.add_argument("--group-seed", type=int, default=0, help="which jobs are marked (mark_groups)")
    parser.add_argument("--dissolve", action="store_true",
                        help="a drained group worker becomes one-GPU workers (wattsweep worker --split-when-drained)")
    args = parser.parse_args(argv)
    trace = read_trace(args.trace)
    join = parse_join(args.join)
    groups = None
    if args.group_share:
        if not args.simulate or join:
            parser.error("--group-share runs with --simulate, without --join")
        groups = mark_groups(trace, share=args.group_share, size=args.group_size, seed=args.group_seed)
    n = args.simulate or args.real
    started = time.monotonic()
    if join:  # T is a fraction of the lower bound with the first N workers
        units = units_for_bound(trace, args.queries, args.max_unit_s, args.compress if args.real else None)
        join = (join[0], join[1] * lower_bound_s(units, n, None))
    if args.simulate:
        result = simulate(trace, n, join, queries=args.queries, max_unit_s=args.max_unit_s, groups=groups,
                          dissolve=args.dissolve)
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
    if groups:
        gpu_s = result["gpu_s"]
        print(f"groups: {len(groups)} jobs need {args.group_size} GPUs, "
              f"{gpu_s.get(args.group_size, 0.0) / sum(gpu_s.values()):.3f} of the GPU-seconds; workers: "
              + " + ".join(f"{count} of {size} GPU{'s' if size > 1 else ''}"
                           for size, count in sorted(result["pools"].items()))
              + f" on {n} GPUs; lower_bound_s is GPU-seconds / GPUs (a job's seconds x its GPUs)")
        if args.dissolve:
            at = [f"{seconds / result['lower_bound_s']:.2f}" for seconds in result["dissolved_at_s"]]
            print(f"groups dissolved into one-GPU workers: {len(at)}"
                  + (f", at {', '.join(at)} x lower bound" if at else ""))
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
