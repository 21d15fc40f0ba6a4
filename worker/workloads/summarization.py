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

from typing import Any

from worker.contract.tasks import TASKS
from worker.workloads._generate import SEQ2SEQ_TEXT_DEFAULTS, GenerateWorkload, encode_texts, generate
from worker.workloads._shared import (
    count_tokens,
    fixed_length_generation,
    generated,
)
from worker.workloads._zero_shot import ZeroShot
from worker.workloads.base import WorkDone

DECLARED = TASKS["summarization"]  # name, input kind, default params, zero-shot form: worker.contract.tasks


class Summarization(GenerateWorkload):
    task, input_kind, default_params = DECLARED.task, DECLARED.input_kind, DECLARED.default_params

    task_key, generation_defaults = "summarization", SEQ2SEQ_TEXT_DEFAULTS  # the dropped pipeline's settings

    def call(self, generator: Any, queries: list[str], batch_size: int, params: dict[str, Any]) -> WorkDone:
        length, counter = fixed_length_generation(generator, params)
        generate(generator, encode_texts(generator, queries), length)
        return WorkDone(len(queries), input_tokens=count_tokens(generator.tokenizer, queries),
                         **generated(counter, length, len(queries)))


WORKLOAD = Summarization()

ZERO_SHOT = ZeroShot(DECLARED.zero_shot)
