"""Data access for sweeps, jobs and runs. Keyword-only; the caller owns the transaction."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, insert, select, text
from sqlalchemy.orm import Session

from db.models import Job, Run, Shard, Sweep, utcnow

# The jobs columns of the sweep axes (worker.contract.catalog.SWEEP_AXES values; db does not import worker).
AXIS_COLUMNS = ("batch_size", "dtype", "max_new_tokens", "num_inference_steps", "height_px", "width_px", "reasoning",
                "temperature", "chat_template", "power_limit_w",
                "concurrency", "request_rate", "engine")  # engine: a served task's engine name (not an axis)


class SweepNotFound(LookupError):
    """No sweep by that id or name; the message lists the closest names."""


@dataclass(frozen=True)
class NewJob:
    """What a new job is made of before it is stored: `insert_sweep` writes it with its runs and units."""

    task: str
    model: str
    hardware_class: str
    params: dict[str, Any]
    # dataset, repetition, n_queries, batch_size, warmup; optionally "shards": [(n_queries, expected_s), ...]
    # (consecutive, adding up to the run; default: one unit, the whole run) and "expected_s" for that one unit.
    runs: Sequence[dict[str, Any]]
    model_kind: str = "task-specific"  # or multi-purpose (prompted zero-shot)
    axes: dict[str, Any] | None = None  # jobs column -> value: the cell's sweep-axis values (batch_size, dtype, ...)
    cell_key: str = ""  # names the values of the axes given as lists; keeps one model's cells apart
    expected_s: float | None = None  # the job's expected work (db.results.estimates), for ordering
    load_expected_s: float | None = None
    estimate_source: str | None = None  # measured | prior
    split_units: bool = True  # claims may split its long units as the queue drains (false: the sweep fixed their size)
    gpus: int = 1  # GPUs the job needs: only workers holding that many join it (db.queue.staffing)


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
    """Write a sweep with all its jobs, runs and units (bulk inserts: 100,000 runs must be quick)."""
    sweep = Sweep(name=name, spec=spec, hardware_class=hardware_class, mode=mode, exclusive=exclusive, **carbon)
    session.add(sweep)
    session.flush()
    jobs = list(jobs)
    job_rows = [
        dict(sweep_id=sweep.id, task=j.task, model=j.model, hardware_class=j.hardware_class, params=j.params,
             model_kind=j.model_kind, status="queued", attempts=0, max_attempts=max_attempts, cell_key=j.cell_key,
             expected_s=j.expected_s, load_expected_s=j.load_expected_s, estimate_source=j.estimate_source,
             split_units=j.split_units, gpus=j.gpus,
             **{column: (j.axes or {}).get(column) for column in AXIS_COLUMNS})
        for j in jobs
    ]
    if not job_rows:
        return sweep
    job_ids = _insert_jobs(session, job_rows)
    runs = [(job_id, run) for job_id, job in zip(job_ids, jobs, strict=True) for run in job.runs]
    if not runs:
        return sweep
    run_ids = _new_run_ids(session, len(runs))
    run_rows, shard_rows = [], []
    for run_id, (job_id, run) in zip(run_ids, runs, strict=True):
        fields = {key: value for key, value in run.items() if key not in ("shards", "expected_s")}
        shards = run.get("shards") or [(run["n_queries"], run.get("expected_s"))]
        run_rows.append(dict(id=run_id, job_id=job_id, status="pending", n_shards=len(shards), **fields))
        start = 0
        for index, (n_queries, expected_s) in enumerate(shards):
            shard_rows.append(dict(job_id=job_id, run_id=run_id, shard_index=index, query_start=start,
                                   n_queries=n_queries, expected_s=expected_s, status="pending", attempts=0))
            start += n_queries
        if start != run["n_queries"]:
            raise ValueError(f"shards of a run add up to {start} queries, not {run['n_queries']}")
    _bulk_insert(session, Run, run_rows)
    _bulk_insert(session, Shard, shard_rows)
    return sweep


def _insert_jobs(session: Session, rows: list[dict]) -> list[int]:
    """Insert the jobs; returns their ids in order.

    Postgres: ids from the sequence, then COPY (an INSERT ... RETURNING of 10,000 jobs spent most of its time in
    the driver, building and parsing its multi-row statements: 2-3x the COPY's time); elsewhere a bulk INSERT.
    """
    if session.get_bind().dialect.name != "postgresql":
        return list(session.scalars(insert(Job).returning(Job.id, sort_by_parameter_order=True), rows).all())
    ids = _new_ids(session, "jobs", len(rows))
    now = utcnow()  # what the columns' Python-side defaults would have written (COPY skips them)
    _bulk_insert(session, Job, [dict(row, id=job_id, load_failures=0, created_at=now)
                                for job_id, row in zip(ids, rows, strict=True)])
    return ids


def _new_run_ids(session: Session, n: int) -> list[int]:
    """Ids for n new runs, taken before inserting them so that their units can name them."""
    if session.get_bind().dialect.name == "postgresql":
        return _new_ids(session, "runs", n)
    first = (session.scalar(select(func.max(Run.id))) or 0) + 1  # SQLite: the one writer holds the lock
    return list(range(first, first + n))


def _new_ids(session: Session, table: str, n: int) -> list[int]:
    """Postgres: n ids from the table's sequence, in one round trip."""
    return list(session.scalars(text(f"SELECT nextval('{table}_id_seq') FROM generate_series(1, :n)"), {"n": n}))


def _bulk_insert(session: Session, model, rows: list[dict]) -> None:
    """Postgres: COPY, 2.5x faster than a multi-row INSERT at 100,000 runs; elsewhere a bulk INSERT.

    COPY skips SQLAlchemy's Python-side defaults: every row carries all its values.
    """
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(model), rows)
        return
    columns = list(rows[0])
    types = [_PG_TYPES[type(model.__table__.columns[column].type).__name__] for column in columns]
    with session.connection().connection.driver_connection.cursor() as cursor:
        # Binary: the server reads each value as it is stored instead of parsing text (a third of a COPY of
        # a million runs and their units).
        with cursor.copy(f"COPY {model.__tablename__} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row([row[column] for column in columns])


# SQLAlchemy column types -> the Postgres types binary COPY writes (varchar shares text's binary form).
_PG_TYPES = {"Integer": "int4", "BigInteger": "int8", "String": "text", "Text": "text", "Float": "float8",
             "Boolean": "bool", "DateTime": "timestamptz", "JSON": "json"}


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
