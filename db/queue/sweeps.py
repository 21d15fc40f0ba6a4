"""Data access for sweeps, jobs and runs. Keyword-only; the caller owns the transaction."""

from __future__ import annotations

import bisect
import difflib
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, insert, select, text
from sqlalchemy.orm import Session

from db.clock import server_now
from db.models import Job, Run, Shard, Sweep, utcnow

# The jobs columns of the sweep axes (worker.contract.catalog.SWEEP_AXES values; db does not import worker).
AXIS_COLUMNS = ("batch_size", "dtype", "max_new_tokens", "num_inference_steps", "height_px", "width_px", "reasoning",
                "temperature", "chat_template", "power_limit_w",
                "concurrency", "request_rate", "engine")  # engine: a served task's engine name (not an axis)


class SweepNotFound(LookupError):
    """No sweep by that id or name; the message lists the closest names."""


@dataclass(frozen=True)
class RunGroup:
    """Runs of a job alike but for their repetition: first_repetition, first_repetition + 1, ... (`repetitions`)."""

    dataset: str
    first_repetition: int
    repetitions: int
    n_queries: int
    batch_size: int
    warmup: int
    shards: Sequence[tuple[int, float | None]] | None = None  # each run's units, as NewJob's runs give them
    expected_s: float | None = None  # without shards: the expected seconds of each run's one unit

    def run(self, repetition: int) -> dict[str, Any]:
        return dict(dataset=self.dataset, repetition=repetition, n_queries=self.n_queries,
                    batch_size=self.batch_size, warmup=self.warmup, shards=self.shards, expected_s=self.expected_s)


def run_groups(runs: Iterable[dict[str, Any]]) -> Iterator[RunGroup]:
    """Runs given one by one (NewJob.runs' dicts) as groups, in order: each group the consecutive runs alike
    (units included) but for their repetition, which counts up by one."""
    key, first, count = None, 0, 0
    for run in runs:
        shards = run.get("shards")
        alike = (run["dataset"], run["n_queries"], run["batch_size"], run["warmup"],
                 tuple(map(tuple, shards)) if shards else None, None if shards else run.get("expected_s"))
        if alike == key and run["repetition"] == first + count:
            count += 1
            continue
        if not _RUN_FIELDS.issuperset(run):
            raise ValueError(f"a new run has fields {sorted(set(run) - _RUN_FIELDS)} that submit does not write")
        if key is not None:
            yield RunGroup(key[0], first, count, *key[1:])
        key, first, count = alike, run["repetition"], 1
    if key is not None:
        yield RunGroup(key[0], first, count, *key[1:])


class GroupedRuns(Sequence[dict[str, Any]]):
    """A job's runs as groups of like runs (expand's PlannedJob.runs, NewJob.runs as submit makes it): read as
    runs, one dict each, made when read; written by insert_sweep from the groups, without making them."""

    def __init__(self, groups: Iterable[RunGroup]) -> None:
        self.groups = tuple(groups)
        self._ends = list(itertools.accumulate(group.repetitions for group in self.groups))

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        number = bisect.bisect_right(self._ends, index)
        group = self.groups[number]
        return group.run(group.first_repetition + index - (self._ends[number] - group.repetitions))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (group.run(group.first_repetition + offset) for group in self.groups
                for offset in range(group.repetitions))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GroupedRuns) and self.groups == other.groups

    def __hash__(self) -> int:
        return hash(self.groups)


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
    dispatched: bool = False,
) -> Sweep:
    """Write a sweep with all its jobs, runs and units (bulk inserts: 100,000 runs must be quick).

    `dispatched`: the jobs' messages are sent once this transaction commits; their dispatch time (the server's
    clock) is written with them rather than by an UPDATE of every job after.
    """
    sweep = Sweep(name=name, spec=spec, hardware_class=hardware_class, mode=mode, exclusive=exclusive, **carbon)
    session.add(sweep)
    session.flush()
    jobs = list(jobs)
    dispatched_at = session.scalar(select(server_now())) if dispatched else None
    job_rows = [
        dict(sweep_id=sweep.id, task=j.task, model=j.model, hardware_class=j.hardware_class, params=j.params,
             dispatched_at=dispatched_at,
             model_kind=j.model_kind, status="queued", attempts=0, max_attempts=max_attempts, cell_key=j.cell_key,
             expected_s=j.expected_s, load_expected_s=j.load_expected_s, estimate_source=j.estimate_source,
             split_units=j.split_units, gpus=j.gpus,
             **{column: (j.axes or {}).get(column) for column in AXIS_COLUMNS})
        for j in jobs
    ]
    if not job_rows:
        return sweep
    job_ids = _insert_jobs(session, job_rows)
    if session.get_bind().dialect.name == "postgresql":
        _insert_runs_and_units(session, job_ids, jobs)
        return sweep
    runs = [(job_id, run) for job_id, job in zip(job_ids, jobs, strict=True) for run in job.runs]
    if not runs:
        return sweep
    first = (session.scalar(select(func.max(Run.id))) or 0) + 1  # SQLite: the one writer holds the lock
    run_rows, shard_rows = [], []
    for run_id, (job_id, run) in enumerate(runs, start=first):
        fields = {key: value for key, value in run.items() if key not in ("shards", "expected_s")}
        shards = _units_of(run)
        run_rows.append(dict(id=run_id, job_id=job_id, status="pending", n_shards=len(shards), **fields))
        for index, (start, n_queries, expected_s) in enumerate(shards):
            shard_rows.append(dict(job_id=job_id, run_id=run_id, shard_index=index, query_start=start,
                                   n_queries=n_queries, expected_s=expected_s, status="pending", attempts=0))
    session.execute(insert(Run), run_rows)
    session.execute(insert(Shard), shard_rows)
    return sweep


