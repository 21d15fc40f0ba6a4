"""Turn a model reference (`tiny:`, `path:`, `hub:`) into a model and its pre-processors for one task.

`hub:` references resolve through worker.models.hub: offline from the local Hugging
Face cache only, online to a commit on the Hub; the commit and the dtype of the
loaded weights travel with the result (`LoadedModel.provenance`). With
`generative=True` the model is loaded as the text generator it is (seq2seq or
causal, read from its config) to be prompted for a task zero-shot.

Every reference kind ends in the same `LoadedModel`, so workloads build their
pipeline the same way whatever the weights' origin. Remote code never runs
(`trust_remote_code=False`); a model that cannot be loaded becomes a
`ModelLoadError` whose message says what to do, never a bare vendor traceback.
Module level stays light: torch, transformers and diffusers load inside functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worker.contract.catalog import TASK_MODEL_CLASSES, TINY_FAMILIES
from worker.contract.refs import OutsideDataRoots, ReferenceError, check_data_path, parse_model_ref
from worker.errors import ModelLoadError
from worker.models.loaded_model import LoadedModel, model_provenance
from worker.models.placement import Placement, check_fits, current_placement
from worker.models.quantization import check_runnable, saved_quantization

TOKENIZER_TASKS = frozenset(
    {"text-classification", "token-classification", "question-answering", "fill-mask", "text-generation",
     "summarization", "image-to-text", "automatic-speech-recognition", "reasoning"}
)
IMAGE_PROCESSOR_TASKS = frozenset({"image-classification", "object-detection", "image-to-text"})


def torch_dtype(dtype: Any) -> Any:
    """`None`, a torch dtype, or its name ("float16", "bfloat16", "float32") -> a torch dtype or None."""
    if dtype is None or not isinstance(dtype, str):
        return dtype
    import torch

    value = getattr(torch, dtype.removeprefix("torch."), None)
    if not isinstance(value, torch.dtype):
        raise ModelLoadError(f"unknown dtype {dtype!r}: use float32, float16 or bfloat16")
    return value


def generative_task(where: str, revision: str | None = None) -> str:
    """The task whose Auto class loads this checkpoint as a text generator: seq2seq or causal, from its config."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(where, revision=revision, trust_remote_code=False)
    return "summarization" if getattr(config, "is_encoder_decoder", False) else "text-generation"


def _from_pretrained(where: str, task: str, revision: str | None, dtype: Any, placement: Placement) -> LoadedModel:
    """Load with the Auto classes straight onto the placement's devices; weights in safetensors are preferred,
    pickles are a fallback. A quantized checkpoint loads as its config.json's `quantization_config` says."""
    options: dict[str, Any] = {"revision": revision, "trust_remote_code": False}
    if TASK_MODEL_CLASSES[task] == "diffusers":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # diffusers warns about CUDA autocast at import on CPU-only hosts
            from diffusers import AutoPipelineForText2Image

        pipe = AutoPipelineForText2Image.from_pretrained(where, torch_dtype=dtype, **_diffusers_placement(placement),
                                                         **options)
        if dtype is None:
            _diffusers_as_saved(pipe)
        return LoadedModel(pipe)
    if TASK_MODEL_CLASSES[task] == "sentence-transformers":  # the library labs use for embeddings
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(where, revision=revision, trust_remote_code=False, device=placement.device,
                                    model_kwargs={"dtype": dtype if dtype is not None else "auto"})
        return LoadedModel(model, model.tokenizer)

    import transformers

    model_class = getattr(transformers, TASK_MODEL_CLASSES[task])
    # No dtype: "auto", the checkpoint's own (as saved; transformers 4 made float32 of it), stored as loaded.
    model = model_class.from_pretrained(where, dtype=dtype if dtype is not None else "auto",
                                        **placement.device_map_options(), **options)
    tokenizer = transformers.AutoTokenizer.from_pretrained(where, **options) if task in TOKENIZER_TASKS else None
    processor = features = None
    if task in IMAGE_PROCESSOR_TASKS:  # the slow (PIL) processor: the same pre-processing on every worker
        processor = transformers.AutoImageProcessor.from_pretrained(where, use_fast=False, **options)
    if task == "automatic-speech-recognition":
        features = transformers.AutoFeatureExtractor.from_pretrained(where, **options)
    return LoadedModel(model, tokenizer, processor, feature_extractor=features)


SAFETENSORS_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}


def saved_dtype(folder: str | Path) -> Any:
    """The floating dtype a folder's safetensors weights were saved in (the first floating tensor's), or None."""
    import torch
    from safetensors import safe_open

    for file in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as weights:
            for key in weights.keys():
                name = SAFETENSORS_DTYPES.get(weights.get_slice(key).get_dtype())
                if name:
                    return getattr(torch, name)
    return None


def _diffusers_as_saved(pipe: Any) -> None:
    """Each diffusers model of `pipe` in the dtype its weights were saved in, as transformers 5 loads its own
    (diffusers makes float32 of what it is given no dtype for)."""
    import torch

    for component in pipe.components.values():
        folder = getattr(getattr(component, "config", None), "_name_or_path", None)
        if isinstance(component, torch.nn.Module) and folder and Path(str(folder)).is_dir():
            dtype = saved_dtype(folder)
            if dtype is not None and dtype != component.dtype:
                component.to(dtype)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()).rstrip(".") or type(exc).__name__


