"""The readers of db.results.views return, on Postgres, what SQLAlchemy's own result processing returns: same
columns, same values, same Python types (their binary read skips SQLAlchemy but applies its processors).

A random sweep with every kind of column filled (output tokens read as `numeric`, medians, latencies, a served
cell, timestamps) is read by each reader twice: as it reads, and with `_rows` replaced by SQLAlchemy's
`session.execute`."""

from __future__ import annotations

import random

from sqlalchemy import select, update

from db.models import Measurement, Sweep
from db.results import views
from db.session import session_factory
from tests.db.test_figures_kept import _random_models
from tests.results_data import seed_sweep


def _through_sqlalchemy(session, statement, **params):
    result = session.execute(statement, params)
    keys = list(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result.all()]


def _typed(rows):
    """Every value with its type and repr (a float's every digit, a datetime's zone), in column order."""
    rows = rows if isinstance(rows, list) else [rows]
    return [[(key, type(value).__name__, repr(value)) for key, value in row.items()] for row in rows]


READERS = (views.task_rows, views.model_rows, views.model_kind_rows, views.cell_rows, views.progress_row,
           views.provenance_rows, views.serving_cell_rows)


def test_each_reader_returns_what_sqlalchemy_returns(postgres_url, monkeypatch):
    sessions = session_factory(postgres_url)
    with sessions.begin() as session:
        sweep_id = seed_sweep(session, name="read", models=_random_models(random.Random(7), "m", 12))
        session.execute(update(Measurement).where(Measurement.id % 2 == 0, Measurement.phase == "query").values(
            output_tokens=Measurement.n_queries * 16, input_tokens=Measurement.n_queries * 4,
            ttft_p50_s=0.02, throughput_queries_per_s=3.5, output_tokens_p50=16.0, output_tokens_p95=16.0))
    with sessions() as session:
        assert session.scalars(select(Sweep.id)).all() == [sweep_id]
        fast = {reader.__name__: reader(session, sweep_id=sweep_id) for reader in READERS}
        fast["hardware_rows"] = views.hardware_rows(session)
        fast["compare_rows"] = views.compare_rows(session, sweep_a=sweep_id, sweep_b=sweep_id)
        monkeypatch.setattr(views, "_rows", _through_sqlalchemy)
        slow = {reader.__name__: reader(session, sweep_id=sweep_id) for reader in READERS}
        slow["hardware_rows"] = views.hardware_rows(session)
        slow["compare_rows"] = views.compare_rows(session, sweep_a=sweep_id, sweep_b=sweep_id)
    assert fast["model_rows"] and any(row["output_tokens_total"] is not None for row in fast["model_rows"])
    for name, rows in slow.items():
        assert _typed(fast[name]) == _typed(rows), name
