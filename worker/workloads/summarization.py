"""summarization: a fixed-length summary of each document (the study: CNN/DailyMail, SAMSum, XSum).

The study capped summaries at 15 tokens; here the length is fixed instead
(min_new_tokens = max_new_tokens, 10 by default) so that models do equal work.
Decoding is the pipeline's default, as in the study: beam search with 4 beams
unless the model's generation config says otherwise (tokens are counted once,
not once per beam).
"""

from __future__ import annotations

from typing import Any

from worker.contract.tasks import TASKS
from worker.workloads._shared import (
    PipelineWorkload,
    count_tokens,
    fixed_length_generation,
    generated,
    one_or_many,
)
from worker.workloads._zero_shot import ZeroShot
from worker.workloads.base import WorkDone

DECLARED = TASKS["summarization"]  # name, input kind, default params, zero-shot form: worker.contract.tasks


class Summarization(PipelineWorkload):
    task, input_kind, default_params = DECLARED.task, DECLARED.input_kind, DECLARED.default_params

    def call(self, pipeline: Any, queries: list[str], batch_size: int, params: dict[str, Any]) -> WorkDone:
        generate, counter = fixed_length_generation(pipeline, params)
        pipeline(one_or_many(queries), batch_size=batch_size, truncation=True, **generate)
        return WorkDone(len(queries), input_tokens=count_tokens(pipeline.tokenizer, queries),
                         **generated(counter, generate, len(queries)))


WORKLOAD = Summarization()

ZERO_SHOT = ZeroShot(DECLARED.zero_shot)
