"""Zero-shot: a multi-purpose generative model prompted to do a task (the study's second finding).

A task module that can be done this way declares a module-level `ZERO_SHOT =
ZeroShot(...)` beside its `WORKLOAD`, with the study's prompt template and
output length as defaults; the registry collects them by task name, so adding
a task (zero-shot or not) is still one file. A sweep lists such models under
`tasks.<task>.zero_shot.models`, and may override `prompt_template`,
`max_new_tokens` and `max_input_words` under `zero_shot.params`.

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

import string
from collections.abc import Mapping, Sequence
from typing import Any

from worker.workloads._shared import (
    count_tokens,
    fixed_length_generation,
    generated,
    merged,
    one_or_many,
    quiet,
    run_batches,
    set_pad_token,
    with_common,
)
from worker.workloads.base import WorkUnits

# The placeholders a template may use, by the input kind of the task's queries.
TEMPLATE_FIELDS: dict[str, frozenset[str]] = {
    "text": frozenset({"text"}), "document": frozenset({"text"}), "prompt": frozenset({"text"}),
    "qa": frozenset({"question", "context"}),
}


def template_problem(template: Any, input_kind: str) -> str | None:
    """Why `template` cannot format a query of `input_kind`, or None if it can."""
    if not isinstance(template, str) or not template.strip():
        return "prompt_template must be a non-empty string"
    allowed = TEMPLATE_FIELDS[input_kind]
    try:
        used = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
    except ValueError as error:
        return f"prompt_template is not a format string ({error}); write literal braces as {{{{ }}}}"
    unknown = sorted(used - allowed)
    if unknown:
        return f"prompt_template uses {{{unknown[0]}}}; it may use {', '.join('{' + f + '}' for f in sorted(allowed))}"
    if not used:
        return f"prompt_template must contain {' and '.join('{' + f + '}' for f in sorted(allowed))}"
    return None


def _cut(text: str, max_words: int | None) -> str:
    return text if not max_words else " ".join(text.split()[: int(max_words)])


def render(template: str, query: Any, max_words: int | None = None) -> str:
    """The prompt for one query: a string fills {text}; a question-answering dict fills {question} and {context}."""
    if isinstance(query, dict):
        return template.format(question=query["question"], context=_cut(query["context"], max_words))
    return template.format(text=_cut(query, max_words))


class ZeroShot:
    """The zero-shot workload of one task: the Workload protocol, keyed by task like the task-specific ones."""

    def __init__(self, task: str, input_kind: str, prompt_template: str, max_new_tokens: int) -> None:
        problem = template_problem(prompt_template, input_kind)
        if problem:
            raise ValueError(f"{task}: {problem}")
        self.task = task
        self.input_kind = input_kind
        self.default_params = with_common(prompt_template=prompt_template, max_new_tokens=max_new_tokens,
                                          max_input_words=None, fixed_length=True)

    def params_problem(self, params: Mapping[str, Any]) -> str | None:
        """What is wrong with sweep params for this workload (checked before anything runs), or None."""
        if "prompt_template" in params:
            problem = template_problem(params["prompt_template"], self.input_kind)
            if problem:
                return problem
        for name in ("max_new_tokens", "max_input_words"):
            value = params.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                return f"{name} must be a positive whole number, got {value!r}"
        return None

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
            result = pipeline("text-generation", model=generator.model, tokenizer=tokenizer, device=device)
        set_pad_token(result, tokenizer)
        result.wattsweep_provenance = generator.wattsweep_provenance
        return result

    def run(self, pipeline: Any, queries: Sequence[Any], batch_size: int, params: Mapping[str, Any]) -> WorkUnits:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        settings = merged(self.task, self.default_params, params)
        problem = template_problem(settings["prompt_template"], self.input_kind)
        if problem:
            raise ValueError(f"{self.task} zero-shot: {problem}")
        prompts = [render(settings["prompt_template"], q, settings["max_input_words"]) for q in queries]

        def one_batch(batch: list[str]) -> WorkUnits:
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
            return WorkUnits(len(batch), input_tokens=count_tokens(pipeline.tokenizer, batch),
                             **generated(counter, generate, len(batch)))

        with quiet():
            return run_batches(one_batch, prompts, batch_size)
