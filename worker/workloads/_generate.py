"""Generation through the model classes, doing what the transformers 4 pipelines that transformers 5 dropped did.

transformers 5 has no `summarization`, `text2text-generation` or `image-to-text` pipeline. Those tasks load the
model with its Auto class and call its `generate` with the same inputs and settings the pipeline used, so that
the work measured is the same work:

- texts: the model's `prefix` (T5's "summarize: ", from `task_specific_params`) before each input, tokenised
  together, padded to the longest of the batch on the tokenizer's side, truncated to the model's limit;
- images: the image processor's `pixel_values`, in the model's dtype;
- decoding: the model's generation config, with the pipeline's own defaults where the model sets nothing
  (seq2seq text: 4 beams) and the checkpoint's `task_specific_params` for the task on top, as the pipeline did.

A leading underscore keeps this module out of the registry; transformers loads inside functions.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.workloads._decoding import record_decoding
from worker.workloads._shared import PipelineWorkload, merged

# What the dropped pipelines used where a model's generation config sets nothing (transformers 4.57's
# `_default_generation_config` of each; max_new_tokens is always ours).
SEQ2SEQ_TEXT_DEFAULTS: dict[str, Any] = {"num_beams": 4}
IMAGE_TO_TEXT_DEFAULTS: dict[str, Any] = {}


@dataclass
class Generator:
    """A generative model and its pre-processors, with the decoding settings the pipeline would have used."""

    model: Any
    tokenizer: Any
    generation_config: Any
    device: str
    prefix: str = ""
    image_processor: Any = None
    wattsweep_provenance: dict[str, Any] = field(default_factory=dict)  # Hub commit, dtype, parameters


def pipeline_generation_config(model: Any, tokenizer: Any, task_key: str, defaults: Mapping[str, Any]
                               ) -> tuple[Any, str]:
    """The generation config and input prefix the transformers 4 pipeline for `task_key` built for `model`.

    The model's settings win; a pipeline default fills only what the model leaves at the library default (a
    model saying num_beams=1 gets the pipeline's 4, as it did); then `task_specific_params[task_key]`.
    """
    from transformers import GenerationConfig

    config = copy.deepcopy(model.generation_config)
    library = GenerationConfig()
    for name, value in defaults.items():
        if getattr(config, name, None) in (None, getattr(library, name, None), 1 if name == "num_beams" else None):
            setattr(config, name, value)
    prefix = getattr(model.config, "prefix", None) or ""
    task_params = dict((getattr(model.config, "task_specific_params", None) or {}).get(task_key) or {})
    if "prefix" in task_params:
        prefix = task_params.pop("prefix") or ""
    if task_params:
        config.update(**task_params)
    if tokenizer is not None and tokenizer.pad_token_id is not None and config.pad_token_id is None:
        config.pad_token_id = tokenizer.pad_token_id
    return config, prefix


def load_generator(model_ref: str, task: str, device: str, dtype: Any, *, task_key: str,
                   defaults: Mapping[str, Any], generative: bool = False) -> Generator:
    """Load `model_ref` for `task` (or as the text generator it is, `generative`) with its pipeline settings."""
    from worker.models.loading import load_for_task
    from worker.workloads._shared import quiet

    with quiet():
        loaded = load_for_task(model_ref, task, device, dtype, generative=generative)
    model = loaded.model
    model.eval()
    config, prefix = pipeline_generation_config(model, loaded.tokenizer, task_key, defaults)
    return Generator(model, loaded.tokenizer, config, device, prefix, loaded.image_processor, loaded.provenance)



class GenerateWorkload(PipelineWorkload):
    """A task whose transformers 4 pipeline is gone: its model's own `generate`, with that pipeline's settings
    (`task_key`, `generation_defaults`), and what decoding will use recorded with the job."""

    task_key: str
    generation_defaults: Mapping[str, Any]

    def load(self, model: str, device: str, params: Mapping[str, Any]) -> Any:
        settings = merged(self.task, self.default_params, params)
        generator = load_generator(model, self.task, device, settings["dtype"], task_key=self.task_key,
                                   defaults=self.generation_defaults)
        record_decoding(generator, generator.generation_config, settings, max_new_tokens=settings["max_new_tokens"])
        return generator

def encode_texts(generator: Generator, texts: Sequence[str]) -> Any:
    """A batch of texts as the text2text pipeline fed them to `generate`: prefixed, padded, truncated."""
    inputs = generator.tokenizer([generator.prefix + text for text in texts], padding=True, truncation=True,
                                 return_tensors="pt")
    inputs.pop("token_type_ids", None)  # tokenizers make them; generate does not take them
    return inputs.to(generator.device)


def encode_images(generator: Generator, images: Sequence[Any]) -> dict[str, Any]:
    """A batch of images as the image-to-text pipeline fed them to `generate`: processed, in the model's dtype."""
    features = generator.image_processor(images=list(images), return_tensors="pt")
    dtype = generator.model.dtype
    return {name: value.to(generator.device, dtype=dtype) if value.is_floating_point() else value.to(generator.device)
            for name, value in features.items()}


def generate(generator: Generator, inputs: Mapping[str, Any], settings: Mapping[str, Any]) -> Any:
    """`generate` with the pipeline's config under our settings (length, beams; the counter beside it): one
    config holds them all, as transformers 5 deprecates a config passed with generation parameters beside it."""
    import torch

    config = copy.deepcopy(generator.generation_config)
    settings = dict(settings)
    processors = settings.pop("logits_processor", None)
    unused = config.update(**settings)
    if unused:
        raise TypeError(f"not generation settings: {', '.join(sorted(unused))}")
    with torch.inference_mode():
        return generator.model.generate(**inputs, generation_config=config, logits_processor=processors)
