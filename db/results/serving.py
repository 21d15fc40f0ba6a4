"""Storing what served jobs add (migration 0020): the engine with the job, each served unit's figures."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from db.models import Job, ServingRun

ENGINE_COLUMNS = ("engine", "engine_version", "engine_args", "engine_log")


def record_engine(session: Session, *, job_id: int, provenance: dict[str, Any] | None) -> None:
    """The engine, its version, its full command line (or endpoint) and its log's path, with the job."""
    values = {name: (provenance or {}).get(name) for name in ENGINE_COLUMNS}
    if values["engine"]:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def record_serving(session: Session, *, job_id: int, run_id: int, shard_id: int, figures: dict[str, Any]) -> None:
    """One served unit's figures (worker.engines.figures.serving_figures); stored once, with the unit."""
    columns = set(ServingRun.__table__.columns.keys()) - {"id", "job_id", "run_id", "shard_id"}
    values = {name: value for name, value in figures.items() if name in columns}
    for name in ("steady_started_at", "steady_ended_at"):
        if values.get(name) is not None:
            values[name] = datetime.fromtimestamp(values[name], UTC)
    session.add(ServingRun(job_id=job_id, run_id=run_id, shard_id=shard_id, **values))
