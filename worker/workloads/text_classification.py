"""text-classification: one label per text (the study: sentiment models on IMDB, Rotten Tomatoes, Yelp)."""

from __future__ import annotations

from typing import Any

from worker.workloads._shared import PipelineWorkload, count_tokens, one_or_many
from worker.workloads._zero_shot import ZeroShot
from worker.workloads.base import WorkUnits


class TextClassification(PipelineWorkload):
    task = "text-classification"
    input_kind = "text"

    def call(self, pipeline: Any, queries: list[str], batch_size: int, params: dict[str, Any]) -> WorkUnits:
        # Truncate like the tokens we count: long reviews would otherwise overflow the position table.
        pipeline(one_or_many(queries), batch_size=batch_size, truncation=True)
        return WorkUnits(len(queries), input_tokens=count_tokens(pipeline.tokenizer, queries))


WORKLOAD = TextClassification()

# The study prompted multi-purpose models for sentiment with this question and read 1 new token.
ZERO_SHOT = ZeroShot(task="text-classification", input_kind="text", max_new_tokens=1,
                     prompt_template="what is the binary sentiment of the following sentence? {text}")
