"""summarization: a fixed-length summary of each document (the study: CNN/DailyMail, SAMSum, XSum).

The study capped summaries at 15 tokens; here the length is fixed instead
(min_new_tokens = max_new_tokens, 10 by default) so that models do equal work.
Decoding is the pipeline's default, as in the study: beam search with 4 beams
unless the model's generation config says otherwise (tokens are counted once,
not once per beam). transformers 5 has no summarization pipeline: the model's
own `generate` runs with the inputs and settings the pipeline used
(worker.workloads._generate).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.workloads._generate import SEQ2SEQ_TEXT_DEFAULTS, encode_texts, generate, load_generator
from worker.workloads._shared import (
    PipelineWorkload,
    count_tokens,
    fixed_length_generation,
    generated,
    merged,
    with_common,
)
from worker.workloads._zero_shot import ZeroShot
from worker.workloads.base import WorkUnits


class Summarization(PipelineWorkload):
    task = "summarization"
    input_kind = "document"
    default_params = with_common(max_new_tokens=10, measure_prefill=False)

    def load(self, model: str, device: str, params: Mapping[str, Any]) -> Any:
        settings = merged(self.task, self.default_params, params)
        return load_generator(model, self.task, device, settings["dtype"], task_key="summarization",
                              defaults=SEQ2SEQ_TEXT_DEFAULTS)

    def call(self, generator: Any, queries: list[str], batch_size: int, params: dict[str, Any]) -> WorkUnits:
        length, counter = fixed_length_generation(generator, params)
        generate(generator, encode_texts(generator, queries), length)
        return WorkUnits(len(queries), input_tokens=count_tokens(generator.tokenizer, queries),
                         **generated(counter, length, len(queries)))


WORKLOAD = Summarization()

# The study's summarization prompt for multi-purpose models, with its summary length of 15 new tokens.
ZERO_SHOT = ZeroShot(task="summarization", input_kind="document", max_new_tokens=15,
                     prompt_template="Summarize the following text: {text}. Summary:")
