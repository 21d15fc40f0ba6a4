"""An in-memory model of N workers draining a sweep, for `plan --workers N`: expected makespan and model loads.

It applies db.queue.policy (affinity, longest unit first, the join rule, recruits,
one join per message) to expected durations, in memory, so that planning the
whole study takes milliseconds and needs no database. bench/replay.py
--simulate instead drives the workers' own code (worker.process.loop over a real
database); the two agree on the policy because both call db.queue.policy.
"""

from __future__ import annotations

import bisect
import heapq
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from db.queue.policy import JobFacts, choose_job, recruit_target, split_s, unit_order_key


@dataclass(frozen=True)
class SimJob:
    job_id: int
    units_s: Sequence[float]  # expected (or, replayed, true) seconds of each unit
    load_s: float = 0.0
    priority_s: Sequence[float] | None = None  # what the policy believes each unit takes (default: units_s)
    split_units: bool = True  # claims may split its units (false: the sweep fixed their size, shard_queries)


@dataclass(frozen=True)
class SimResult:
    makespan_s: float
    lower_bound_s: float
    model_loads: int
    job_worker_pairs: int  # (job, worker) pairs that did work on the job

    @property
    def ratio(self) -> float:
        return self.makespan_s / self.lower_bound_s if self.lower_bound_s else 1.0


def lower_bound_s(units_s: Sequence[float], n_workers: int, join: tuple[int, float] | None = None, *,
                  divisible: bool = False) -> float:
    """max(total / N, longest unit); with M workers joining at T: max(longest, T + (total - N T) / (N + M)).

    `divisible`: the GPUs' capacity alone (total / N, or its `join` form), for schedules whose claims split units
    down to whole batches (db.queue.splitting): how long a unit is is then the scheduler's choice, not a bound.
    """
    total, longest = sum(units_s), max(units_s, default=0.0)
    bound = total / n_workers
    if join is not None and join[0] > 0 and join[1] < bound:
        bound = join[1] + (total - n_workers * join[1]) / (n_workers + join[0])
    return bound if divisible else max(bound, longest)


def simulate(jobs: Sequence[SimJob], n_workers: int, *, join: tuple[int, float] | None = None,
             split: bool = True) -> SimResult:
    """Discrete-event run of the policy; `join` = (M, T): M more workers start at T seconds.

    With `split` (as the database does), a claimed unit longer than the policy's target is split at claim time
    (db.queue.policy.split_s): the worker runs the first part, the rest goes back as a unit of its own; a part's
    true duration is its share of the unit's.
    """
    believed = {j.job_id: list(j.priority_s or j.units_s) for j in jobs}
    actual = {j.job_id: list(j.units_s) for j in jobs}
    pending = {j.job_id: sorted(range(len(j.units_s)), key=lambda i, j=j: unit_order_key(believed[j.job_id][i], i))
               for j in jobs}
    load_s = {j.job_id: j.load_s for j in jobs}
    splits = {j.job_id for j in jobs if j.split_units}
    order = sorted(jobs, key=lambda j: (-sum(believed[j.job_id]), j.job_id))
    queue: deque[int] = deque(j.job_id for j in order if j.units_s)
    staff: dict[int, set[int]] = {}
    loaded: dict[int, int | None] = {}
    joined_this: dict[int, int] = {}  # joins made under the worker's current message
    busy: dict[int, int] = {}  # worker -> job of the unit it runs
    idle: list[int] = []
    events: list[tuple[float, int, int]] = []  # (time, sequence, worker) a unit (or load) ends
    sequence = 0
    loads, pairs, end = 0, set(), 0.0

    claimable = {job_id: sum(believed[job_id]) for job_id in pending}  # kept up to date as units are claimed
    queue_s = [sum(claimable.values())]  # the whole queue's claimable work: what unit sizes follow
    working = [n_workers]

    open_jobs = {job_id for job_id, units in pending.items() if units}
    cached: dict[int, JobFacts] = {}
    changed = set(open_jobs)  # jobs whose facts moved since they were last built

    def facts(exclude_worker: int) -> list[JobFacts]:
        """Every open job's facts (a worker looking for a job is on no open job's staff: nothing to exclude)."""
        for job_id in changed:
            if job_id in open_jobs:
                cached[job_id] = JobFacts(job_id, claimable[job_id], believed[job_id][pending[job_id][0]],
                                          len(staff.get(job_id, ())), load_s[job_id])
            else:
                cached.pop(job_id, None)
        changed.clear()
        return list(cached.values())

    def start(worker: int, now: float) -> None:
        nonlocal sequence, loads
        job = loaded.get(worker)
        if job is not None and pending[job]:  # affinity
            if worker not in staff.setdefault(job, set()):
                staff[job].add(worker)
                changed.add(job)
            duration = 0.0
        else:
            if job is not None and worker in staff.get(job, ()):
                staff[job].discard(worker)
                changed.add(job)
            if joined_this.get(worker, 1) >= 1:  # no join left under this message: take the next one
                go_idle(worker)
                loaded_hint.pop(worker, None)
                return
            hint = loaded_hint.get(worker)
            known = facts(worker)
            chosen = choose_job(known, hint=hint)
            if chosen is None:
                go_idle(worker)
                return
            hint_fact = next((f for f in known if f.job_id == hint), None)
            if hint_fact is not None and hint != chosen.job_id and hint_fact.staff == 0:
                queue.append(hint)
            joined_this[worker] = 1
            job = chosen.job_id
            loaded[worker] = job
            staff.setdefault(job, set()).add(worker)
            duration = load_s[job]
            loads += 1
        unit = pending[job].pop(0)
        if split and job in splits:
            take_split(job, unit)
        claimable[job] -= believed[job][unit]
        queue_s[0] -= believed[job][unit]
        changed.add(job)
        if not pending[job]:
            open_jobs.discard(job)
        pairs.add((job, worker))
        if idle:  # a recruit only matters to a worker waiting for a message (the others recruit as they finish)
            recruit()
        busy[worker] = job
        sequence += 1
        heapq.heappush(events, (now + duration + actual[job][unit], sequence, worker))

    def take_split(job: int, unit: int) -> None:
        """Split the unit being claimed when the policy says so; its rest goes back among the job's units."""
        part = split_s(unit_s=believed[job][unit], queue_s=queue_s[0], workers=working[0])
        if part is None:
            return
        share = part / believed[job][unit]
        rest = len(believed[job])
        believed[job].append(believed[job][unit] * (1 - share))
        actual[job].append(actual[job][unit] * (1 - share))
        believed[job][unit] *= share
        actual[job][unit] *= share
        keys = [unit_order_key(believed[job][i], i) for i in pending[job]]
        pending[job].insert(bisect.bisect(keys, unit_order_key(believed[job][rest], rest)), rest)

    def recruit() -> None:
        if not queue and (target := recruit_target(staffed_facts())) is not None:
            queue.append(target.job_id)

    def go_idle(worker: int) -> None:
        """Its message is done (worker.process.celery_worker recruits then, as worker.process.loop does at the end of
        a message)."""
        idle.append(worker)
        recruit()

    def staffed_facts() -> list[JobFacts]:
        """Facts of the jobs with workers on them: all a recruit considers."""
        return [JobFacts(job_id, claimable[job_id], believed[job_id][pending[job_id][0]], len(people),
                         load_s[job_id]) for job_id, people in staff.items() if people and job_id in open_jobs]

    loaded_hint: dict[int, int] = {}

    def wake(now: float) -> None:
        while idle and queue:
            worker = idle.pop(0)
            loaded_hint[worker] = queue.popleft()
            joined_this[worker] = 0
            start(worker, now)

    workers = list(range(n_workers))
    idle.extend(workers)
    wake(0.0)
    joiners = list(range(n_workers, n_workers + (join[0] if join else 0)))
    join_at = join[1] if join else None
    while events or (joiners and join_at is not None):
        if joiners and (not events or join_at <= events[0][0]):
            idle.extend(joiners)
            working[0] += len(joiners)
            for _ in joiners:  # a worker that starts looks for a running job to share (worker.process.celery_worker)
                recruit()
            joiners = []
            wake(join_at)
            continue
        now, _, worker = heapq.heappop(events)
        end = max(end, now)
        busy.pop(worker, None)
        start(worker, now)
        wake(now)
    units = [s for j in jobs for s in j.units_s]
    return SimResult(end, lower_bound_s(units, n_workers, join), loads, len(pairs))


