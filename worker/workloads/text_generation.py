"""text-generation: continue a prompt by exactly max_new_tokens tokens (the study: 10 new tokens).

Fixed output length (min_new_tokens = max_new_tokens) makes models comparable on
equal work; decoder-only models pad on the left so batched prompts end together.
"""

from __future__ import annotations

from typing import Any

from worker.contract.tasks import TASKS
from worker.workloads._shared import (
    PipelineWorkload,
    count_tokens,
    cut_words,
    fixed_length_generation,
    generated,
    one_or_many,
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
        for config in (pipeline.model.generation_config, pipeline.generation_config):  # the pipeline holds a copy
            if config.pad_token_id is None:
                config.pad_token_id = tokenizer.pad_token_id
        return pipeline

    def call(self, pipeline: Any, queries: list[str], batch_size: int, params: dict[str, Any]) -> WorkDone:
        generate, counter = fixed_length_generation(pipeline, params)
        queries = cut_words(queries, params["max_input_words"])  # the study cut prompts to 20 words
        pipeline(one_or_many(queries), batch_size=batch_size, **generate)
        return WorkDone(len(queries), input_tokens=count_tokens(pipeline.tokenizer, queries),
                         **generated(counter, generate, len(queries)))


WORKLOAD = TextGeneration()
