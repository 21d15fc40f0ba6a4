"""Star ratings by AI Energy Score's published rule, and the energy-latency Pareto front. Pure functions.

The rule (AI Energy Score documentation, "What do the star ratings mean?"):
the range of a task's energy per 1,000 queries over the models of a reference
set is divided into five equal-width bands; a model in the lowest band gets 5
stars, in the highest 1 star. Text generation is rated within size classes
(its Table 2, by memory footprint: scheduler.report.size_classes); here
reasoning is too. A reference row may carry its own `size_class` (the
leaderboard's published results do), which wins. AI Energy Score rates by GPU energy alone (to compare GPUs
like for like); `energy="headline"` rates by the headline figure instead
(GPU plus the window's attributed CPU and RAM energy).

Details the documentation leaves open, decided here: bands are half-open,
[low, low + w) is 5 stars, ..., [low + 4w, high] 1 star (a value on a
boundary takes the dearer band's stars); GPU energy of 0 (a CPU run:
no GPU measured) is not rated by the GPU rule, nor taken into a
reference range; a reference set whose
models all use the same energy gives every model 5 stars; a rated model
outside the reference range is clipped (below it: 5 stars, above: 1); a
classed task's model of unknown size cannot be rated (stars None).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from scheduler.report.size_classes import CLASSED_TASKS, size_class

ENERGY_COLUMNS = {"gpu": "gpu_kwh_per_1k_mean", "headline": "kwh_per_1k_mean"}
ENERGY_LABELS = {"gpu": "GPU energy only (as AI Energy Score rates)",
                 "headline": "headline energy (GPU + attributed CPU and RAM)"}


def row_class(row: Mapping[str, Any]) -> str | None:
    """A row's size class: its own (a published reference row's), else AI Energy Score's rule on its size."""
    if row.get("size_class") is not None and row["task"] in CLASSED_TASKS:
        return row["size_class"]
    return size_class(row["task"], row.get("num_parameters"), row.get("model"), row.get("model_dtype"))


def stars(value: float, low: float, high: float) -> int:
    """AI Energy Score's five equal-width bands between `low` and `high`: 5 stars for the lowest band."""
    if not high > low:
        return 5
    band = int((value - low) / ((high - low) / 5))
    return 5 - min(4, max(0, band))


class Rating(NamedTuple):  # a tuple: a 10,000-model sweep makes 10,000, and a frozen dataclass's __init__ costs
    # several times a tuple's
    task: str
    model: str
    cell_key: str
    size_class: str | None
    kwh_per_1k: float | None
    stars: int | None
    band_low_kwh_per_1k: float | None  # the reference range the bands divide
    band_high_kwh_per_1k: float | None
    reference_models: int  # models (cells) in the reference group
    energy: str  # "gpu" or "headline"
    reference: str  # the reference set's name
    unrated: str | None = None  # why stars is None, in words

    def as_dict(self) -> dict[str, Any]:
        fields = self._asdict()
        fields["energy_label"] = ENERGY_LABELS[self.energy]
        fields["wh_per_1k"] = self.kwh_per_1k * 1000 if self.kwh_per_1k is not None else None
        return fields


def rate(models: Iterable[Mapping[str, Any]], reference: Iterable[Mapping[str, Any]], *, energy: str = "gpu",
         reference_name: str = "this sweep") -> list[Rating]:
    """A rating for each row of `models` (v_model_summary rows: one per cell) against the `reference` rows."""
    column = ENERGY_COLUMNS[energy]
    groups: dict[tuple[str, str | None], list[float]] = {}
    classes: dict[int, str | None] = {}  # by row: the sweep's own rows are usually the reference too, classed once
    for row in reference:
        value = row.get(column)
        group = (row["task"], classes.setdefault(id(row), row_class(row)))
        if _measured(value, energy) and group[1] is not None:
            groups.setdefault(group, []).append(float(value))
    extremes = {group: (min(values), max(values)) for group, values in groups.items()}  # once per group, not row
    ratings = []
    for row in models:
        klass = classes[id(row)] if id(row) in classes else row_class(row)
        value = row.get(column)
        group = (row["task"], klass)
        values = groups.get(group, [])
        low, high = extremes.get(group, (None, None))
        unrated = _unrated(value, energy, klass, values)
        given = stars(float(value), low, high) if unrated is None else None
        ratings.append(Rating(row["task"], row["model"], row.get("cell_key") or "", klass,
                              float(value) if value is not None else None, given, low, high, len(values), energy,
                              reference_name, unrated))
    return ratings


def _measured(value: float | None, energy: str) -> bool:
    """A figure the rule can rate: GPU energy of 0 is no GPU measured (a CPU run), not the most frugal model."""
    return value is not None and (energy != "gpu" or float(value) > 0)


def _unrated(value: float | None, energy: str, klass: str | None, values: list[float]) -> str | None:
    if value is not None and energy == "gpu" and float(value) <= 0:
        return "no GPU energy measured: rate the whole energy with --rating-energy headline"
    if value is None:
        return "no energy figure"
    if klass is None:
        return "size unknown"
    if not values:
        return "no reference figures for its task and class"
    return None


def pareto_front(points: Iterable[tuple[float, float, Any]]) -> list[Any]:
    """The points (x, y, key) that no other point beats on both (lower x and lower y), by rising x."""
    ordered = sorted(((x, y, key) for x, y, key in points if x is not None and y is not None),
                     key=lambda p: (p[0], p[1]))
    front, best_y = [], math.inf
    for _x, y, key in ordered:
        if y < best_y:
            front.append(key)
            best_y = y
    return front
