"""Matrix expansion: a pure function from a sweep spec to jobs and their runs.

A job is one (task, model, hardware class) cell: the model is loaded once per
job. Its runs are the (dataset, repetition) pairs measured with that model.
A job's model is task-specific (run by the task's own pipeline) or
multi-purpose (listed under the task's `zero_shot`: prompted to do the task).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scheduler.spec import SweepSpec
from worker.workloads import ZERO_SHOT_WORKLOADS

TASK_SPECIFIC = "task-specific"
MULTI_PURPOSE = "multi-purpose"


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
    model_kind: str = TASK_SPECIFIC  # or MULTI_PURPOSE


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
            jobs.append(PlannedJob(task, model, hardware_class, _params(spec, task_spec.params, model), runs))
        if task_spec.zero_shot:  # the prompt and lengths in force are stored with the job, defaults included
            defaults = {k: v for k, v in ZERO_SHOT_WORKLOADS[task].default_params.items() if v is not None}
            for model in dict.fromkeys(task_spec.zero_shot.models):
                params = _params(spec, {**defaults, **task_spec.zero_shot.params}, model)
                jobs.append(PlannedJob(task, model, hardware_class, params, runs, MULTI_PURPOSE))
    return jobs


def _params(spec: SweepSpec, params: dict[str, Any], model: str) -> dict[str, Any]:
    """The job's params: the task's (or its zero-shot block's), with the model's own dtype if the sweep sets one."""
    dtype = spec.model_dtype.get(model)
    return {**params, "dtype": dtype} if dtype else dict(params)
