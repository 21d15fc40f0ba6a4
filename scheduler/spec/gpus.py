"""How many GPUs each model of a sweep needs: `model_gpus`, with `auto` worked out from the weights on disk.

`auto` is the fewest GPUs of `gpu_memory_gb` each whose memory, less `gpu_memory_headroom`, holds the model's
weights. Their size is read from the safetensors headers of the local copy (worker.contract.weights, no tensor
read): the `path:` folder, or the `hub:` model's snapshot in the local Hugging Face cache (`wattsweep pull` puts
it there). A `tiny:` model needs one GPU. A model whose size cannot be read is an error naming it and the
fix (declare the number). Not a validator of the pure schema: it reads this machine's files, as
scheduler.spec.reading's chat-template check does.
"""

from __future__ import annotations

import math
from pathlib import Path

from scheduler.spec.schema import MAX_GPUS, SweepSpec
from worker.contract.refs import parse_model_ref
from worker.contract.tasks import TASKS
from worker.contract.weights import WeightsHeaderError, cached_snapshot, checkpoint_bytes

GB = 1e9  # GPU memory is sold in decimal GB (an H100's 80 GB), as the weights' sizes are shown


class GpuSizeError(ValueError):
    """A model whose GPUs cannot be worked out; the message is one line naming it and the fix."""


def weights_bytes(ref: str) -> int | None:
    """Bytes of a model's weights from its local copy's safetensors headers; None where there is no local copy
    with safetensors files (a hub: model not in the cache, a tiny: model built in code)."""
    model = parse_model_ref(ref)
    if model.kind == "path":
        folder: Path | None = Path(model.name)
    elif model.kind == "hub":
        folder = cached_snapshot(model.name, model.revision)
    else:
        return None
    if folder is None or not folder.is_dir():
        return None
    return checkpoint_bytes(folder)


def gpus_for(weights_bytes: int, *, gpu_memory_gb: float, headroom: float) -> int:
    """The fewest GPUs whose memory, less the headroom's share of each, holds `weights_bytes`."""
    usable = gpu_memory_gb * GB * (1.0 - headroom)
    return max(1, math.ceil(weights_bytes / usable))


def model_gpus(spec: SweepSpec) -> dict[str, int]:
    """Every model of the sweep -> the GPUs each of its jobs needs (1 where the sweep declares nothing)."""
    resolved: dict[str, int] = {}
    for ref in spec.all_models():
        declared = spec.model_gpus.get(ref, 1)
        if declared != "auto":
            resolved[ref] = declared
            continue
        if parse_model_ref(ref).kind == "tiny":  # random weights of a few MB: one GPU holds them
            resolved[ref] = 1
            continue
        try:
            size = weights_bytes(ref)
        except WeightsHeaderError as error:
            raise GpuSizeError(f"model_gpus.{ref}: auto cannot read the size of its weights ({error}); declare "
                               f"the number of GPUs instead, e.g. model_gpus: {{{ref}: 2}}") from None
        if size is None:
            where = ("not in the local Hugging Face cache (`wattsweep pull FILE` puts it there)"
                     if parse_model_ref(ref).kind == "hub" else "no .safetensors files in its folder")
            raise GpuSizeError(f"model_gpus.{ref}: auto needs the size of its weights, but it is {where}; declare "
                               f"the number of GPUs instead, e.g. model_gpus: {{{ref}: 2}}")
        gpus = gpus_for(size, gpu_memory_gb=spec.gpu_memory_gb, headroom=spec.gpu_memory_headroom)
        if gpus > MAX_GPUS:
            raise GpuSizeError(f"model_gpus.{ref}: its weights ({size / GB:.1f} GB) need {gpus} GPUs of "
                               f"{spec.gpu_memory_gb:g} GB, more than the {MAX_GPUS} a worker may hold")
        resolved[ref] = gpus
    return resolved


def gpus_problem(spec: SweepSpec) -> str | None:
    """Why the sweep's GPU needs cannot be met, or None: a model `auto` cannot size, or a model needing several
    GPUs under a task whose workload cannot load a model across GPUs (worker.contract.tasks: multi_gpu)."""
    try:
        gpus = model_gpus(spec)
    except GpuSizeError as error:
        return str(error)
    for task, task_spec in spec.tasks.items():
        if task_spec.engine is not None or TASKS[task].multi_gpu:  # an engine spans a group by tensor parallelism
            continue
        for i, ref in enumerate(task_spec.models):
            if gpus[ref] > 1:
                return (f"tasks.{task}.models.{i}: {ref} needs {gpus[ref]} GPUs, but {task} cannot load a model "
                        f"across GPUs; measure it on one GPU (model_gpus: {{{ref}: 1}}) or under another task")
    return None
