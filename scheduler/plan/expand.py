"""Matrix expansion: a pure function from a sweep spec to jobs and their runs.

A job is one cell: (task, model, hardware class, axis values), and needs the
GPUs its model needs (scheduler.spec.gpus). The model is loaded once per job;
its runs are the (dataset, repetition) pairs measured with that model in that
cell. A job's model is task-specific (run by the
task's own pipeline) or multi-purpose (listed under the task's `zero_shot`:
prompted to do the task).

Sweep axes (worker.contract.catalog.SWEEP_AXES): `batch_size` (a run setting) and task
params such as `max_new_tokens` or `dtype` may be lists; every combination is
its own job, in file order (the first axis varies slowest). Each job carries
the value of every axis that applies to its task, given or default, so that
its columns can be grouped by in SQL, and a `cell_key` naming the values of
the axes given as lists ("" when none is), which keeps cells of one model apart.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from db.queue.sweeps import GroupedRuns, RunGroup
from scheduler.spec.gpus import model_gpus
from scheduler.spec.schema import SweepSpec, task_defaults
from worker.contract.catalog import PARAM_AXES, SWEEP_AXES
from worker.contract.tasks import ZERO_SHOT_TASKS

TASK_SPECIFIC = "task-specific"
MULTI_PURPOSE = "multi-purpose"


@dataclass(frozen=True)
class PlannedJob:
    task: str
    model: str
    hardware_class: str
    params: dict[str, Any] = field(hash=False)
    # each dataset (in order) x each repetition, kept as one group per dataset: a million-run sweep holds 10,000
    # groups, not a million runs (they are made when read)
    runs: GroupedRuns
    model_kind: str = TASK_SPECIFIC  # or MULTI_PURPOSE
    # jobs column -> value, for every axis that applies to the task (given or default); see SWEEP_AXES.
    axes: dict[str, Any] = field(default_factory=dict, hash=False)
    cell_key: str = ""  # "batch_size=8 max_new_tokens=64": the values of the axes given as lists
    gpus: int = 1  # GPUs the job needs (model_gpus, `auto` resolved): only workers holding that many take it


def combinations(axes: dict[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the list-valued entries of `axes` (scalars stay as they are), first key slowest.

    `{"batch_size": [1, 8], "max_new_tokens": [10, 20], "dtype": None}` -> four dicts with scalar values.
    """
    varying = {name: values for name, values in axes.items() if isinstance(values, list)}
    fixed = {name: value for name, value in axes.items() if name not in varying}
    return [{**fixed, **dict(zip(varying, chosen, strict=True))}
            for chosen in itertools.product(*(list(dict.fromkeys(v)) for v in varying.values()))]


def cell_key(values: dict[str, Any], varying: list[str]) -> str:
    """The label of a cell: `name=value` of each varying axis, in axis order."""
    return " ".join(f"{name}={values[name]}" for name in SWEEP_AXES if name in varying)


def expand(spec: SweepSpec, hardware_class: str | None = None, gpus: Mapping[str, int] | None = None
           ) -> list[PlannedJob]:
    """Every job of the sweep in file order; `hardware_class` overrides the file's. `gpus`: each model's GPUs
    (default: scheduler.spec.gpus.model_gpus, where `auto` reads the weights' size on this machine)."""
    hardware_class = hardware_class or spec.hardware_class
    if gpus is None:
        gpus = model_gpus(spec) if spec.model_gpus else {}
    jobs: list[PlannedJob] = []
    for task, task_spec in spec.tasks.items():
        settings = spec.settings_for(task)
        params, defaults = dict(task_spec.params), task_defaults(task, task_spec)
        if task_spec.engine is not None:  # served: the engine goes with every job, and a load is always set
            params["engine"] = dict(task_spec.engine)
            if params.get("concurrency") is None and params.get("request_rate") is None:
                params["concurrency"] = 1
        blocks = [(TASK_SPECIFIC, task_spec.models, params, defaults)]
        if task_spec.zero_shot:  # the prompt and lengths in force are stored with the job, defaults included
            defaults = ZERO_SHOT_TASKS[task].default_params
            given = {k: v for k, v in defaults.items() if v is not None} | dict(task_spec.zero_shot.params)
            blocks.append((MULTI_PURPOSE, task_spec.zero_shot.models, given, defaults))
        for kind, models, params, defaults in blocks:
            for model in dict.fromkeys(models):  # a model listed twice is one job
                jobs += _cells(spec, task, model, kind, hardware_class, settings, params, defaults,
                               gpus.get(model, 1))
    return jobs


def _cells(spec: SweepSpec, task: str, model: str, kind: str, hardware_class: str, settings: Any,
           params: dict[str, Any], defaults: Any, gpus: int) -> list[PlannedJob]:
    """The jobs of one (task, model): one per combination of its axes."""
    params = dict(params)
    # The model's own params win over the task's, for the names this task takes (an axis of them collapses).
    params |= {name: value for name, value in spec.model_params.get(model, {}).items() if name in defaults}
    if spec.model_dtype.get(model):  # the model's own dtype wins over the task's (a dtype axis collapses)
        params["dtype"] = spec.model_dtype[model]
    axes = {"batch_size": settings.batch_size} | {name: params[name] for name in PARAM_AXES if name in params}
    varying = [name for name, value in axes.items() if isinstance(value, list)]
    cells = []
    for values in combinations(axes):
        job_params = {**params, **{name: values[name] for name in PARAM_AXES if name in values}}
        runs = GroupedRuns(RunGroup(dataset, 0, settings.repetitions, settings.queries, values["batch_size"],
                                    settings.warmup) for dataset in dict.fromkeys(spec.tasks[task].datasets))
        columns = {SWEEP_AXES[name]: job_params.get(name, defaults.get(name)) for name in PARAM_AXES
                   if name in defaults}
        columns["batch_size"] = values["batch_size"]
        if job_params.get("engine"):
            columns["engine"] = job_params["engine"]["name"]
        cells.append(PlannedJob(task, model, hardware_class, job_params, runs, kind, columns,
                                cell_key(values, varying), gpus))
    return cells
