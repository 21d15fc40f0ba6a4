"""Headline energy and repetition statistics: mean, standard deviation, 95% CI (exact Student t), CV, MAD outliers.

The headline energy of a window is its own: the pinned GPU's energy plus the
window's attributed share of the host's CPU and RAM energy (db.results.attribution).
A window with no attributed share (imported CodeCarbon logs, rows stored
before attribution, a worker with no host identity) has only the node-wide
reading, and its headline is that reading (the views' `energy_basis` says which
one a figure is). The SQL views use the same rule (migration 0014, `HEADLINE_KWH`).

Per-cell statistics are read from the `v_cell_summary` view; the t quantile
here is scipy's, for any degrees of freedom (the view computes the same
quantile in SQL and the tests hold both to scipy).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.orm import Session

from db.models import Measurement, Run

# Outliers: a run further than MAD_THRESHOLD scaled MADs from its cell's median (the modified z-score of
# Iglewicz & Hoaglin), flagged only from MAD_MIN_RUNS runs: below that the median and the MAD of a normal
# sample say too little (at n = 3, 3 raw MADs flag a third of normal cells). The MAD is scaled to a standard
# deviation (1.4826) with Croux & Rousseeuw's small-sample factor, so that it is unbiased for normal data.
MAD_MIN_RUNS = 5
MAD_THRESHOLD = 3.5
MAD_TO_SIGMA = 1.4826
_MAD_SMALL_SAMPLE = {5: 1.206, 6: 1.200, 7: 1.140, 8: 1.129, 9: 1.107}  # beyond: n / (n - 0.8)
MEAN_AD_TO_SIGMA = 1.2533  # sqrt(pi / 2): when more than half the values are equal, the MAD is 0


def headline_kwh(window: Any) -> float:
    """Own GPU + attributed CPU + attributed RAM; the node-wide reading where nothing was attributed."""
    cpu, ram = window.cpu_energy_attributed_kwh, window.ram_energy_attributed_kwh
    if cpu is None and ram is None:
        return window.energy_kwh
    return ((window.gpu_energy_kwh or 0.0) + (cpu if cpu is not None else window.cpu_energy_kwh or 0.0)
            + (ram if ram is not None else window.ram_energy_kwh or 0.0))


def headline_kwh_column():
    """`headline_kwh` as a SQL expression over the measurements table (for queries outside the views)."""
    m = Measurement
    return case(
        (and_(m.cpu_energy_attributed_kwh.is_(None), m.ram_energy_attributed_kwh.is_(None)), m.energy_kwh),
        else_=m.gpu_energy_kwh + case((m.cpu_energy_attributed_kwh.is_(None), m.cpu_energy_kwh),
                                      else_=m.cpu_energy_attributed_kwh)
        + case((m.ram_energy_attributed_kwh.is_(None), m.ram_energy_kwh), else_=m.ram_energy_attributed_kwh),
    )


# A window whose GPU energy is 0 holds no measurement (no energy counter and no power reading: codecarbon issue
# 1316): it is kept out of every figure, outlier detection included (the views: migrations.views.expressions.kept).
NO_GPU_READING = "gpu-energy-zero"


def has_gpu_reading(window: Any) -> bool:
    return NO_GPU_READING not in (window.flags or "").split(",")


def has_gpu_reading_column():
    """`has_gpu_reading` as a SQL condition over the measurements table."""
    return or_(Measurement.flags.is_(None), Measurement.flags.not_like(f"%{NO_GPU_READING}%"))


def set_headline(window: Measurement) -> None:
    """Keep a stored window's kWh per 1,000 queries equal to its headline energy (after attribution)."""
    if window.n_queries:
        window.kwh_per_1k_queries = headline_kwh(window) * 1000 / window.n_queries


def t_quantile_975(df: int) -> float:
    """Two-sided 95% Student t quantile t(0.975, df), exact for any df >= 1."""
    from scipy.stats import t  # imported here: `wattsweep --help` and the scheduler's plan stay light

    return float(t.ppf(0.975, df))


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
    g_co2e_per_1k_mean: float | None
    outliers: int
    unreliable: int
    estimated_components: str
    node_wide_runs: int = 0  # runs whose headline is the node-wide reading (nothing attributed)
    node_kwh_per_1k_mean: float | None = None  # the node-wide reading (the study's accounting)
    excluded: int = 0  # windows with no GPU reading (gpu-energy-zero), kept out of every figure


