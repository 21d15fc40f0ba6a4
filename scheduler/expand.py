"""Matrix expansion: a pure function from a sweep spec to jobs and their runs.

A job is one (task, model, hardware class) cell: the model is loaded once per
job. Its runs are the (dataset, repetition) pairs measured with that model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scheduler.spec import SweepSpec


@dataclass(frozen=True)
class PlannedRun:
    dataset: str
    repetition: int  # 0-based
    n_queries: int
    batch_size: int
    warmup: int


@dataclass(frozen=True)
class PlannedJob:
    task: str
    model: str
    hardware_class: str
    params: dict[str, Any] = field(hash=False)
    runs: tuple[PlannedRun, ...]


def expand(spec: SweepSpec, hardware_class: str | None = None) -> list[PlannedJob]:
    """Every job of the sweep in file order; `hardware_class` overrides the file's."""
    hardware_class = hardware_class or spec.hardware_class
    jobs = []
    for task, task_spec in spec.tasks.items():
        settings = spec.settings_for(task)
        runs = tuple(
            PlannedRun(dataset, repetition, settings.queries, settings.batch_size, settings.warmup)
            for dataset in dict.fromkeys(task_spec.datasets)
            for repetition in range(settings.repetitions)
        )
        for model in dict.fromkeys(task_spec.models):  # a model listed twice is one job
            jobs.append(PlannedJob(task, model, hardware_class, dict(task_spec.params), runs))
    return jobs