def _units_of(run: dict[str, Any]) -> tuple[tuple[int, int, float | None], ...]:
    """A run's units as (query_start, n_queries, expected_s), checked to add up to the run."""
    shards = run.get("shards") or [(run["n_queries"], run.get("expected_s"))]
    units, start = [], 0
    for n_queries, expected_s in shards:
        units.append((start, n_queries, expected_s))
        start += n_queries
    if start != run["n_queries"]:
        raise ValueError(f"shards of a run add up to {start} queries, not {run['n_queries']}")
    return tuple(units)


_RUN_FIELDS = frozenset({"dataset", "repetition", "n_queries", "batch_size", "warmup", "shards", "expected_s"})


def _insert_runs_and_units(session: Session, job_ids: Sequence[int], jobs: Sequence[NewJob]) -> None:
    """Postgres: the runs and units written by the server from one row per group of like runs.

    A job's runs are mostly its datasets x repetitions, alike but for the repetition: each group of consecutive
    repetitions with the same dataset, settings and units goes to the server as one row (10,000 rows for a
    million runs), which makes the runs (generate_series) and their units. Nothing per run crosses the wire or
    is built in Python, the ids come from the sequences, and the order is the one given: runs in order, and
    each run's units in query order.
    """
    groups = _RunGroups()
    for job_id, job in zip(job_ids, jobs, strict=True):
        for group in job.runs.groups if isinstance(job.runs, GroupedRuns) else run_groups(job.runs):
            groups.add(job_id, group)
    if not groups.job_id:
        return
    with session.connection().connection.driver_connection.cursor() as cursor:
        cursor.execute(_INSERT_RUNS, groups.arrays())
        cursor.execute(_INSERT_UNITS, groups.arrays())


class _RunGroups:
    """Runs grouped as `_insert_runs_and_units` sends them: one entry per group in each list (the server's arrays),
    and each distinct plan of units once in the unit_* lists (group `unit_first` + k is its k-th unit, 1-based)."""

    def __init__(self) -> None:
        self.job_id, self.dataset, self.n_queries, self.batch_size, self.warmup = [], [], [], [], []
        self.first_repetition, self.repetitions, self.n_units, self.unit_first = [], [], [], []
        self.unit_start, self.unit_queries, self.unit_expected_s = [], [], []
        self._plans: dict[tuple, int] = {}  # (dataset, n_queries, batch_size, warmup, units) -> unit_first

    def add(self, job_id: int, group: RunGroup) -> None:
        shards = group.shards
        plan = (group.dataset, group.n_queries, group.batch_size, group.warmup,
                tuple(map(tuple, shards)) if shards else None, None if shards else group.expected_s)
        if (unit_first := self._plans.get(plan)) is None:  # a plan is checked against its run's size once
            units = _units_of(group.run(group.first_repetition))
            unit_first = self._plans[plan] = len(self.unit_start) + 1
            for start, n_queries, expected_s in units:
                self.unit_start.append(start)
                self.unit_queries.append(n_queries)
                self.unit_expected_s.append(expected_s)
        self.job_id.append(job_id)
        self.dataset.append(group.dataset)
        self.n_queries.append(group.n_queries)
        self.batch_size.append(group.batch_size)
        self.warmup.append(group.warmup)
        self.first_repetition.append(group.first_repetition)
        self.repetitions.append(group.repetitions)
        self.n_units.append(len(shards) if shards else 1)
        self.unit_first.append(unit_first)

    def arrays(self) -> dict[str, list]:
        return {name: value for name, value in vars(self).items() if not name.startswith("_")}


# The group's runs, repetition by repetition, in the order given (a nested loop yields its outer rows in order, and
# each row takes its id from the sequence as it is made); no ORDER BY, which would sort a million rows.
_INSERT_RUNS = """
INSERT INTO runs (job_id, dataset, repetition, n_queries, batch_size, warmup, status, n_shards)
SELECT g.job_id, g.dataset, repetition, g.n_queries, g.batch_size, g.warmup, 'pending', g.n_units
FROM unnest(%(job_id)s::int[], %(dataset)s::text[], %(n_queries)s::int[], %(batch_size)s::int[], %(warmup)s::int[],
            %(first_repetition)s::int[], %(repetitions)s::int[], %(n_units)s::int[])
     AS g(job_id, dataset, n_queries, batch_size, warmup, first_repetition, repetitions, n_units)
CROSS JOIN LATERAL generate_series(g.first_repetition, g.first_repetition + g.repetitions - 1) AS repetition
"""
# Each group's runs read back by their unique key, in repetition order, then each run's units in query order: the
# units' ids follow their runs' (claims break ties by id).
_INSERT_UNITS = """
INSERT INTO shards (job_id, run_id, shard_index, query_start, n_queries, expected_s, status, attempts)
SELECT g.job_id, r.id, k, (%(unit_start)s::int[])[g.unit_first + k], (%(unit_queries)s::int[])[g.unit_first + k],
       (%(unit_expected_s)s::float8[])[g.unit_first + k], 'pending', 0
FROM unnest(%(job_id)s::int[], %(dataset)s::text[], %(first_repetition)s::int[], %(repetitions)s::int[],
            %(n_units)s::int[], %(unit_first)s::int[])
     AS g(job_id, dataset, first_repetition, repetitions, n_units, unit_first)
CROSS JOIN LATERAL (SELECT id FROM runs WHERE runs.job_id = g.job_id AND runs.dataset = g.dataset
                    AND runs.repetition >= g.first_repetition AND runs.repetition < g.first_repetition + g.repetitions
                    ORDER BY runs.repetition) AS r
CROSS JOIN LATERAL generate_series(0, g.n_units - 1) AS k
"""


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
