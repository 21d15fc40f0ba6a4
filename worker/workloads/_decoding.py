"""How generation decodes: greedy unless the sweep asks for sampling, and a record of what was used.

Models may turn sampling on in their own generation config (Gemma 3: top-k 64, top-p 0.95), and `generate`
follows it unless told otherwise: so greedy is passed explicitly (`do_sample=False`). A `temperature` above 0
asks for sampling (AI Energy Score v2's harness: temperature 0.7, top-p 0.9, top-k 50), with top_p / top_k as
given or the model's own; `seed` seeds torch's generator at the start of each run, so sampled runs repeat.
What was used (the model's config under these settings) is stored with the job (jobs.decoding).

A leading underscore keeps this module out of the registry; torch and transformers load inside functions.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def sampling(params: Mapping[str, Any]) -> bool:
    """Whether the sweep asked for sampling: a temperature above 0 (None or 0: greedy)."""
    return bool(params.get("temperature"))


def decoding_kwargs(params: Mapping[str, Any]) -> dict[str, Any]:
    """`generate` settings for the sweep's decoding params (tasks without them: greedy)."""
    kwargs: dict[str, Any] = {}
    if params.get("num_beams") is not None:
        kwargs["num_beams"] = int(params["num_beams"])
    if not sampling(params):
        return kwargs | {"do_sample": False}
    kwargs |= {"do_sample": True, "temperature": float(params["temperature"])}
    for name in ("top_p", "top_k"):
        if params.get(name) is not None:
            kwargs[name] = params[name]
    return kwargs


def seed_run(params: Mapping[str, Any]) -> None:
    """Seed torch's generators with the sweep's `seed` (each run starts from it, so sampled runs repeat)."""
    if params.get("seed") is not None:
        import torch

        torch.manual_seed(int(params["seed"]))


def used_decoding(generation_config: Any, params: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """What `generate` will use: the model's generation config under our settings, in plain JSON."""
    config = copy.deepcopy(generation_config)
    kwargs = decoding_kwargs(params)
    config.update(**kwargs)
    used: dict[str, Any] = {"do_sample": bool(config.do_sample), "num_beams": int(config.num_beams or 1)}
    if used["do_sample"]:
        used |= {name: getattr(config, name, None) for name in ("temperature", "top_p", "top_k")}
    used["seed"] = params.get("seed")
    return used | extra


def record_decoding(loaded: Any, generation_config: Any, params: Mapping[str, Any], **extra: Any) -> None:
    """Put what generation will use into the loaded object's provenance (stored as jobs.decoding)."""
    provenance = dict(getattr(loaded, "wattsweep_provenance", None) or {})
    provenance["decoding"] = used_decoding(generation_config, params, **extra)
    loaded.wattsweep_provenance = provenance


def chat_prompts(tokenizer: Any, prompts: list[str], *, system: str | None = None, prefix: str = "",
                 answer_prefix: str = "", **template_kwargs: Any) -> list[str]:
    """Each prompt as a user message (after `system`, if any) through the tokenizer's chat template, ready for the
    assistant's answer, which starts with `answer_prefix` (e.g. DeepSeek-R1's "<think>\\n")."""
    def conversation(prompt: str) -> list[dict[str, str]]:
        head = [{"role": "system", "content": system}] if system else []
        return head + [{"role": "user", "content": prefix + prompt}]

    return [tokenizer.apply_chat_template(conversation(prompt), tokenize=False, add_generation_prompt=True,
                                          **template_kwargs) + answer_prefix for prompt in prompts]
