"""Data access for sweeps, jobs and runs. Keyword-only; the caller owns the transaction."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, insert, select
from sqlalchemy.orm import Session

from db.models import Job, Run, Sweep

# The jobs columns of the sweep axes (worker.catalog.SWEEP_AXES values; db does not import worker).
AXIS_COLUMNS = ("batch_size", "dtype", "max_new_tokens", "num_inference_steps", "height_px", "width_px", "reasoning")


class SweepNotFound(LookupError):
    """No sweep by that id or name; the message lists the closest names."""


@dataclass(frozen=True)
class NewJob:
    task: str
    model: str
    hardware_class: str
    params: dict[str, Any]
    runs: Sequence[dict[str, Any]]  # dataset, repetition, n_queries, batch_size, warmup
    model_kind: str = "task-specific"  # or multi-purpose (prompted zero-shot)
    axes: dict[str, Any] | None = None  # jobs column -> value: the cell's sweep-axis values (batch_size, dtype, ...)
    cell_key: str = ""  # names the values of the axes given as lists; keeps one model's cells apart


def insert_sweep(
    session: Session,
    *,
    name: str,
    spec: dict[str, Any],
    hardware_class: str,
    mode: str,
    carbon: dict[str, Any],
    jobs: Iterable[NewJob],
    max_attempts: int = 3,
    exclusive: bool = False,
) -> Sweep:
    """Write a sweep with all its jobs and runs (bulk inserts: 100,000 runs must be quick)."""
    sweep = Sweep(name=name, spec=spec, hardware_class=hardware_class, mode=mode, exclusive=exclusive, **carbon)
    session.add(sweep)
    session.flush()
    jobs = list(jobs)
    job_rows = [
        dict(sweep_id=sweep.id, task=j.task, model=j.model, hardware_class=j.hardware_class, params=j.params,
             model_kind=j.model_kind, status="queued", attempts=0, max_attempts=max_attempts, cell_key=j.cell_key,
             **{column: (j.axes or {}).get(column) for column in AXIS_COLUMNS})
        for j in jobs
    ]
    if not job_rows:
        return sweep
    job_ids = session.scalars(insert(Job).returning(Job.id, sort_by_parameter_order=True), job_rows).all()
    run_rows = [
        dict(job_id=job_id, status="pending", **run)
        for job_id, job in zip(job_ids, jobs, strict=True)
        for run in job.runs
    ]
    if run_rows:
        _insert_runs(session, run_rows)
    return sweep


def _insert_runs(session: Session, rows: list[dict]) -> None:
    """Postgres: COPY, 2.5x faster than a multi-row INSERT at 100,000 runs; elsewhere a bulk INSERT.

    COPY skips SQLAlchemy's Python-side defaults: every row carries all its values.
    """
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(Run), rows)
        return
    columns = list(rows[0])
    with session.connection().connection.driver_connection.cursor() as cursor:
        with cursor.copy(f"COPY runs ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[column] for column in columns])


def find_sweep(session: Session, *, ref: str | int | None = None) -> Sweep:
    """By id, by name (the latest of that name), or the latest sweep when `ref` is None."""
    query = select(Sweep).order_by(Sweep.id.desc()).limit(1)
    if ref is None:
        sweep = session.scalars(query).first()
        if sweep is None:
            raise SweepNotFound("no sweeps yet: run `wattsweep run FILE` or `wattsweep submit FILE` first")
        return sweep
    text = str(ref)
    if text.isdigit():
        sweep = session.get(Sweep, int(text))
    else:
        sweep = session.scalars(query.where(Sweep.name == text)).first()
    if sweep is None:
        names = session.scalars(select(Sweep.name).distinct()).all()
        close = difflib.get_close_matches(text, names, n=3, cutoff=0.4)
        hint = f"; closest: {', '.join(close)}" if close else (f"; known: {', '.join(names[:10])}" if names else "")
        raise SweepNotFound(f"no sweep {text!r}{hint}")
    return sweep


@dataclass(frozen=True)
class Progress:
    jobs_total: int
    jobs_done: int
    jobs_running: int
    jobs_failed: int
    jobs_queued: int
    runs_total: int
    runs_done: int
    runs_failed: int

    @property
    def runs_pending(self) -> int:
        return self.runs_total - self.runs_done - self.runs_failed

    @property
    def finished(self) -> bool:
        return self.jobs_queued == 0 and self.jobs_running == 0


def sweep_progress(session: Session, *, sweep_id: int) -> Progress:
    def count(column, value):
        return func.coalesce(func.sum(case((column == value, 1), else_=0)), 0)

    jobs = session.execute(
        select(func.count(), count(Job.status, "done"), count(Job.status, "running"), count(Job.status, "failed"),
               count(Job.status, "queued")).where(Job.sweep_id == sweep_id)
    ).one()
    runs = session.execute(
        select(func.count(), count(Run.status, "done"), count(Run.status, "failed"))
        .join(Job).where(Job.sweep_id == sweep_id)
    ).one()
    return Progress(*jobs, *runs)


def failed_jobs(session: Session, *, sweep_id: int) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.sweep_id == sweep_id, Job.status == "failed").order_by(Job.id)))
