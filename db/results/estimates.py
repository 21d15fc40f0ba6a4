"""Duration and energy estimates for a planned sweep: per (task, model, model kind) on one hardware class.

In order of preference:

1. earlier measurements in the database of the same task, model (and kind) on
   the same hardware class, imported CodeCarbon logs included: query windows
   for the per-query time and energy (per dataset where that dataset was
   measured), load windows for the load cost. Energy is the headline (own GPU
   + attributed CPU and RAM, db.results.stats.headline_kwh); an imported log has only
   its node-wide reading, which is then what the estimate uses;
2. a prior from the model's parameter count, the task's kind and its
   settings (scheduler.plan.priors), labelled `source = "prior"`: good for
   ordering work and sizing shards, never shown as a measurement (it has no
   energy).

`wattsweep plan` multiplies the per-query figures by the queries a sweep will
run; `submit` uses them to split long runs into shards and to hand out the
longest units first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # SQLAlchemy is imported where it is used: importing Estimate stays light
    from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Estimate:
    runs: int  # measured query windows the figures come from (0 for a prior)
    s_per_query: float
    kwh_per_query: float | None  # None for a prior: energy is never guessed
    load_s: float  # mean of the load windows (0 if none was stored)
    load_kwh: float | None
    source: str = "measured"  # or "prior"
    s_per_query_by_dataset: Mapping[str, float] = field(default_factory=dict)

    def seconds_per_query(self, dataset: str) -> float:
        return self.s_per_query_by_dataset.get(dataset, self.s_per_query)


CellKey = tuple[str, str, str]  # task, model, model kind


def earlier_estimates(session: Session, *, hardware_class: str) -> dict[CellKey, Estimate]:
    """Per-query duration and energy of every (task, model, model kind) measured on `hardware_class`.

    Imported CodeCarbon logs name a model as the study's scripts did, by its Hub id (`bigscience/bloomz-560m`):
    such a name counts for the sweep reference `hub:bigscience/bloomz-560m` (`reference_of`).
    """
    from sqlalchemy import func, select

    from db.models import Job, Measurement, Run
    from db.results.stats import headline_kwh_column

    own_kwh = headline_kwh_column()  # a window's own energy, as every report shows it
    cell = (Job.task, Job.model, Job.model_kind)
    where = (Job.hardware_class == hardware_class, Measurement.phase == "query", Measurement.n_queries > 0)
    queries: dict[CellKey, list[float]] = {}  # windows, seconds, kWh, queries
    for task, model, kind, *sums in session.execute(
        select(*cell, func.count(Measurement.id), func.sum(Measurement.duration_s), func.sum(own_kwh),
               func.sum(Measurement.n_queries))
        .join(Measurement, Measurement.job_id == Job.id).where(*where).group_by(*cell)
    ).all():
        _add(queries.setdefault((task, reference_of(model), kind), [0, 0.0, 0.0, 0]), sums)
    loads: dict[CellKey, list[float]] = {}  # windows, seconds, kWh
    for task, model, kind, *sums in session.execute(
        select(*cell, func.count(Measurement.id), func.sum(Measurement.duration_s), func.sum(own_kwh))
        .join(Measurement, Measurement.job_id == Job.id)
        .where(Job.hardware_class == hardware_class, Measurement.phase == "load").group_by(*cell)
    ).all():
        _add(loads.setdefault((task, reference_of(model), kind), [0, 0.0, 0.0]), sums)
    by_dataset: dict[CellKey, dict[str, list[float]]] = {}  # seconds, queries
    for task, model, kind, dataset, *sums in session.execute(
        select(*cell, Run.dataset, func.sum(Measurement.duration_s), func.sum(Measurement.n_queries))
        .join(Measurement, Measurement.job_id == Job.id).join(Run, Run.id == Measurement.run_id)
        .where(*where).group_by(*cell, Run.dataset)
    ).all():
        _add(by_dataset.setdefault((task, reference_of(model), kind), {}).setdefault(dataset, [0.0, 0]), sums)
    estimates = {}
    for key, (runs, duration, energy, n_queries) in queries.items():
        load_windows, load_s, load_kwh = loads.get(key, (0, 0.0, 0.0))
        estimates[key] = Estimate(int(runs), duration / n_queries, energy / n_queries,
                                  load_s / load_windows if load_windows else 0.0,
                                  load_kwh / load_windows if load_windows else 0.0,
                                  s_per_query_by_dataset={dataset: seconds / count for dataset, (seconds, count)
                                                          in by_dataset.get(key, {}).items()})
    return estimates


_SCHEMES = ("tiny:", "hub:", "path:")  # worker.contract.refs.MODEL_KINDS (db does not import worker)


def reference_of(model: str) -> str:
    """The sweep reference a stored model name stands for: itself, or `hub:<id>` for a bare Hub id (imports)."""
    return model if model.startswith(_SCHEMES) else f"hub:{model}"


def _add(totals: list, values) -> None:
    for i, value in enumerate(values):
        totals[i] += value or 0


def known_parameter_counts(session: Session, *, models: Iterable[str]) -> dict[str, int]:
    """Parameter counts recorded by earlier jobs of these models (any hardware class, any task)."""
    from sqlalchemy import func, select

    from db.models import Job

    models = list(dict.fromkeys(models))
    counts: dict[str, int] = {}
    for start in range(0, len(models), 1000):
        chunk = models[start : start + 1000]
        counts.update(session.execute(
            select(Job.model, func.max(Job.num_parameters))
            .where(Job.model.in_(chunk), Job.num_parameters.is_not(None)).group_by(Job.model)
        ).all())
    return counts
