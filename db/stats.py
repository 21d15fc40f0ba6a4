"""Repetition statistics: mean, standard deviation, 95% CI (Student t), CV, and MAD outliers.

Sums are aggregated in SQL; only the per-cell arithmetic (a square root and a
t quantile) happens here, on one row per (task, model, dataset, hardware class).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from db.models import Job, Measurement, Run

# Two-sided 95% Student t quantiles t(0.975, df) for df = 1..30; beyond, the normal 1.96 is within 2%.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
MAD_THRESHOLD = 3.0  # a run further than 3 scaled MADs from its cell's median is flagged
MAD_TO_SIGMA = 1.4826  # scales the MAD to a standard deviation for normally distributed data


def t_quantile_975(df: int) -> float:
    return _T975[df - 1] if df <= len(_T975) else 1.96


@dataclass(frozen=True)
class Spread:
    n: int
    mean: float
    std: float | None  # sample standard deviation (n - 1)
    ci95_low: float | None
    ci95_high: float | None
    cv: float | None  # std / mean


def spread(n: int, total: float, sum_squares: float) -> Spread:
    """Mean, std, 95% CI and CV from a count, a sum and a sum of squares."""
    mean = total / n
    if n < 2:
        return Spread(n, mean, None, None, None, None)
    std = math.sqrt(max((sum_squares - total * total / n) / (n - 1), 0.0))
    half = t_quantile_975(n - 1) * std / math.sqrt(n)
    return Spread(n, mean, std, mean - half, mean + half, std / mean if mean else None)


@dataclass(frozen=True)
class CellStats:
    task: str
    model: str
    dataset: str
    hardware_class: str
    kwh_per_1k: Spread
    net_kwh_per_1k_mean: float | None  # above the worker's idle baseline
    g_co2e_per_1k_mean: float
    outliers: int
    unreliable: int
    estimated_components: str


def cell_stats(session: Session, *, sweep_id: int, grid_intensity_g_per_kwh: float | None = None) -> list[CellStats]:
    """Per (task, model, dataset, hardware class) statistics of kWh per 1,000 queries.

    With `grid_intensity_g_per_kwh` emissions are recomputed from stored energy
    instead of using the intensity the sweep was measured with.
    """
    x = Measurement.kwh_per_1k_queries
    net = (Measurement.energy_kwh - Measurement.idle_energy_kwh) * 1000 / Measurement.n_queries
    grams = (
        x * grid_intensity_g_per_kwh
        if grid_intensity_g_per_kwh is not None
        else Measurement.emissions_kg * 1e6 / Measurement.n_queries
    )
    rows = session.execute(
        select(
            Job.task, Job.model, Job.cell_key, Run.dataset, Job.hardware_class,
            func.count(), func.sum(x), func.sum(x * x), func.avg(net), func.avg(grams),
            _count_true(Measurement.is_outlier), _count_true(Measurement.is_unreliable),
            func.min(Measurement.cpu_method), func.max(Measurement.gpu_method),
        )
        .join(Run, Run.job_id == Job.id)
        .join(Measurement, (Measurement.run_id == Run.id) & (Measurement.phase == "query"))
        .where(Job.sweep_id == sweep_id)
        .group_by(Job.task, Job.model, Job.cell_key, Run.dataset, Job.hardware_class)
        .order_by(Job.task, func.avg(x))
    ).all()
    # One sweep-axis cell's repetitions are one sample: a model at two batch sizes is two cells ("model [key]").
    return [
        CellStats(task, f"{model} [{cell}]" if cell else model, dataset, hardware, spread(n, total, squares),
                  net_mean, grams_mean, int(outliers or 0), int(unreliable or 0),
                  estimated_components(cpu_method, gpu_method))
        for (task, model, cell, dataset, hardware, n, total, squares, net_mean, grams_mean, outliers, unreliable,
             cpu_method, gpu_method) in rows
    ]


def _count_true(column):
    return func.sum(case((column, 1), else_=0))


def estimated_components(cpu_method: str | None, gpu_method: str | None) -> str:
    """Which components were modelled rather than measured: RAM always is."""
    estimated = [] if cpu_method == "rapl" else ["cpu"]
    if gpu_method == "power-sampling":
        estimated.append("gpu")
    return ", ".join([*estimated, "ram"])


def flag_outliers(session: Session, *, job_id: int, dataset: str, new: Measurement) -> None:
    """Flag `new` (a query window not yet added) and re-flag its cell's stored runs: beyond 3 scaled MADs from
    the median is an outlier (kept, not dropped)."""
    rows = session.execute(
        select(Measurement.id, Measurement.kwh_per_1k_queries, Measurement.is_outlier)
        .join(Run, Run.id == Measurement.run_id)
        .where(Run.job_id == job_id, Run.dataset == dataset, Measurement.phase == "query")
    ).all()
    values = [value for _, value, _ in rows] + [new.kwh_per_1k_queries]
    median = statistics.median(values)
    mad = statistics.median(abs(value - median) for value in values) * MAD_TO_SIGMA

    def is_outlier(value: float) -> bool:
        return len(values) >= 3 and mad > 0 and abs(value - median) > MAD_THRESHOLD * mad

    new.is_outlier = is_outlier(new.kwh_per_1k_queries)
    changed = {True: [], False: []}  # one UPDATE per new flag value, only for the stored rows whose flag changes
    for measurement_id, value, was_outlier in rows:
        if is_outlier(value) != was_outlier:
            changed[not was_outlier].append(measurement_id)
    for outlier, ids in changed.items():
        if ids:
            session.execute(update(Measurement).where(Measurement.id.in_(ids)).values(is_outlier=outlier))
