"""Writing a sweep: validate, expand, estimate, split long runs into shards, store everything in one transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from db.queue.sweeps import GroupedRuns, NewJob, RunGroup
from db.results.estimates import Estimate, earlier_estimates, known_parameter_counts
from scheduler.plan.expand import PlannedJob, expand
from scheduler.plan.priors import prior_estimate, shard_sizes
from scheduler.spec.schema import SweepSpec

if TYPE_CHECKING:  # `plan --workers` builds units from here without the database layer
    from sqlalchemy.orm import Session

    from db.models import Sweep


@dataclass(frozen=True)
class UnitSettings:
    shard_queries: int | None
    max_unit_s: float


def job_estimate(job: PlannedJob, estimates: Mapping, parameters: Mapping[str, int]) -> Estimate:
    """Earlier measurements of this (task, model, kind) on this hardware class, else the labelled prior.

    Measurements without a load window (imported logs often have none) take the prior's load time.
    """
    batch = job.runs.groups[0].batch_size if job.runs else 1
    prior = prior_estimate(task=job.task, model=job.model, params=job.params, batch_size=batch,
                           num_parameters=parameters.get(job.model))
    found = estimates.get((job.task, job.model, job.model_kind))
    if found is None:
        return prior
    return found if found.load_s else replace(found, load_s=prior.load_s)


def new_job(job: PlannedJob, estimate: Estimate, units: UnitSettings) -> NewJob:
    """The job's rows: each run with its shards (sizes and expected seconds), and the job's expected work.

    Runs alike but for their repetition are split alike, once, and kept as one group (db.queue.sweeps.RunGroup):
    a million runs are 10,000 groups here, and the database makes the rows.
    """
    groups, total_s, split = [], 0.0, {}
    for group in job.runs.groups:
        key = (group.dataset, group.n_queries, group.batch_size, group.warmup)
        if key not in split:
            s_per_query = estimate.seconds_per_query(group.dataset)
            sizes = shard_sizes(n_queries=group.n_queries, batch_size=group.batch_size, warmup=group.warmup,
                                s_per_query=s_per_query, shard_queries=units.shard_queries,
                                max_unit_s=units.max_unit_s)
            shards = [(size, s_per_query * (size + group.warmup)) for size in sizes]
            split[key] = (shards, sum(expected for _, expected in shards))
        shards, run_s = split[key]
        for _ in range(group.repetitions):  # added run by run, as the runs are: the same float as before
            total_s += run_s
        groups.append(RunGroup(group.dataset, group.first_repetition, group.repetitions, group.n_queries,
                               group.batch_size, group.warmup, shards))
    return NewJob(job.task, job.model, job.hardware_class, job.params, GroupedRuns(groups), model_kind=job.model_kind,
                  axes=job.axes, cell_key=job.cell_key, expected_s=total_s, load_expected_s=estimate.load_s or None,
                  estimate_source=estimate.source, split_units=units.shard_queries is None, gpus=job.gpus)


def planned_jobs(session: Session | None, spec: SweepSpec, hardware_class: str | None = None) -> list[NewJob]:
    """Every job of the sweep with its units and estimates (`session` None: priors only)."""
    target = hardware_class or spec.hardware_class
    estimates = earlier_estimates(session, hardware_class=target) if session is not None else {}
    models = spec.all_models()
    parameters = known_parameter_counts(session, models=models) if session is not None else {}
    return jobs_with_units(spec, hardware_class, estimates, parameters)


def jobs_with_units(spec: SweepSpec, hardware_class: str | None, estimates: Mapping,
                    parameters: Mapping[str, int]) -> list[NewJob]:
    """`planned_jobs` from estimates already read (plan reads them once for its figures too)."""
    jobs = expand(spec, hardware_class)
    settings = {task: spec.settings_for(task) for task in spec.tasks}
    return [
        new_job(job, job_estimate(job, estimates, parameters),
                UnitSettings(settings[job.task].shard_queries, settings[job.task].max_unit_s))
        for job in jobs
    ]


def create_sweep(
    session: Session, spec: SweepSpec, *, mode: str, hardware_class: str | None = None, max_attempts: int = 3,
    jobs: list[NewJob] | None = None, dispatched: bool = False,
) -> Sweep:
    """`jobs`: planned_jobs' answer, where the caller has it; `dispatched`: the jobs are sent after the commit
    (their dispatch time is written with them, as reconcile's mark_dispatched would)."""
    from db.queue.sweeps import insert_sweep

    return insert_sweep(
        session,
        name=spec.name,
        spec=spec.model_dump(mode="json"),
        hardware_class=hardware_class or spec.hardware_class,
        mode=mode,
        carbon=spec.carbon.model_dump(exclude={"pue"}),  # the PUE is read from the stored spec (executor)
        jobs=planned_jobs(session, spec, hardware_class) if jobs is None else jobs,
        max_attempts=max_attempts,
        exclusive=spec.exclusive,
        dispatched=dispatched,
    )