def cell_stats(session: Session, *, sweep_id: int, grid_intensity_g_per_kwh: float | None = None) -> list[CellStats]:
    """Per (task, model [axis cell], dataset, hardware class) statistics of the headline kWh per 1,000 queries,
    read from v_cell_summary.

    With `grid_intensity_g_per_kwh` emissions are recomputed from stored energy
    instead of using the intensity the sweep was measured with.
    """
    from db.results.views import cell_rows

    stats = []
    for row in cell_rows(session, sweep_id=sweep_id):
        model = f"{row['model']} [{row['cell_key']}]" if row["cell_key"] else row["model"]
        mean = row["kwh_per_1k_mean"]
        grams = (mean * grid_intensity_g_per_kwh if grid_intensity_g_per_kwh is not None and mean is not None
                 else row["g_co2e_per_1k_mean"])
        s = Spread(row["runs"], mean, row["kwh_per_1k_std"], row["kwh_per_1k_ci95_low"], row["kwh_per_1k_ci95_high"],
                   row["kwh_per_1k_cv"])
        stats.append(CellStats(row["task"], model, row["dataset"], row["hardware_class"], s,
                               row["net_kwh_per_1k_mean"], grams, row["outlier_runs"], row["unreliable_runs"],
                               row["estimated_components"], row["node_wide_runs"], row["node_kwh_per_1k_mean"],
                               row["excluded_runs"] or 0))
    return stats


def robust_sigma(values: list[float]) -> float:
    """The MAD scaled to a standard deviation, small-sample corrected; the mean absolute deviation when the MAD
    is 0 (more than half the values equal), so that a cell of equal values but one can still flag that one."""
    n = len(values)
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    if mad > 0:
        return mad * MAD_TO_SIGMA * _MAD_SMALL_SAMPLE.get(n, n / (n - 0.8))
    return statistics.fmean(abs(v - median) for v in values) * MEAN_AD_TO_SIGMA


def outlier_flags(values: list[float]) -> list[bool]:
    """Which values lie beyond MAD_THRESHOLD robust sigmas from the median (none below MAD_MIN_RUNS values)."""
    if len(values) < MAD_MIN_RUNS:
        return [False] * len(values)
    median, sigma = statistics.median(values), robust_sigma(values)
    return [sigma > 0 and abs(v - median) > MAD_THRESHOLD * sigma for v in values]


def flag_outliers(session: Session, *, job_id: int, dataset: str, new: Measurement | None = None) -> None:
    """Flag `new` (a query window, added or not) and re-flag its cell's stored runs (kept, never dropped)."""
    reflag_cells(session, job_ids=[job_id], new={(job_id, dataset): new} if new is not None else {})


def reflag_cells(session: Session, *, job_ids: Iterable[int], new: dict[tuple[int, str], Measurement] | None = None
                 ) -> None:
    """Re-flag every (job, dataset) cell of `job_ids` from the stored headline figures, in one query.

    `new`: a query window per cell not stored yet (or stored in this transaction): its flag is set on the object.
    Called after attribution, which may revise stored windows' headlines (and so their cells' flags). Windows with
    no GPU reading are neither flagged nor counted in their cell's median and spread.
    """
    new = new or {}
    job_ids = sorted(set(job_ids))
    if not job_ids:
        return
    session.flush()  # new windows already added get their ids here: they are counted once, as `new`
    skip = {w.id for w in new.values() if w.id is not None}
    cells: dict[tuple[int, str], list[tuple[int | None, float, bool]]] = {}
    per_1k = headline_kwh_column() * 1000.0 / Measurement.n_queries  # from the components, however they were set
    for measurement_id, job_id, dataset, value, was in session.execute(
        select(Measurement.id, Run.job_id, Run.dataset, per_1k, Measurement.is_outlier)
        .join(Run, Run.id == Measurement.run_id)
        .where(Run.job_id.in_(job_ids), Measurement.phase == "query", Measurement.n_queries > 0,
               has_gpu_reading_column())
    ).all():
        if measurement_id not in skip and value is not None:
            cells.setdefault((job_id, dataset), []).append((measurement_id, value, bool(was)))
    for key, window in new.items():
        if not has_gpu_reading(window):
            window.is_outlier = False
        elif window.kwh_per_1k_queries is not None:
            cells.setdefault(key, []).append((None, window.kwh_per_1k_queries, False))
    changed: dict[bool, list[int]] = {True: [], False: []}  # one UPDATE per flag value, only for rows that change
    for key, rows in cells.items():
        for (measurement_id, _, was), flag in zip(rows, outlier_flags([v for _, v, _ in rows]), strict=True):
            if measurement_id is None:
                new[key].is_outlier = flag
            elif flag != was:
                changed[flag].append(measurement_id)
    for flag, ids in changed.items():
        if ids:
            session.execute(update(Measurement).where(Measurement.id.in_(ids)).values(is_outlier=flag))
