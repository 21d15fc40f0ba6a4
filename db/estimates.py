"""Earlier measurements as estimates for a planned sweep: per (task, model, model kind) on one hardware class.

`wattsweep plan` multiplies these per-query figures by the queries a new sweep
will run. Only measured windows count: query windows for the per-query time
and energy, load windows for the per-job load cost.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Job, Measurement


@dataclass(frozen=True)
class Estimate:
    runs: int  # measured query windows the figures come from
    s_per_query: float
    kwh_per_query: float
    load_s: float  # mean of the load windows (0 if none was stored)
    load_kwh: float


CellKey = tuple[str, str, str]  # task, model, model kind


def earlier_estimates(session: Session, *, hardware_class: str) -> dict[CellKey, Estimate]:
    """Per-query duration and energy of every (task, model, model kind) measured on `hardware_class`."""
    cell = (Job.task, Job.model, Job.model_kind)
    queries = session.execute(
        select(*cell, func.count(Measurement.id), func.sum(Measurement.duration_s), func.sum(Measurement.energy_kwh),
               func.sum(Measurement.n_queries))
        .join(Measurement, Measurement.job_id == Job.id)
        .where(Job.hardware_class == hardware_class, Measurement.phase == "query", Measurement.n_queries > 0)
        .group_by(*cell)
    ).all()
    loads = {
        (task, model, kind): (duration or 0.0, energy or 0.0)
        for task, model, kind, duration, energy in session.execute(
            select(*cell, func.avg(Measurement.duration_s), func.avg(Measurement.energy_kwh))
            .join(Measurement, Measurement.job_id == Job.id)
            .where(Job.hardware_class == hardware_class, Measurement.phase == "load")
            .group_by(*cell)
        ).all()
    }
    estimates = {}
    for task, model, kind, runs, duration, energy, n_queries in queries:
        load_s, load_kwh = loads.get((task, model, kind), (0.0, 0.0))
        estimates[(task, model, kind)] = Estimate(int(runs), duration / n_queries, energy / n_queries, load_s, load_kwh)
    return estimates