def split_gpus(gpu_s_by_size: dict[int, float], gpus: int) -> dict[int, int]:
    """Workers per group size for `gpus` GPUs, each pool draining its own jobs (a job needing N GPUs goes only to
    workers holding N): one worker of each size the jobs need, then each further worker to the pool with the most
    work per GPU that it fits in (`gpu_s_by_size`: the GPU-seconds of the jobs of each size). Raises ValueError
    if the GPUs cannot hold one worker of each size."""
    sizes = sorted(size for size, work in gpu_s_by_size.items() if work > 0) or [1]
    left = gpus - sum(sizes)
    if left < 0:
        raise ValueError(f"{gpus} GPUs cannot hold one worker of each size the sweep needs "
                         f"({', '.join(f'{size} GPUs' for size in sizes)})")
    split = dict.fromkeys(sizes, 1)
    while fits := [size for size in sizes if size <= left]:
        busiest = max(fits, key=lambda size: gpu_s_by_size.get(size, 0.0) / (size * split[size]))
        split[busiest] += 1
        left -= busiest
    return split


@dataclass(frozen=True)
class PoolResult:
    """`simulate_pools`: the pools' makespan (the slowest pool's) against the GPU-seconds bound."""

    makespan_s: float
    lower_bound_s: float  # GPU-seconds of all units / GPUs: no schedule of these GPUs ends sooner
    model_loads: int
    job_worker_pairs: int
    workers: dict[int, int]  # group size -> workers

    @property
    def ratio(self) -> float:
        return self.makespan_s / self.lower_bound_s if self.lower_bound_s else 1.0


def simulate_pools(jobs: Sequence[tuple[SimJob, int]], workers: dict[int, int]) -> PoolResult:
    """`simulate` per group size: jobs needing N GPUs (each `(job, N)`) drained by the `workers[N]` workers
    holding N. The bound counts each unit's GPU-seconds (its seconds x its job's GPUs) over every GPU."""
    gpus = sum(size * n for size, n in workers.items())
    gpu_s = sum(size * s for job, size in jobs for s in job.units_s)
    makespan, loads, pairs = 0.0, 0, 0
    for size, n in workers.items():
        pool = [job for job, needs in jobs if needs == size]
        if pool and n:
            result = simulate(pool, n)
            makespan, loads, pairs = max(makespan, result.makespan_s), loads + result.model_loads, \
                pairs + result.job_worker_pairs
    return PoolResult(makespan, gpu_s / gpus if gpus else 0.0, loads, pairs, dict(workers))
