"""Zero-shot: a multi-purpose generative model prompted to do a task (the study's second finding).

A task that can be done this way declares its zero-shot form (the study's
prompt template and output length as defaults) in worker.contract.tasks, and
its module sets a module-level `ZERO_SHOT = ZeroShot(DECLARED.zero_shot)`
beside its `WORKLOAD`; the registry collects them by task name. A sweep lists
such models under `tasks.<task>.zero_shot.models`, and may override
`prompt_template`, `max_new_tokens` and `max_input_words` under
`zero_shot.params`.

The model is loaded as the generator it is (seq2seq like Flan-T5, or causal
like BLOOMz: read from its config) and run with greedy decoding (the models'
default, as in the study): a causal model by the text-generation pipeline, a
seq2seq one by its own `generate` with the inputs the text2text pipeline of
transformers 4 gave it (transformers 5 has none; worker.workloads._generate). Output
length is fixed (min_new_tokens = max_new_tokens) like every generation task
here, so that models do equal work; `fixed_length: false` lets a model stop at
its end-of-sequence token instead, as the study's "up to N new tokens" did.
A causal model's prompt too long for its context loses its beginning (the
instruction at the end survives); a seq2seq model's is truncated at the end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from worker.contract.params import template_problem
from worker.contract.tasks import ZeroShotForm
from worker.workloads._shared import (
    count_tokens,
    fixed_length_generation,
    generated,
    merged,
    one_or_many,
    pipeline_device,
    quiet,
    run_batches,
    set_pad_token,
)
from worker.workloads.base import WorkDone


def _cut(text: str, max_words: int | None) -> str:
    return text if not max_words else " ".join(text.split()[: int(max_words)])


def render(template: str, query: Any, max_words: int | None = None) -> str:
    """The prompt for one query: a string fills {text}; a question-answering dict fills {question} and {context}."""
    if isinstance(query, dict):
        return template.format(question=query["question"], context=_cut(query["context"], max_words))
    return template.format(text=_cut(query, max_words))


class ZeroShot:
    """The zero-shot workload of one task: the Workload protocol, keyed by task like the task-specific ones."""

    def __init__(self, form: ZeroShotForm) -> None:
        self.form = form
        self.task = form.task
        self.input_kind = form.input_kind
        self.default_params = form.default_params

    def params_problem(self, params: Mapping[str, Any]) -> str | None:
        """What is wrong with sweep params for this workload (checked before anything runs), or None."""
        return self.form.params_problem(params)

    def load(self, model: str, device: str, params: Mapping[str, Any]) -> Any:
        from transformers import pipeline

        from worker.workloads._generate import SEQ2SEQ_TEXT_DEFAULTS, load_generator

        settings = merged(self.task, self.default_params, params)
        generator = load_generator(model, self.task, device, settings["dtype"], task_key="text2text-generation",
                                   defaults=SEQ2SEQ_TEXT_DEFAULTS, generative=True)
        if generator.model.config.is_encoder_decoder:  # transformers 5 has no text2text pipeline: generate itself
            return generator
        tokenizer = generator.tokenizer  # batched causal generation pads on the left, with EOS where there is no pad
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        with quiet():
            result = pipeline("text-generation", model=generator.model, tokenizer=tokenizer,
                              device=pipeline_device(generator.model, device))
        set_pad_token(result, tokenizer)
        result.wattsweep_provenance = generator.wattsweep_provenance
        return result

    def run(self, pipeline: Any, queries: Sequence[Any], batch_size: int, params: Mapping[str, Any]) -> WorkDone:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        settings = merged(self.task, self.default_params, params)
        problem = template_problem(settings["prompt_template"], self.input_kind)
        if problem:
            raise ValueError(f"{self.task} zero-shot: {problem}")
        prompts = [render(settings["prompt_template"], q, settings["max_input_words"]) for q in queries]

        def one_batch(batch: list[str]) -> WorkDone:
            generate, counter = fixed_length_generation(pipeline, settings)
            generate["num_beams"] = counter.num_beams = 1  # greedy, as the study ran them (pipelines: 4 beams)
            if not settings["fixed_length"]:
                generate.pop("min_new_tokens")
            if pipeline.model.config.is_encoder_decoder:
                from worker.workloads._generate import encode_texts
                from worker.workloads._generate import generate as generate_with

                generate_with(pipeline, encode_texts(pipeline, batch), generate)
            else:
                pipeline(one_or_many(batch), batch_size=batch_size, return_full_text=False,
                         handle_long_generation="hole", **generate)
            return WorkDone(len(batch), input_tokens=count_tokens(pipeline.tokenizer, batch),
                             **generated(counter, generate, len(batch)))

        with quiet():
            return run_batches(one_batch, prompts, batch_size)
