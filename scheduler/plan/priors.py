"""Planning arithmetic without a database: a prior estimate from a model's size and its task's settings, a unit's
expected duration, and how a long run is split into shards.

Orders of magnitude on a data-centre GPU at batch size 1, for ordering work and sizing shards; a prior is labelled
`source = "prior"` and never shown as a measurement (it has no energy). Earlier measurements, where the database has
them, come first (db.results.estimates).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from db.results.estimates import Estimate

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
