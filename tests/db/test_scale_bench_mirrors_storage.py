"""bench/scale.py measures its big sweep in SQL (a million units through the real store would take hours); that SQL
must write what the real storage path (db.queue.unit_store.store_unit) writes, or its report timings measure
other rows. The same sweep shape measured both ways, compared column by column, on Postgres (the bench's)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, text, update

from bench import scale
from db.models import Job, Measurement, Run, Shard
from db.session import get_engine, session_factory
from scheduler.plan.submit import create_sweep
from scheduler.spec.reading import parse_sweep

# Columns whose values are the bench's own choice on either path (energies, times, ids): compared as NULL or not.
VALUES = (float, datetime)
IDS = {"id", "job_id", "run_id", "shard_id", "baseline_id", "sweep_id"}


def _sweep(session, name: str) -> int:
    spec = parse_sweep(scale.spec_data("shape", 2, repetitions=2) | {"name": name})
    return create_sweep(session, spec, mode="distributed").id


def _rows(session, model, sweep_id: int, **where) -> list[dict]:
    job_ids = select(Job.id).where(Job.sweep_id == sweep_id)
    key = model.id if model is Job else model.job_id
    query = select(model).where((model.sweep_id == sweep_id) if model is Job else key.in_(job_ids))
    for name, value in where.items():
        query = query.where(getattr(model, name) == value)
    return [{c.key: getattr(row, c.key) for c in model.__table__.columns}
            for row in session.scalars(query.order_by(model.id))]


def _shape(value):
    """What must agree: the value itself, except for the bench's own numbers and times (only whether set)."""
    if isinstance(value, VALUES):
        return "set"
    return value


def _compare(fast: list[dict], real: list[dict], what: str) -> None:
    assert len(fast) == len(real) > 0, what
    for f, r in zip(fast, real, strict=True):
        differences = {key: (_shape(f[key]), _shape(r[key])) for key in f
                       if key not in IDS and _shape(f[key]) != _shape(r[key])}
        assert not differences, f"{what}: {differences}"


def test_the_bench_sql_writes_the_rows_the_real_store_writes(postgres_url):
    sessions, engine = session_factory(postgres_url), get_engine(postgres_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(scale.WORKER)
    with sessions.begin() as session:
        fast_id, real_id = _sweep(session, "fast"), _sweep(session, "real")
        # One window per run on both paths: the fast path measures whole runs, and a claim would split a long one
        # as the queue drains (db.queue.splitting), which shapes the sweep by timing, not by its file.
        session.execute(update(Job).values(split_units=False))
    scale.measure_in_sql(engine, fast_id)
    scale.measure_for_real(sessions, real_id)
    with sessions() as session:
        for model in (Job, Run, Shard):
            _compare(_rows(session, model, fast_id), _rows(session, model, real_id), model.__tablename__)
        for phase in ("query", "load"):
            _compare(_rows(session, Measurement, fast_id, phase=phase),
                     _rows(session, Measurement, real_id, phase=phase), f"{phase} windows")
        # The figures the views compute from them: the stored kWh per 1,000 queries is the headline on both.
        for sweep_id in (fast_id, real_id):
            off = session.execute(text(
                "SELECT count(*) FROM v_runs WHERE sweep_id = :s AND abs(kwh_per_1k_queries - energy_kwh * 1000.0 "
                "/ n_queries) > 1e-12 * energy_kwh"), {"s": sweep_id}).scalar()
            assert off == 0

