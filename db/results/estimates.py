"""Duration and energy estimates for a planned sweep: per (task, model, model kind) on one hardware class.

In order of preference:

1. earlier measurements in the database of the same task, model (and kind) on
   the same hardware class, imported CodeCarbon logs included: query windows
   for the per-query time and energy (per dataset where that dataset was
   measured), load windows for the load cost. Energy is the headline (own GPU
   + attributed CPU and RAM, db.results.stats.headline_kwh); an imported log has only
   its node-wide reading, which is then what the estimate uses;
2. a prior from the model's parameter count, the task's kind and its
   settings (`prior_estimate`), labelled `source = "prior"`: good for ordering
   work and sizing shards, never shown as a measurement (it has no energy).

`wattsweep plan` multiplies the per-query figures by the queries a sweep will
run; `submit` uses them to split long runs into shards and to hand out the
longest units first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the priors and shard sizes below need no database (`plan --workers` without one)
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


# --- The prior: orders of magnitude on a data-centre GPU at batch size 1, for ordering work and sizing shards.

REFERENCE_PARAMETERS = 1e8
SCALING_EXPONENT = 0.7  # time per query grows sub-linearly with size at batch size 1 (memory-bound kernels)
MIN_S_PER_QUERY = 0.002  # Python and pipeline overhead of one call
# Seconds per query at REFERENCE_PARAMETERS; generation adds per-token seconds x max_new_tokens, diffusion per step.
S_PER_QUERY_AT_REFERENCE = {
    "text-classification": 0.01, "token-classification": 0.01, "question-answering": 0.012, "fill-mask": 0.01,
    "image-classification": 0.015, "object-detection": 0.05, "text-generation": 0.01, "summarization": 0.03,
    "image-to-text": 0.05, "text-to-image": 0.0,
}
S_PER_NEW_TOKEN_AT_REFERENCE = 0.01
S_PER_DIFFUSION_STEP_AT_1B = 0.3
# Parameters of a model whose size the name does not say, per task (the study's typical model of each).
TYPICAL_PARAMETERS = {
    "text-classification": 1.1e8, "token-classification": 1.1e8, "question-answering": 1.1e8, "fill-mask": 1.1e8,
    "image-classification": 8.6e7, "object-detection": 4e7, "text-generation": 1.2e8, "summarization": 2.2e8,
    "image-to-text": 2.4e8, "text-to-image": 1.1e9,
}
TINY_PARAMETERS = 1e6
SIZE_WORDS = {"tiny": 1.5e7, "mini": 3e7, "small": 6e7, "base": 2.2e8, "medium": 3.5e8, "large": 7.7e8,
              "xl": 3e9, "xxl": 1.1e10}  # T5/Flan-T5 naming, the commonest in the study
_SIZE = re.compile(r"(?<![a-z0-9])(\d+(?:\.\d+)?)([mb])(\d?)(?![a-z])", re.IGNORECASE)
_WORD = re.compile(r"[a-z]+")
LOAD_BASE_S = 5.0  # process a checkpoint's config, build the module, move it to the device
LOAD_BYTES_PER_S = 0.5e9  # reading weights from a shared disk


def parameters_from_name(model: str) -> float | None:
    """`hub:bigscience/bloomz-560m` -> 5.6e8, `bloomz-7b1` -> 7.1e9, `flan-t5-xxl` -> 1.1e10; None if unsaid."""
    name = model.split("/", 1)[-1].split("@")[0].lower()
    if model.startswith("tiny:"):
        return TINY_PARAMETERS
    match = _SIZE.search(name)
    if match:
        number = float(match.group(1) + ("." + match.group(3) if match.group(3) else ""))
        return number * (1e6 if match.group(2).lower() == "m" else 1e9)
    said = [SIZE_WORDS[word] for word in _WORD.findall(name) if word in SIZE_WORDS]
    return max(said, default=None)  # "stable-diffusion-xl-base": the size is xl


def prior_estimate(*, task: str, model: str, params: Mapping, batch_size: int = 1,
                   num_parameters: float | None = None) -> Estimate:
    """A labelled guess from parameter count, task kind and settings (`source = "prior"`, no energy)."""
    parameters = num_parameters or parameters_from_name(model) or TYPICAL_PARAMETERS.get(task, REFERENCE_PARAMETERS)
    scale = (parameters / REFERENCE_PARAMETERS) ** SCALING_EXPONENT
    if task == "text-to-image":
        steps = float(params.get("num_inference_steps") or 20)
        seconds = S_PER_DIFFUSION_STEP_AT_1B * steps * (parameters / 1e9) ** SCALING_EXPONENT
    else:
        seconds = S_PER_QUERY_AT_REFERENCE.get(task, 0.01) * scale
        new_tokens = params.get("max_new_tokens")
        if new_tokens:
            seconds += S_PER_NEW_TOKEN_AT_REFERENCE * float(new_tokens) * scale
    seconds = max(seconds / max(batch_size, 1) ** SCALING_EXPONENT, MIN_S_PER_QUERY)
    bytes_per_parameter = 2 if params.get("dtype") in ("float16", "bfloat16") else 4
    load_s = LOAD_BASE_S + parameters * bytes_per_parameter / LOAD_BYTES_PER_S
    return Estimate(0, seconds, None, load_s, None, source="prior")


def unit_seconds(estimate: Estimate, *, dataset: str, n_queries: int, warmup: int) -> float:
    """Expected duration of one unit: its warm-up and its measured queries."""
    return estimate.seconds_per_query(dataset) * (n_queries + warmup)


def shard_sizes(*, n_queries: int, batch_size: int, warmup: int, s_per_query: float,
                shard_queries: int | None, max_unit_s: float) -> list[int]:
    """How many queries each shard of a run measures (one element: the run is not split).

    `shard_queries` fixes the size (rounded up to whole batches; the last
    shard takes the rest); otherwise a run whose expected duration exceeds
    `max_unit_s` is split into the fewest shards that each fit (every shard
    repeats the warm-up), whole batches, as equal as they can be.
    """
    batch = max(batch_size, 1)
    if shard_queries:
        size = math.ceil(shard_queries / batch) * batch
        if size >= n_queries:
            return [n_queries]
        return [size] * (n_queries // size) + ([n_queries % size] if n_queries % size else [])
    if (n_queries + warmup) * s_per_query <= max_unit_s:
        return [n_queries]
    budget_s = max(max_unit_s - warmup * s_per_query, s_per_query * batch)
    size = max(batch, (max(int(budget_s / s_per_query), 1) // batch) * batch)
    batches = math.ceil(n_queries / batch)
    count = min(math.ceil(n_queries / size), batches)
    if count <= 1:
        return [n_queries]
    per, extra = divmod(batches, count)
    sizes = [(per + (1 if i < extra else 0)) * batch for i in range(count)]
    sizes[-1] -= sum(sizes) - n_queries  # the last batch may be short
    return sizes
