"""text-generation: continue a prompt by exactly max_new_tokens tokens (the study: 10 new tokens).

Fixed output length (min_new_tokens = max_new_tokens) makes models comparable on
equal work; decoder-only models pad on the left so batched prompts end together.
`chat_template: true` sends each prompt as a user message through the model's
chat template where it has one (AI Energy Score v2's harness does), and raw
text where it has none; which one happened is stored (jobs.decoding).
Decoding: worker.workloads._decoding (greedy unless the sweep samples).
"""

from __future__ import annotations

from typing import Any

from worker.contract.tasks import TASKS
from worker.workloads._decoding import chat_prompts, record_decoding
from worker.workloads._shared import (
    PipelineWorkload,
    count_tokens,
    cut_words,
    fixed_length_generation,
    generated,
    merged,
    one_or_many,
    set_pad_token,
)
from worker.workloads.base import WorkDone

DECLARED = TASKS["text-generation"]  # name, input kind, default params: worker.contract.tasks


class TextGeneration(PipelineWorkload):
    task, input_kind, default_params = DECLARED.task, DECLARED.input_kind, DECLARED.default_params

    def load(self, model: str, device: str, params: Any) -> Any:
        pipeline = super().load(model, device, params)
        tokenizer = pipeline.tokenizer
        if tokenizer.pad_token is None:  # GPT-2 style tokenizers have none, and batching needs one
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        set_pad_token(pipeline, tokenizer)
        settings = merged(self.task, self.default_params, params)
        record_decoding(pipeline, pipeline.model.generation_config, settings,
                        chat_template=bool(settings["chat_template"] and _has_template(tokenizer)))
        return pipeline

    def call(self, pipeline: Any, queries: list[str], batch_size: int, params: dict[str, Any]) -> WorkDone:
        generate, counter = fixed_length_generation(pipeline, params)
        queries = cut_words(queries, params["max_input_words"])  # the study cut prompts to 20 words
        if params["chat_template"] and _has_template(pipeline.tokenizer):
            # The template writes the special tokens itself: the tokenizer must not add a second BOS.
            texts = chat_prompts(pipeline.tokenizer, queries)
            pipeline(one_or_many(texts), batch_size=batch_size, add_special_tokens=False, **generate)
            return WorkDone(len(queries), input_tokens=_count_chat(pipeline.tokenizer, texts),
                             **generated(counter, generate, len(queries)))
        pipeline(one_or_many(queries), batch_size=batch_size, **generate)
        return WorkDone(len(queries), input_tokens=count_tokens(pipeline.tokenizer, queries),
                         **generated(counter, generate, len(queries)))


def _has_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def _count_chat(tokenizer: Any, texts: list[str]) -> Any:
    """Input tokens of rendered chats, as the model sees them (no special tokens added), counted after the window."""
    return lambda: sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])


WORKLOAD = TextGeneration()
