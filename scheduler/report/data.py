"""What a report shows, read from the result views, and the arithmetic on top of them.

The views aggregate; this module only reads their rows (one per task, model
kind or model) and derives the everyday equivalents, multi-purpose vs
task-specific per task, and the training-vs-inference break-even.
Formats (table, csv, json, html) render a `ReportData`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Sweep, Worker
from db.results.views import (
    cell_rows,
    model_kind_rows,
    model_rows,
    progress_row,
    provenance_rows,
    serving_cell_rows,
    task_rows,
)
from scheduler.report.html_parts import cells_by_other_axes
from scheduler.report.power_limits import limits_by_job, power_limit_groups

# EPA figure the study used for one smartphone charge (an earlier version of the paper used 0.012).
PHONE_CHARGE_KWH = 0.022
# EPA greenhouse-gas equivalencies: 3.93e-4 t CO2e per mile by an average gasoline passenger vehicle
# = 244.2 g per km (the study's 1,594 g for 1,000 SDXL images ~ 6.6 km).
CAR_G_PER_KM = 393 / 1.609344
DAILY_QUERIES = 1_000_000
TASK_SPECIFIC, MULTI_PURPOSE = "task-specific", "multi-purpose"
HEADLINE = ("each window's own energy: its pinned GPU plus its attributed share of the host's CPU and RAM energy "
            "(node-wide readings are the node_* fields)")
NODE_WIDE_NOTE = ("{runs} of {total} run(s) have no attributed share (imported CodeCarbon logs, or rows stored before "
                  "attribution): their figures are the node-wide readings")
EXCLUDED_RULE = ("runs whose GPU energy is 0 (no energy counter and no power reading, flagged gpu-energy-zero) hold no "
                 "measurement: no figure includes them, and excluded_runs counts them")
EXCLUDED_NOTE = "{runs} run(s) excluded: their GPU energy is 0 (flagged gpu-energy-zero), which is no measurement"


class TrainingEnergyError(ValueError):
    """A --training-energy value that is not MODEL=KWH with a positive number."""


@dataclass(frozen=True)
class ReportOptions:
    phone_charge_kwh: float = PHONE_CHARGE_KWH
    car_g_per_km: float = CAR_G_PER_KM
    daily_queries: int = DAILY_QUERIES
    training_energy_kwh: dict[str, float] = field(default_factory=dict)  # from the command line
    grid_intensity_g_per_kwh: float | None = None  # recompute emissions from stored energy at this intensity
    rating_energy: str = "gpu"  # stars by GPU energy (AI Energy Score) or "headline"
    rate_against: str | None = None  # the reference sweep for the stars (default: the sweep itself)


@dataclass
class ReportData:
    sweep: dict[str, Any]
    progress: dict[str, Any]
    tasks: list[dict[str, Any]]
    models: list[dict[str, Any]]
    provenance: list[dict[str, Any]]
    workers: list[dict[str, Any]]
    equivalents: list[dict[str, Any]]
    break_even: list[dict[str, Any]]
    options: ReportOptions
    generated_at: datetime
    model_kinds: list[dict[str, Any]] = field(default_factory=list)  # v_model_kind_summary rows
    kind_comparison: list[dict[str, Any]] = field(default_factory=list)  # per task: the two kinds side by side
    ratings: list[dict[str, Any]] = field(default_factory=list)  # AI Energy Score stars per cell (report.ratings)
    rating: dict[str, Any] = field(default_factory=dict)  # which energy and reference set the stars used
    pareto: list[dict[str, Any]] = field(default_factory=list)  # per task: cells on the energy-latency front
    batch_curves: list[dict[str, Any]] = field(default_factory=list)  # per (task, model): energy by batch size
    cells: list[dict[str, Any]] = field(default_factory=list)  # v_cell_summary: repetitions per (model, dataset)
    energy: dict[str, Any] = field(default_factory=dict)  # what the figures are (headline) and where node-wide
    serving: list[dict[str, Any]] = field(default_factory=list)  # v_serving_cells: served cells (report.serving)
    power_limits: list[dict[str, Any]] = field(default_factory=list)  # cells by GPU power limit (report.power_limits)

    @property
    def empty(self) -> bool:
        return not self.tasks


def parse_training_energy(values: list[str] | None) -> dict[str, float]:
    """`["bloomz-7b1=51686", ...]` -> {"bloomz-7b1": 51686.0}."""
    declared = {}
    for value in values or []:
        model, _, kwh = value.rpartition("=")
        try:
            number = float(kwh)
        except ValueError:
            number = -1.0
        if not model or not number > 0:
            raise TrainingEnergyError(f"--training-energy {value!r}: expected MODEL=KWH with KWH > 0, "
                                      "e.g. bigscience/bloomz-7b1=51686")
        declared[model.strip()] = number
    return declared


def declared_in_spec(spec: dict[str, Any]) -> dict[str, float]:
    """Training energies a sweep file declares: `training_energy_kwh: {model: kWh}` at the top or in a task."""
    declared: dict[str, float] = {}
    sources = [spec.get("training_energy_kwh")]
    sources += [task.get("training_energy_kwh") for task in (spec.get("tasks") or {}).values()
                if isinstance(task, dict)]
    for source in sources:
        if isinstance(source, dict):
            declared.update({str(k): float(v) for k, v in source.items() if isinstance(v, int | float) and v > 0})
    return declared


def _model_key(ref: str) -> str:
    """hub:bigscience/bloomz-7b1@main -> bigscience/bloomz-7b1 (case-insensitive)."""
    ref = re.sub(r"^(hub|path|tiny):", "", ref.strip())
    return ref.split("@", 1)[0].lower()


def match_training(models: list[str], declared: dict[str, float]) -> dict[str, tuple[float, str]]:
    """Which sweep model each declared name means: the full reference, or its last path part if unique."""
    if not declared:  # most sweeps declare none: no need to key 10,000 models
        return {}
    by_key = {_model_key(m): m for m in models}
    by_tail: dict[str, list[str]] = {}
    for m in models:
        by_tail.setdefault(_model_key(m).rsplit("/", 1)[-1], []).append(m)
    matched = {}
    for name, kwh in declared.items():
        key = _model_key(name)
        model = by_key.get(key)
        if model is None and len(by_tail.get(key.rsplit("/", 1)[-1], [])) == 1:
            model = by_tail[key.rsplit("/", 1)[-1]][0]
        if model is not None:
            matched[model] = (kwh, name)
    return matched


def _grams(kwh: float | None, g_per_kwh: float) -> float | None:
    return kwh * g_per_kwh if kwh is not None else None


def equivalents(tasks: list[dict[str, Any]], options: ReportOptions) -> list[dict[str, Any]]:
    """Per task, 1,000 queries in smartphone charges and in km driven by an average petrol car."""
    rows = []
    for t in tasks:
        kwh, grams = t["kwh_per_1k_model_mean"], t["g_co2e_per_1k_mean"]
        rows.append({
            "task": t["task"], "kwh_per_1k": kwh, "g_co2e_per_1k": grams,
            "phone_charges_per_1k": kwh / options.phone_charge_kwh if kwh is not None else None,
            "car_km_per_1k": grams / options.car_g_per_km if grams is not None else None,
        })
    return rows


def kind_comparison(kinds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per task: the median over task-specific and over multi-purpose models, and how many times more the
    multi-purpose ones cost (multi-purpose / task-specific; None unless the task has both kinds)."""
    by_task: dict[str, dict[str, dict[str, Any]]] = {}
    for row in kinds:
        by_task.setdefault(row["task"], {})[row["model_kind"]] = row
    rows = []
    for task, both in sorted(by_task.items()):
        ts, mp = both.get(TASK_SPECIFIC, {}), both.get(MULTI_PURPOSE, {})
        ts_median, mp_median = ts.get("kwh_per_1k_model_median"), mp.get("kwh_per_1k_model_median")
        rows.append({
            "task": task, "task_specific_models": ts.get("models", 0),
            "task_specific_kwh_per_1k_median": ts_median, "multi_purpose_models": mp.get("models", 0),
            "multi_purpose_kwh_per_1k_median": mp_median,
            "ratio": mp_median / ts_median if ts_median and mp_median is not None else None,
        })
    return rows


