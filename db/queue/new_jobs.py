"""What a new job is made of before it is stored (db.queue.sweeps.insert_sweep writes it): plain data, no SQLAlchemy,
so that `plan --workers` can build a sweep's units without importing the database layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NewJob:
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
