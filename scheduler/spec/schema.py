"""The sweep file's schema: pure, typed, side-effect-free pydantic models.

A validator raises ValueError with one line naming the field, the value and
what is allowed; scheduler.spec.reading turns YAML into a `SweepSpec` and
those errors into `SpecError`, and checks what depends on this machine's
files (the chat templates a `reasoning` level needs). Anything that depends
on hardware is resolved later, on the worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from worker.contract.catalog import (
    BUILTIN_DATASETS,
    PARAM_AXES,
    SWEEP_AXES,
    TINY_FAMILIES,
    axis_problem,
    kinds_compatible,
)
from worker.contract.params import params_problem
from worker.contract.refs import ReferenceError, check_data_path, local_path_of, parse_dataset_ref, parse_model_ref
from worker.contract.tasks import TASKS, ZERO_SHOT_TASKS

# Limits: ranges keep a sweep runnable and inside its columns (INTEGER, VARCHAR(n)).
MAX_QUERIES = 1_000_000
MAX_REPETITIONS = 1_000
MAX_BATCH_SIZE = 4_096
MAX_WARMUP = 100_000
MAX_GRID_G_PER_KWH = 10_000.0  # the dirtiest grids are near 1,000
MAX_PUE = 3.0  # the worst data centres surveyed are near 2.5
MAX_TRAINING_KWH = 1e12
MAX_UNIT_S = 7 * 86400.0
MAX_GPUS = 64  # a job's GPUs: one worker's group (8 per node today; 64 leaves room)
# No control characters, nor the invisible ones that reorder or hide text (bidi overrides, zero-width, BOM): a
# name shown in a report or a terminal must read as what it is.
NO_CONTROL = r"^[^\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]*$"

Queries = Annotated[int, Field(ge=1, le=MAX_QUERIES, strict=True)]
Repetitions = Annotated[int, Field(ge=1, le=MAX_REPETITIONS, strict=True)]
BatchSize = Annotated[int, Field(ge=1, le=MAX_BATCH_SIZE, strict=True)]
Warmup = Annotated[int, Field(ge=0, le=MAX_WARMUP, strict=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunSettings(_Strict):
    """Settings a task may override; `None` means 'inherit from defaults'."""

    queries: Queries | None = None
    repetitions: Repetitions | None = None
    batch_size: BatchSize | list[BatchSize] | None = None  # a list is a sweep axis: one job per value
    warmup: Warmup | None = None
    # Long runs are measured as shards of consecutive queries (their sums are the run): a fixed size, or
    # the size that makes each shard last at most max_unit_s by the duration estimates.
    shard_queries: Queries | None = None
    max_unit_s: Annotated[float, Field(gt=0, le=MAX_UNIT_S, allow_inf_nan=False)] | None = None

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_sizes(cls, value: Any) -> Any:
        for item in value if isinstance(value, list) else [value]:
            if item is not None and axis_problem("batch_size", item):
                raise ValueError(f"batch_size must be a positive whole number or a list of them, got {item!r}")
        if isinstance(value, list) and not value:
            raise ValueError("empty axis list; give at least one batch size, e.g. [1, 8]")
        return value


class Defaults(RunSettings):
    queries: Queries = 100
    repetitions: Repetitions = 3
    batch_size: BatchSize | list[BatchSize] = 1
    warmup: Warmup = 10
    shard_queries: Queries | None = None
    max_unit_s: Annotated[float, Field(gt=0, le=MAX_UNIT_S, allow_inf_nan=False)] = 1800.0


class Carbon(_Strict):
    """Where the electricity comes from. Required: CodeCarbon would silently assume Canada.

    A country or region must be one CodeCarbon has data for (read from its own data files, scheduler.spec.carbon_data):
    it would otherwise use the world average, or the country mix, without saying so.
    """

    country_iso_code: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    region: str | None = Field(default=None, min_length=1, max_length=100, pattern=NO_CONTROL)  # VARCHAR(100)
    grid_intensity_g_per_kwh: float | None = Field(default=None, gt=0, le=MAX_GRID_G_PER_KWH, allow_inf_nan=False)
    # The data centre's power usage effectiveness, applied by CodeCarbon to every component's energy; 1.0 (none)
    # unless declared here: no CodeCarbon config file or CODECARBON_PUE changes it.
    pue: float = Field(default=1.0, ge=1.0, le=MAX_PUE, allow_inf_nan=False)

    @field_validator("country_iso_code")
    @classmethod
    def _known_country(cls, code: str | None) -> str | None:
        from scheduler.spec.carbon_data import country_problem

        if code is not None and (problem := country_problem(code)):
            raise ValueError(problem)
        return code

    @model_validator(mode="after")
    def _one_source(self) -> Carbon:
        if (self.country_iso_code is None) == (self.grid_intensity_g_per_kwh is None):
            raise ValueError("give exactly one of country_iso_code (3 letters, e.g. USA) or grid_intensity_g_per_kwh")
        if self.region and not self.country_iso_code:
            raise ValueError("region needs country_iso_code")
        if self.region:
            from scheduler.spec.carbon_data import region_problem

            if problem := region_problem(self.country_iso_code, self.region):
                raise ValueError(f"carbon.region: {problem}")
        return self

    @property
    def source(self) -> str:
        if self.grid_intensity_g_per_kwh is not None:
            return "explicit"
        return "region" if self.region else "country mix"


def _yaml_switches(params: Any) -> Any:
    """YAML reads a bare `on` / `off` as true / false: as a reasoning level they mean "on" / "off"."""
    if isinstance(params, dict) and "reasoning" in params:
        level = params["reasoning"]
        def word(value: Any) -> Any:
            return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value
        params = {**params, "reasoning": [word(v) for v in level] if isinstance(level, list) else word(level)}
    return params


class ZeroShotSpec(_Strict):
    """Multi-purpose generative models prompted to do the task (the study's Flan-T5 and BLOOMz).

    `params` override the task's zero-shot defaults: prompt_template, max_new_tokens, max_input_words,
    fixed_length, dtype.
    """

    models: list[str] = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)

    _switches = field_validator("params", mode="before")(classmethod(lambda cls, v: _yaml_switches(v)))


class TaskSpec(RunSettings):
    models: list[str] = Field(default_factory=list)  # task-specific models; may be empty if zero_shot has some
    datasets: list[str] = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    zero_shot: ZeroShotSpec | None = None
    # Served by an engine (worker.contract.engines): {name: vllm, args: {...}} or {name: openai, base_url, model}
    engine: dict[str, Any] | None = None

    _switches = field_validator("params", mode="before")(classmethod(lambda cls, v: _yaml_switches(v)))


DType = Literal["float32", "float16", "bfloat16"]


class SweepSpec(_Strict):
    name: str = Field(min_length=1, max_length=200, pattern=NO_CONTROL)  # sweeps.name is VARCHAR(200)
    # ASCII only: a class is a Redis key and an ACL user's key pattern (deploy/redis-start.sh)
    hardware_class: str = Field(default="cpu", max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    exclusive: bool = False  # one job per host at a time, for the cleanest CPU figures

    @field_validator("hardware_class")
    @classmethod
    def _class_is_a_queue(cls, value: str) -> str:
        from worker.contract.celery_app import queue_name_problem  # (Celery: only when a sweep is read)

        if problem := queue_name_problem(value):
            raise ValueError(problem)
        return value

    # Idle baseline: `auto` (at start, when old, when the device's temperature drifted), `per-run` (before every
    # run as well: slower, for studies of idle drift).
    baseline: Literal["auto", "per-run"] = "auto"
    # The published protocol the sweep's settings follow, which labels and submissions name: `aienergyscore` for
    # AI Energy Score's presets (their settings, commented point by point); none: the sweep's own settings.
    protocol: Literal["aienergyscore"] | None = None
    defaults: Defaults = Defaults()
    carbon: Carbon
    tasks: dict[str, TaskSpec] = Field(min_length=1)
    # Per model, over its tasks' params.dtype: e.g. {hub:google/flan-t5-xxl: bfloat16}.
    model_dtype: dict[str, DType] = Field(default_factory=dict)
    # Per model, over its tasks' params (the names a task of the model declares): e.g. how a model's reasoning is
    # switched ({hub:deepseek-ai/DeepSeek-R1: {reasoning_by: prefix}}), or a model's own decoding. One value each.
    model_params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    _model_switches = field_validator("model_params", mode="before")(classmethod(
        lambda cls, v: {ref: _yaml_switches(p) for ref, p in v.items()} if isinstance(v, dict) else v))
    # GPUs a model needs (AI Energy Score's class C models: several H100s): a number, or `auto` = the fewest GPUs
    # of gpu_memory_gb whose memory, less gpu_memory_headroom, holds its weights (their size from the safetensors
    # headers of the local copy: scheduler.spec.gpus). Undeclared: 1. Its jobs go only to workers holding that many
    # GPUs (`wattsweep worker --gpus`): the queue <hardware_class>-x<N>.
    model_gpus: dict[str, Annotated[int, Field(ge=1, le=MAX_GPUS, strict=True)] | Literal["auto"]] = \
        Field(default_factory=dict)
    # Memory of one GPU of the hardware class, in GB (80 for an H100 SXM, 141 for an H200): what `auto` divides by.
    gpu_memory_gb: float | None = Field(default=None, gt=0, le=10_000, allow_inf_nan=False)
    # The share of each GPU's memory that `auto` leaves to activations, caches and the CUDA context (0.2: weights
    # fill at most 80% of each GPU).
    gpu_memory_headroom: float = Field(default=0.2, ge=0, lt=1, allow_inf_nan=False)
    # Energy spent training a model (kWh), declared so that reports can say after how many queries inference
    # has cost as much as training: e.g. {hub:bigscience/bloomz-7b1: 51686} (the study's Table 5).
    training_energy_kwh: dict[str, Annotated[float, Field(gt=0, le=MAX_TRAINING_KWH, allow_inf_nan=False)]] = \
        Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_references(self, info: ValidationInfo) -> SweepSpec:
        roots = (info.context or {}).get("data_roots")
        for task, task_spec in self.tasks.items():
            if task not in TASKS:
                raise ValueError(f"tasks.{task}: unknown task {task!r}; allowed are {', '.join(sorted(TASKS))}")
            declared = TASKS[task]
            if not task_spec.models and task_spec.zero_shot is None:
                raise ValueError(f"tasks.{task}.models: list at least one model (or zero_shot.models)")
            for i, ref in enumerate(task_spec.models):
                model = _check(f"tasks.{task}.models.{i}", parse_model_ref, ref, roots)
                family = TINY_FAMILIES.get(model.name) if model.kind == "tiny" else None
                if family and task not in family.tasks:
                    fits = sorted(name for name, f in TINY_FAMILIES.items() if task in f.tasks)
                    hint = (f"; or prompt it zero-shot under tasks.{task}.zero_shot.models"
                            if family.generator_task and task in ZERO_SHOT_TASKS else "")
                    raise ValueError(f"tasks.{task}.models.{i}: tiny:{model.name} does not do {task}; "
                                     f"use {', '.join('tiny:' + name for name in fits)}{hint}")
            if task_spec.zero_shot is not None:
                _check_zero_shot(task, task_spec, roots)
            for i, ref in enumerate(task_spec.datasets):
                dataset = _check(f"tasks.{task}.datasets.{i}", parse_dataset_ref, ref, roots)
                kind = BUILTIN_DATASETS.get(dataset.name) if dataset.kind == "builtin" else None
                if kind and not kinds_compatible(declared.input_kind, kind):
                    fits = sorted(n for n, k in BUILTIN_DATASETS.items() if kinds_compatible(declared.input_kind, k))
                    use = ", ".join("builtin:" + name for name in fits)
                    raise ValueError(f"tasks.{task}.datasets.{i}: builtin:{dataset.name} holds {kind} queries, "
                                     f"{task} reads {declared.input_kind}; use {use}")
            _check_params(f"tasks.{task}.params", task, task_spec.params, task_defaults(task, task_spec))
            if task_spec.engine is not None:
                _check_engine(task, task_spec)
        models = self.all_models()
        self._check_model_params()
        auto = [ref for ref, gpus in self.model_gpus.items() if gpus == "auto"]
        if auto and self.gpu_memory_gb is None:
            raise ValueError(f"model_gpus.{auto[0]}: auto needs gpu_memory_gb, the memory of one GPU of the "
                             "hardware class in GB (e.g. 80 for an H100); or give the number of GPUs")
        for field in ("model_dtype", "training_energy_kwh", "model_params", "model_gpus"):
            for ref in getattr(self, field):
                if ref not in models:
                    raise ValueError(f"{field}: {ref!r} is not a model of this sweep; its models are written as "
                                     "in tasks (e.g. hub:org/name)")
        return self

    def _check_model_params(self) -> None:
        for ref, params in self.model_params.items():
            tasks = [task for task, spec in self.tasks.items() if ref in spec.models]
            for name, value in params.items():
                where = f"model_params.{ref}.{name}"
                declaring = [task for task in tasks if name in TASKS[task].default_params]
                if not declaring:
                    raise ValueError(f"{where}: no task of {ref} ({', '.join(tasks) or 'none'}) takes {name}")
                if isinstance(value, list):
                    raise ValueError(f"{where}: one value per model (an axis goes in tasks.<task>.params)")
                for task in declaring:
                    problem = params_problem({name: value}, TASKS[task].default_params, where.rsplit(".", 1)[0])
                    if problem:
                        raise ValueError(problem)

    def all_models(self) -> list[str]:
        """Every model reference of the sweep, task-specific and zero-shot, in file order, once each."""
        refs = []
        for task_spec in self.tasks.values():
            refs += task_spec.models + (task_spec.zero_shot.models if task_spec.zero_shot else [])
        return list(dict.fromkeys(refs))

    def settings_for(self, task: str) -> Defaults:
        """The defaults with this task's overrides applied (batch_size may be a list: an axis)."""
        overrides = self.tasks[task].model_dump(include=set(RunSettings.model_fields), exclude_none=True)
        return self.defaults.model_copy(update=overrides)


def task_defaults(task: str, task_spec: TaskSpec) -> dict[str, Any]:
    """The params a task takes: its workload's, and the serving ones (load, steady part) when an engine serves it."""
    from worker.contract.engines import SERVING_DEFAULTS

    defaults = dict(TASKS[task].default_params)
    return defaults | SERVING_DEFAULTS if task_spec.engine is not None else defaults


def _check_engine(task: str, task_spec: TaskSpec) -> None:
    from worker.contract.engines import ENGINE_TASKS, SERVING_AXES, engine_problem, serving_problem

    where = f"tasks.{task}.engine"
    if task not in ENGINE_TASKS:
        raise ValueError(f"{where}: {task} is not served by engines; tasks that are: {', '.join(ENGINE_TASKS)}")
    if problem := engine_problem(task_spec.engine):
        raise ValueError(f"{where}.{problem}" if not problem.startswith("expected") else f"{where}: {problem}")
    if task_spec.zero_shot is not None:
        raise ValueError(f"{where}: a served task has no zero_shot models; list them under models")
    params = task_spec.params
    given = [name for name in SERVING_AXES if params.get(name) is not None]
    if len(given) > 1:
        raise ValueError(f"tasks.{task}.params: give concurrency (closed loop) or request_rate (open loop), not both")
    for name in given:
        for value in params[name] if isinstance(params[name], list) else [params[name]]:
            if problem := serving_problem({**params, name: value}):
                raise ValueError(f"tasks.{task}.params.{problem}")
    if not given and (problem := serving_problem(params)):
        raise ValueError(f"tasks.{task}.params.{problem}")


def _check_zero_shot(task: str, task_spec: TaskSpec, roots: Sequence[Path] | None) -> None:
    where = f"tasks.{task}.zero_shot"
    if task not in ZERO_SHOT_TASKS:
        raise ValueError(f"{where}: {task} has no zero-shot workload; tasks that do: {', '.join(ZERO_SHOT_TASKS)}")
    form = ZERO_SHOT_TASKS[task]
    for i, ref in enumerate(task_spec.zero_shot.models):
        model = _check(f"{where}.models.{i}", parse_model_ref, ref, roots)
        family = TINY_FAMILIES.get(model.name) if model.kind == "tiny" else None
        if family and not family.generator_task:
            fits = sorted("tiny:" + name for name, f in TINY_FAMILIES.items() if f.generator_task)
            raise ValueError(f"{where}.models.{i}: tiny:{model.name} does not generate text, so it cannot be "
                             f"prompted; use {', '.join(fits)}")
        if ref in task_spec.models:
            raise ValueError(f"{where}.models.{i}: {ref} is also a task-specific model of {task}; a model is "
                             "measured one way per task")
    _check_params(f"{where}.params", task, task_spec.zero_shot.params, form.default_params)
    params = task_spec.zero_shot.params
    for name, value in params.items():  # each value of an axis must be a valid setting on its own
        for item in value if name in PARAM_AXES and isinstance(value, list) else [value]:
            problem = form.params_problem({**params, name: item})
            if problem:
                raise ValueError(f"{where}.params: {problem}")
    if not any(name in PARAM_AXES and isinstance(value, list) for name, value in params.items()):
        problem = form.params_problem(params)
        if problem:
            raise ValueError(f"{where}.params: {problem}")


def _check_params(where: str, task: str, params: dict[str, Any], defaults: Any) -> None:
    """Known names only; a sweep axis (a list) must apply to the task, be non-empty, and hold valid values."""
    axes = ", ".join(["batch_size", *(name for name in PARAM_AXES if name in defaults)])
    for name, value in params.items():
        if name not in defaults:
            from worker.contract.engines import ENGINE_TASKS, SERVING_DEFAULTS

            if name in SERVING_DEFAULTS and task in ENGINE_TASKS:
                raise ValueError(f"{where}.{name}: {name} is a serving parameter; serve the task with an engine "
                                 f"(tasks.{task}.engine: {{name: vllm}})")
            if name in SWEEP_AXES:
                raise ValueError(f"{where}.{name}: {name} does not apply to {task}; its axes are {axes}")
            raise ValueError(f"{where}: unknown parameter {name!r}; allowed are {', '.join(sorted(defaults))}")
        if name not in PARAM_AXES:
            continue
        values = value if isinstance(value, list) else [value]
        if not values:
            raise ValueError(f"{where}.{name}: empty axis list; give at least one value (axes of {task}: {axes})")
        for item in values:
            problem = axis_problem(name, item)
            if problem:
                raise ValueError(f"{where}.{name}: {problem}")
    for name, value in params.items():  # each value (each of an axis's values) within its type and range
        for item in value if name in PARAM_AXES and isinstance(value, list) else [value]:
            problem = params_problem({name: item}, defaults, where)
            if problem:
                raise ValueError(problem)


def _check(where: str, parse, ref: str, roots: Sequence[Path] | None = None):
    """The parsed reference; with `roots`, a path it reads must lie under them."""
    try:
        parsed = parse(ref)
        local = local_path_of(parsed)
        if local is not None and roots is not None:
            check_data_path(local, "path", roots)
        return parsed
    except ReferenceError as error:
        raise ValueError(f"{where}: {error}") from None