def load_for_task(model_ref: str, task: str, device: str, dtype: Any = None, *, generative: bool = False
                  ) -> LoadedModel:
    """Load `model_ref` for `task` onto `device` ("cpu", "cuda", "cuda:0"), optionally cast to `dtype`.

    `generative`: load the model as a text generator (to prompt it for `task` zero-shot) instead of
    with the task's own head.
    """
    if task not in TASK_MODEL_CLASSES:
        raise ModelLoadError(f"unknown task {task!r}: allowed are {', '.join(sorted(TASK_MODEL_CLASSES))}")
    try:
        ref = parse_model_ref(model_ref)
    except ReferenceError as exc:
        raise ModelLoadError(str(exc)) from exc
    dtype = torch_dtype(dtype)
    placement = current_placement(device)
    device_mapped = False

    if ref.kind == "tiny":
        from worker.models.tiny import build_tiny

        if generative:
            task = TINY_FAMILIES[ref.name].generator_task or ""
            if not task:
                able = sorted(name for name, family in TINY_FAMILIES.items() if family.generator_task)
                raise ModelLoadError(f"tiny model family {ref.name!r} does not generate text, so it cannot be "
                                     f"prompted zero-shot; families that do: {', '.join(able)}")
        if task not in TINY_FAMILIES[ref.name].tasks:
            able = sorted(name for name, family in TINY_FAMILIES.items() if task in family.tasks)
            raise ModelLoadError(
                f"tiny model family {ref.name!r} does not support task {task!r}; "
                f"families that do: {', '.join(able)}"
            )
        loaded = build_tiny(ref.name, task)
        if dtype is not None:
            loaded.model.to(dtype)
    else:
        where, revision = str(Path(ref.name).expanduser()), None
        if ref.kind == "path":
            try:
                where = str(check_data_path(ref.name, f"model {model_ref!r}: folder"))
            except OutsideDataRoots as exc:
                raise ModelLoadError(str(exc)) from None
        if ref.kind == "path" and not Path(where).is_dir():
            raise ModelLoadError(f"model {model_ref!r} is not available: folder {where!r} does not exist")
        if ref.kind == "hub":
            from worker.models.hub import HubModelError, resolve_model

            try:
                resolved = resolve_model(ref.name, ref.revision)
            except HubModelError as exc:
                raise ModelLoadError(str(exc)) from exc
            where, revision = resolved.where, resolved.revision
        if Path(where).is_dir():  # before any weight is read: a model this worker can never run fails at once
            check_runnable(saved_quantization(where), placement)
            check_fits(_weights_bytes(where, dtype), placement)
        try:
            if generative:
                task = generative_task(where, revision)
            loaded = _from_pretrained(where, task, revision, dtype, placement)
            loaded.revision = revision
            device_mapped = TASK_MODEL_CLASSES[task] != "sentence-transformers" and placement.on_cuda
        except OSError as exc:  # missing files; huggingface_hub's network and not-found errors are OSErrors too
            hint = ("Hub models need Hub access or the model in the local Hugging Face cache (HF_HOME); "
                    "with HF_HUB_OFFLINE=1 only the cache is read: is the cached snapshot complete? "
                    "`wattsweep pull FILE` fetches it" if ref.kind == "hub"
                    else "expected a save_pretrained folder")
            raise ModelLoadError(f"model {model_ref!r} is not available ({_one_line(exc)}). {hint}.") from exc
        except (ValueError, KeyError, TypeError, ImportError) as exc:  # wrong kind of model, a missing package
            raise ModelLoadError(f"model {model_ref!r} could not be loaded for {task}: {_one_line(exc)}") from exc
        except RuntimeError as exc:  # torch.OutOfMemoryError is one: loading straight to the devices ran out
            if not _out_of_memory(exc):
                raise
            raise _does_not_fit(model_ref, placement) from exc

    if not device_mapped:  # tiny: models are built on the CPU; a CPU worker's model is where it should be
        try:
            loaded.model.to(device)
        except RuntimeError as exc:
            if not _out_of_memory(exc):
                raise
            raise _does_not_fit(model_ref, placement, loaded.model) from exc
    return loaded


def _out_of_memory(exc: RuntimeError) -> bool:
    return "out of memory" in str(exc).lower()  # torch.OutOfMemoryError, or CUDA's own message


def _does_not_fit(model_ref: str, placement: Placement, model: Any = None) -> ModelLoadError:
    """One line for a model that ran out of device memory while loading."""
    size = (model_provenance(model).get("num_parameters") or 0) if model is not None else 0
    what = f"model {model_ref!r}" + (f" ({size / 1e9:.1f}B parameters)" if size else "")
    gpus = f"{placement.gpus} GPUs" if placement.spans_gpus else placement.device
    return ModelLoadError(f"{what} does not fit on {gpus}: use a worker with more GPU memory (`gpus:` in the sweep "
                          "file), or params {dtype: float16} (or bfloat16) to halve it")


def _weights_bytes(folder: str, dtype: Any) -> int | None:
    """Bytes the weights will take once loaded: their size as saved, scaled to `dtype` where the sweep casts them
    (unquantized weights only; None where unknown)."""
    from worker.contract.weights import WeightsHeaderError, checkpoint_bytes

    try:
        size = checkpoint_bytes(Path(folder))
        saved = saved_dtype(folder) if size and dtype is not None and not saved_quantization(folder) else None
    except (WeightsHeaderError, OSError, ValueError):  # an incomplete or odd folder: from_pretrained will say
        return None
    if saved is not None and saved.itemsize:
        return size * dtype.itemsize // saved.itemsize
    return size


def _diffusers_placement(placement: Placement) -> dict[str, Any]:
    """A diffusers pipeline's options for the placement: one GPU holds it all; a group shares its components out
    ("balanced", diffusers' pipeline-level device map, within each GPU's free memory)."""
    if placement.spans_gpus:
        return {"device_map": "balanced", "max_memory": dict(enumerate(placement.free_memory() or []))}
    if placement.on_cuda:
        return {"device_map": "cuda"}
    return {}
