"""What a sweep will cost before it runs: jobs, runs, queries, downloads, and GPU-hours and kWh where known.

Pure functions over the spec; the estimates come from earlier measurements of
the same (task, model, model kind) on the same hardware class
(db.results.estimates), and a job without any is "unknown", never a guess. No GPU
stack is imported: a scheduler or login node plans.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from scheduler.plan.expand import PlannedJob, expand
from scheduler.spec.schema import SweepSpec
from worker.contract.catalog import SWEEP_AXES
from worker.contract.refs import parse_dataset_ref, parse_hf_dataset, parse_model_ref


@dataclass(frozen=True)
class JobPlan:
    task: str
    model: str
    model_kind: str
    runs: int
    queries: int  # measured
    warmup_queries: int
    hours: float | None  # None: unknown
    kwh: float | None
    cell_key: str = ""  # the job's axis values, where the sweep has axes
    gpus: int = 1  # GPUs the job needs (model_gpus): hours x gpus GPU-hours

    @property
    def gpu_hours(self) -> float | None:
        return None if self.hours is None else self.hours * self.gpus


@dataclass(frozen=True)
class DatasetDownload:
    ref: str  # hf:<dataset>[/<config>]:<split>, without a column
    rows: int  # the most a run of the sweep reads (warm-up included)


@dataclass(frozen=True)
class SweepPlan:
    name: str
    hardware_class: str
    jobs: list[JobPlan]
    models_to_download: list[str]
    datasets_to_download: list[DatasetDownload]
    estimated_from: Mapping[tuple[str, str, str], int] = field(default_factory=dict)  # cell -> runs behind it
    axes: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # task -> axis given as a list -> values

    @property
    def runs(self) -> int:
        return sum(job.runs for job in self.jobs)

    @property
    def queries(self) -> int:
        return sum(job.queries for job in self.jobs)

    @property
    def warmup_queries(self) -> int:
        return sum(job.warmup_queries for job in self.jobs)

    @property
    def known(self) -> list[JobPlan]:
        return [job for job in self.jobs if job.kwh is not None]


def _job_plan(job: PlannedJob, estimates: Mapping) -> JobPlan:
    measured = sum(group.n_queries * group.repetitions for group in job.runs.groups)
    warmup = sum(group.warmup * group.repetitions for group in job.runs.groups)
    estimate = estimates.get((job.task, job.model, job.model_kind))
    hours = kwh = None
    if estimate is not None:  # warm-up queries cost the same as measured ones; the model loads once per job
        hours = (estimate.s_per_query * (measured + warmup) + estimate.load_s) / 3600
        kwh = estimate.kwh_per_query * (measured + warmup) + estimate.load_kwh
    return JobPlan(job.task, job.model, job.model_kind, len(job.runs), measured, warmup, hours, kwh, job.cell_key,
                   job.gpus)


def make_plan(spec: SweepSpec, *, hardware_class: str | None = None, estimates: Mapping | None = None,
              gpus: Mapping[str, int] | None = None) -> SweepPlan:
    """The plan of `spec` on `hardware_class` (default: the file's), with `estimates` from db.results.estimates;
    `gpus` as scheduler.plan.expand.expand takes them."""
    estimates = estimates or {}
    jobs = expand(spec, hardware_class, gpus)
    models = [ref for ref in spec.all_models() if parse_model_ref(ref).kind == "hub"]
    rows: dict[str, int] = {}
    for task, task_spec in spec.tasks.items():
        settings = spec.settings_for(task)
        for ref in task_spec.datasets:
            dataset = parse_dataset_ref(ref)
            if dataset.kind != "hf":
                continue
            parsed = parse_hf_dataset(dataset.name)
            if not parsed.is_local:
                key = f"hf:{parsed.source}"
                rows[key] = max(rows.get(key, 0), settings.queries + settings.warmup)
    plans = [_job_plan(job, estimates) for job in jobs]
    used = {(j.task, j.model, j.model_kind): estimates[(j.task, j.model, j.model_kind)].runs
            for j in plans if j.kwh is not None}
    return SweepPlan(spec.name, hardware_class or spec.hardware_class, plans, models,
                     [DatasetDownload(ref, n) for ref, n in rows.items()], used, sweep_axes(spec))


def sweep_axes(spec: SweepSpec) -> dict[str, dict[str, int]]:
    """Per task, each axis given as a list and how many distinct values it has (zero-shot params included)."""
    found: dict[str, dict[str, int]] = {}
    for task, task_spec in spec.tasks.items():
        given = {"batch_size": spec.settings_for(task).batch_size, **task_spec.params,
                 **(task_spec.zero_shot.params if task_spec.zero_shot else {})}
        axes = {name: len(set(map(str, value))) for name, value in given.items()
                if name in SWEEP_AXES and isinstance(value, list)}
        if axes:
            found[task] = {name: axes[name] for name in SWEEP_AXES if name in axes}
    return found


@dataclass(frozen=True)
class Schedule:
    """What N GPUs would do with the sweep: expected makespan, its lower bound, model loads (`plan --workers`)."""

    workers: int  # GPUs
    makespan_s: float
    lower_bound_s: float  # GPU-seconds / GPUs: claims split long units, so the longest unit bounds nothing
    total_s: float  # GPU-seconds
    longest_unit_s: float
    model_loads: int
    units: int
    sharded_runs: int
    jobs_measured: int  # jobs whose estimate comes from earlier measurements; the rest are priors
    jobs_prior: int
    pools: dict[int, int] = field(default_factory=dict)  # group size -> workers holding that many GPUs


def make_schedule(spec: SweepSpec, *, workers: int, hardware_class: str | None = None,
                  estimates: Mapping | None = None, parameters: Mapping | None = None) -> Schedule:
    """Split runs into units as submit would, and run db.queue.policy over them in memory (scheduler.plan.simulate).

    `workers` GPUs: where jobs need groups, they are split into workers of each size the sweep needs, in
    proportion to each size's GPU-seconds (scheduler.plan.simulate.split_gpus), each size draining its own jobs.
    """
    from scheduler.plan.simulate import SimJob, simulate_pools, split_gpus
    from scheduler.plan.submit import jobs_with_units

    jobs = jobs_with_units(spec, hardware_class, estimates or {}, parameters or {})
    sims, units, gpu_s = [], [], {}
    for index, job in enumerate(jobs):
        durations = [seconds for run in job.runs for _, seconds in run["shards"]]
        units += durations
        gpu_s[job.gpus] = gpu_s.get(job.gpus, 0.0) + job.gpus * sum(durations)
        sims.append((SimJob(index, durations, job.load_expected_s or 0.0, split_units=job.split_units), job.gpus))
    result = simulate_pools(sims, split_gpus(gpu_s, workers))
    measured = sum(1 for job in jobs if job.estimate_source == "measured")
    return Schedule(workers, result.makespan_s, result.lower_bound_s, sum(gpu_s.values()), max(units, default=0.0),
                    result.model_loads, len(units), sum(1 for j in jobs for r in j.runs if len(r["shards"]) > 1),
                    measured, len(jobs) - measured, result.workers)
