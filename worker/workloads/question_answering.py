"""question-answering (extractive): find the answer span in a context (the study: SQuAD, SQuAD v2, ...)."""

from __future__ import annotations

from typing import Any

from worker.workloads._shared import PipelineWorkload, count_tokens
from worker.workloads.base import WorkUnits


class QuestionAnswering(PipelineWorkload):
    task = "question-answering"
    input_kind = "qa"

    def call(self, pipeline: Any, queries: list[dict], batch_size: int, params: dict[str, Any]) -> WorkUnits:
        questions = [q["question"] for q in queries]
        contexts = [q["context"] for q in queries]
        pipeline(question=questions, context=contexts, batch_size=batch_size)
        return WorkUnits(len(queries), input_tokens=count_tokens(pipeline.tokenizer, questions, contexts))


WORKLOAD = QuestionAnswering()
