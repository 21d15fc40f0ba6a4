"""The trace bench/replay.py replays, and the sweep built from it: shared by its simulated and real modes.

A trace is a TSV with one row per run: task, model, dataset, repetition,
duration_s. It is stored as earlier measurements (an imported sweep) on
HARDWARE_CLASS, so that the replayed sweep is split and estimated by submit's
own code, as any sweep is.
"""

from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HARDWARE_CLASS = "replay"
CARBON = dict(country_iso_code=None, region=None, grid_intensity_g_per_kwh=100.0)



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


def build_sweep(session, trace: list[TraceRun], *, queries: int, max_unit_s: float, compress: float | None = None,
                gpus: dict[tuple[str, str], int] | None = None):
    """The replayed sweep, split and estimated by submit's code; returns (sweep id, its NewJobs). `gpus`: the
    GPUs of the (task, model) jobs that need more than one (`mark_groups`)."""
    from db.queue.sweeps import GroupedRuns, insert_sweep, run_groups
    from db.results.estimates import earlier_estimates
    from scheduler.plan.expand import PlannedJob
    from scheduler.plan.submit import UnitSettings, job_estimate, new_job

    estimates = earlier_estimates(session, hardware_class=HARDWARE_CLASS)
    grouped: dict[tuple[str, str], list[TraceRun]] = {}
    for run in trace:
        grouped.setdefault((run.task, run.model), []).append(run)
    jobs = []
    for (task, model), runs in grouped.items():
        planned = PlannedJob(task, model, HARDWARE_CLASS, {},
                             GroupedRuns(run_groups(dict(dataset=r.dataset, repetition=r.repetition, n_queries=queries,
                                                         batch_size=1, warmup=0) for r in runs)),
                             gpus=(gpus or {}).get((task, model), 1))
        estimate = job_estimate(planned, estimates, {})
        job = new_job(planned, estimate, UnitSettings(None, max_unit_s))
        if compress:  # real mode: what the benchmark's sleeping workload sleeps (benchmark processes only)
            job.params.update(replay_load_s=(job.load_expected_s or 0.0) / compress, replay_s_per_query={
                dataset: estimate.seconds_per_query(dataset) / compress for dataset in {r.dataset for r in runs}})
        jobs.append(job)
    sweep = insert_sweep(session, name="replay", spec={}, hardware_class=HARDWARE_CLASS, mode="distributed",
                         carbon=CARBON, jobs=jobs, max_attempts=3)
    return sweep.id, jobs


def mark_groups(trace: list[TraceRun], *, share: float, size: int, seed: int = 0) -> dict[tuple[str, str], int]:
    """Jobs ((task, model)) that need `size` GPUs, chosen at random (`seed`) until their GPU-seconds (`size` x their
    traced seconds: a run's traced time is its time on the group) are `share` of the trace's GPU-seconds; a job
    that would take the share past it by more than 1% of the total is passed over."""
    import random

    seconds: dict[tuple[str, str], float] = {}
    for run in trace:
        seconds[(run.task, run.model)] = seconds.get((run.task, run.model), 0.0) + run.duration_s
    jobs = sorted(seconds)
    random.Random(seed).shuffle(jobs)
    marked: dict[tuple[str, str], int] = {}
    one_s, group_s = sum(seconds.values()), 0.0  # GPU-seconds of the jobs on one GPU and on groups
    for job in jobs:
        if group_s / (one_s + group_s) >= share:
            break
        after = group_s + size * seconds[job]
        if after / (one_s - seconds[job] + after) <= share + 0.01:
            marked[job] = size
            one_s, group_s = one_s - seconds[job], after
    return marked


def lower_bound_s(units_s: list[float], n: int, join: tuple[int, float] | None) -> float:
    """The GPUs' capacity: total work / N (or its --join form); with groups, `units_s` are GPU-seconds (a unit's
    seconds x its job's GPUs). Claims split units as the queue drains (db.queue.splitting), so the longest unit
    submit made bounds nothing (`longest_unit_s` is printed beside)."""
    from scheduler.plan.simulate import lower_bound_s as bound

    return bound(units_s, n, join, divisible=True)


def trace_database(trace: list[TraceRun], queries: int, name: str):
    """A new SQLite database in a temp folder, migrated, holding `trace` as earlier measurements: its sessions."""
    from db.migrate import upgrade
    from db.session import session_factory

    folder = tempfile.mkdtemp(prefix=f"wattsweep-{name}-")
    url = f"sqlite:///{folder}/{name}.db"
    upgrade(url)
    sessions = session_factory(url)
    with sessions.begin() as session:
        store_trace_as_measurements(session, trace, queries)
    return sessions


def units_for_bound(trace, queries: int, max_unit_s: float, compress: float | None) -> list[float]:
    """The unit durations the lower bound is taken over, before the sweep exists (for --join's T)."""
    with trace_database(trace, queries, "replay-bound").begin() as session:
        _, jobs = build_sweep(session, trace, queries=queries, max_unit_s=max_unit_s, compress=compress)
    traced = {(r.task, r.model, r.dataset, r.repetition): r.duration_s for r in trace}
    if compress:
        return [job.params["replay_s_per_query"][run["dataset"]] * size
                for job in jobs for run in job.runs for size, _ in run["shards"]]
    return [traced[(job.task, job.model, run["dataset"], run["repetition"])] * size / queries
            for job in jobs for run in job.runs for size, _ in run["shards"]]
