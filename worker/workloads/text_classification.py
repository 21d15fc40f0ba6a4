"""text-classification: one label per text (the study: sentiment models on IMDB, Rotten Tomatoes, Yelp)."""

from __future__ import annotations

from typing import Any

from worker.contract.tasks import TASKS
from worker.workloads._shared import PipelineWorkload, count_tokens, one_or_many
from worker.workloads._zero_shot import ZeroShot
from worker.workloads.base import WorkDone

DECLARED = TASKS["text-classification"]  # name, input kind, default params, zero-shot form: worker.contract.tasks


class TextClassification(PipelineWorkload):
    task, input_kind, default_params = DECLARED.task, DECLARED.input_kind, DECLARED.default_params

    def call(self, pipeline: Any, queries: list[str], batch_size: int, params: dict[str, Any]) -> WorkDone:
        # Truncate like the tokens we count: long reviews would otherwise overflow the position table.
        pipeline(one_or_many(queries), batch_size=batch_size, truncation=True)
        return WorkDone(len(queries), input_tokens=count_tokens(pipeline.tokenizer, queries))


WORKLOAD = TextClassification()

ZERO_SHOT = ZeroShot(DECLARED.zero_shot)