def break_even(models: list[dict[str, Any]], training: dict[str, tuple[float, str]],
               options: ReportOptions) -> list[dict[str, Any]]:
    """Inferences (queries) whose energy equals the model's declared training energy, and days to reach them."""
    rows = []
    for m in models:
        if m["model"] not in training or not m["kwh_per_1k_mean"] or m["kwh_per_1k_mean"] <= 0:
            continue
        training_kwh, source = training[m["model"]]
        per_query = m["kwh_per_1k_mean"] / 1000
        inferences = training_kwh / per_query
        rows.append({
            "task": m["task"], "model": m["model"], "training_kwh": training_kwh, "declared_as": source,
            "kwh_per_query": per_query, "inferences_to_match_training": inferences,
            "days_at_daily_queries": inferences / options.daily_queries,
        })
    return sorted(rows, key=lambda r: (r["task"], r["model"]))


def cell_label(row: dict[str, Any]) -> str:
    """A model with its cell's axis values, as reports name a cell: `tiny:gpt2 [batch_size=8]`."""
    return f"{row['model']} [{row['cell_key']}]" if row.get("cell_key") else row["model"]


def rows_by_task(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The rows of each task, in their order: one pass over a 10,000-model sweep, not one per task."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_task.setdefault(row["task"], []).append(row)
    return by_task


def pareto_rows(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per task, the cells no other cell beats on both energy per 1,000 queries and p95 latency."""
    from scheduler.report.ratings import pareto_front

    rows = []
    for task, cells in sorted(rows_by_task(models).items()):
        front = pareto_front((m.get("latency_p95_s_mean"), m.get("kwh_per_1k_mean"), cell_label(m)) for m in cells)
        rows.append({"task": task, "cells": len(cells), "front": front})
    return rows


def batch_curves(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (task, model) measured at more than one batch size: energy and latency at each (other axes apart)."""
    curves: list[dict[str, Any]] = []
    if len({m.get("batch_size") for m in models}) < 2:  # one batch size in the whole sweep: no curve anywhere
        return curves
    for (task, model, rest), cells in cells_by_other_axes(models, "batch_size"):
        sizes = {c.get("batch_size") for c in cells}
        if len(sizes) < 2 or None in sizes:
            continue
        points = [{"batch_size": c["batch_size"], "kwh_per_1k": c["kwh_per_1k_mean"],
                   "latency_p95_s": c.get("latency_p95_s_mean"), "throughput_queries_per_s":
                   c.get("throughput_queries_per_s_mean")} for c in sorted(cells, key=lambda c: c["batch_size"])]
        curves.append({"task": task, "model": model, "other_axes": rest, "points": points})
    return curves


@dataclass
class ReportRows:
    """Everything a report reads from the database. It is read first, in one go, so that the caller can end its
    transaction before the arithmetic and the rendering: on a sweep of 10,000 models those took longer than the
    server lets a session sit idle in a transaction (`idle_in_transaction_session_timeout`), and the report lost
    its connection."""
    sweep: SimpleNamespace  # the Sweep's columns, detached from the session
    tasks: list[dict[str, Any]]
    models: list[dict[str, Any]]
    kinds: list[dict[str, Any]]
    cells: list[dict[str, Any]]
    provenance: list[dict[str, Any]]
    workers: list[dict[str, Any]]
    progress: dict[str, Any]
    serving: list[dict[str, Any]]
    power_limits: dict[int, tuple[float | None, float | None]]  # job id -> limit asked for, limit read back
    reference: list[dict[str, Any]]  # what the stars rate against
    reference_name: str


_SWEEP_COLUMNS = ("id", "name", "mode", "hardware_class", "created_at", "country_iso_code", "region",
                  "grid_intensity_g_per_kwh", "cancelled", "spec")


def read_report(session: Session, sweep: Sweep, options: ReportOptions) -> ReportRows:
    """The report's rows: the views' rows for `sweep`, its workers, and the reference the stars rate against."""
    models = model_rows(session, sweep_id=sweep.id)
    provenance = provenance_rows(session, sweep_id=sweep.id)
    worker_ids = sorted({p["worker_id"] for p in provenance if p["worker_id"]})
    workers = [
        {"id": w.id, "hostname": w.hostname, "device": w.device, "hardware_class": w.hardware_class,
         "inventory": w.inventory}
        for w in session.scalars(select(Worker).where(Worker.id.in_(worker_ids)).order_by(Worker.id))
    ] if worker_ids else []
    reference, reference_name = read_reference(session, sweep, options, models)
    return ReportRows(
        sweep=SimpleNamespace(**{name: getattr(sweep, name) for name in _SWEEP_COLUMNS}),
        tasks=task_rows(session, sweep_id=sweep.id), models=models,
        kinds=model_kind_rows(session, sweep_id=sweep.id), cells=cell_rows(session, sweep_id=sweep.id),
        provenance=provenance, workers=workers, progress=progress_row(session, sweep_id=sweep.id) or {},
        serving=serving_cell_rows(session, sweep_id=sweep.id), power_limits=limits_by_job(session, sweep_id=sweep.id),
        reference=reference, reference_name=reference_name)


def read_reference(session: Session, sweep: Sweep, options: ReportOptions, models: list[dict[str, Any]]
                   ) -> tuple[list[dict[str, Any]], str]:
    """What the stars rate against, and its name: the sweep's own `models`, or `--rate-against`'s."""
    if options.rate_against is None:
        return models, f"this sweep ({sweep.name})"
    from db.queue.sweeps import find_sweep
    from db.results.references import reference_rows

    published = reference_rows(session, name=options.rate_against)
    if published:  # an imported reference set: the leaderboard's own results, so the leaderboard's stars
        return published, f"AI Energy Score leaderboard ({options.rate_against})"
    other = find_sweep(session, ref=options.rate_against)  # SweepNotFound: the CLI lists the names
    return model_rows(session, sweep_id=other.id), f"sweep {other.name} (id {other.id})"


def star_ratings(sweep: Any, models: list[dict[str, Any]], reference: list[dict[str, Any]], reference_name: str,
                 options: ReportOptions) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """AI Energy Score stars per cell, and which energy and reference they used."""
    from scheduler.report.ratings import ENERGY_LABELS, rate

    ratings = [r.as_dict() for r in rate(models, reference, energy=options.rating_energy,
                                         reference_name=reference_name)]
    rating = {"energy": options.rating_energy, "energy_label": ENERGY_LABELS[options.rating_energy],
              "reference": reference_name, "reference_cells": len(reference), "protocol": protocol_of(sweep),
              "rule": "5 equal-width bands of energy per 1,000 queries between the task's minimum and maximum over "
                      "the reference set; 5 stars = lowest band; text generation and reasoning per size class "
                      "(memory footprint, 1.2 GB per billion FP16 parameters: <= 24 GB, <= 80 GB, more; AI Energy "
                      "Score's published class where it gives one)"}
    return ratings, rating


def read_level(session: Session, sweep: Sweep, level: str, options: ReportOptions) -> list[dict[str, Any]]:
    """One view's rows (task, model or cell: `--format csv --level`), with emissions at the override intensity:
    a CSV shows one level, so it reads only that view."""
    rows = {"task": task_rows, "model": model_rows, "cell": cell_rows}[level](session, sweep_id=sweep.id)
    if options.grid_intensity_g_per_kwh is not None:  # as build_report
        for row in rows:
            row["g_co2e_per_1k_mean"] = _grams(row["kwh_per_1k_mean"], options.grid_intensity_g_per_kwh)
    return rows


def gather(session: Session, sweep: Sweep, options: ReportOptions) -> ReportData:
    """read_report then build_report: for callers that keep their session open anyway (small sweeps, tests)."""
    return build_report(read_report(session, sweep, options), options)


def build_report(rows: ReportRows, options: ReportOptions) -> ReportData:
    """What the report shows, from its rows: no database."""
    sweep, tasks, models, kinds, cells = rows.sweep, rows.tasks, rows.models, rows.kinds, rows.cells
    if options.grid_intensity_g_per_kwh is not None:  # energy is primary: emissions follow from any intensity
        for row in (*tasks, *models, *cells):
            row["g_co2e_per_1k_mean"] = _grams(row["kwh_per_1k_mean"], options.grid_intensity_g_per_kwh)
        for row in kinds:  # the mean over models of (model mean x intensity) = (mean over models) x intensity
            row["g_co2e_per_1k_model_mean"] = _grams(row["kwh_per_1k_model_mean"], options.grid_intensity_g_per_kwh)
    declared = declared_in_spec(sweep.spec or {}) | options.training_energy_kwh
    training = match_training(sorted({m["model"] for m in models}), declared)
    info = {
        "id": sweep.id, "name": sweep.name, "mode": sweep.mode, "hardware_class": sweep.hardware_class,
        "created_at": sweep.created_at, "country_iso_code": sweep.country_iso_code, "region": sweep.region,
        "grid_intensity_g_per_kwh": sweep.grid_intensity_g_per_kwh, "cancelled": sweep.cancelled,
        "grid_intensity_override": options.grid_intensity_g_per_kwh,
        "source_files": (sweep.spec or {}).get("source_files"),
        "training_energy_unmatched": sorted(set(declared) - {name for _, name in training.values()}),
    }
    ratings, rating = star_ratings(sweep, models, rows.reference, rows.reference_name, options)
    return ReportData(
        sweep=info, progress=rows.progress, tasks=tasks, models=models,
        provenance=rows.provenance, workers=rows.workers, equivalents=equivalents(tasks, options),
        break_even=break_even(models, training, options), options=options, generated_at=datetime.now().astimezone(),
        model_kinds=kinds, kind_comparison=kind_comparison(kinds), ratings=ratings, rating=rating,
        pareto=pareto_rows(models), batch_curves=batch_curves(models), cells=cells, energy=energy_note(tasks),
        serving=rows.serving, power_limits=power_limit_groups(models, rows.power_limits),
    )


def protocol_of(sweep: Any) -> str:
    """Which protocol a sweep's figures follow, for labels: AI Energy Score's where the sweep file says so
    (`protocol: aienergyscore`, as its presets do), never guessed from a name."""
    if (sweep.spec or {}).get("protocol") == "aienergyscore":
        return f"AI Energy Score's (sweep {sweep.name})"
    return f"sweep {sweep.name}'s own, not AI Energy Score's"


def energy_note(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """What every energy figure of the report is, and how many runs fall back on the node-wide reading."""
    runs = sum(t["runs"] or 0 for t in tasks)
    node_wide = sum(t["node_wide_runs"] or 0 for t in tasks)
    return {"accounting": "headline", "definition": HEADLINE, "runs": runs, "node_wide_runs": node_wide,
            "note": NODE_WIDE_NOTE.format(runs=node_wide, total=runs) if node_wide else None,
            "excluded_runs": sum(t["excluded_runs"] or 0 for t in tasks), "excluded": EXCLUDED_RULE}
