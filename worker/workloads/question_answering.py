"""question-answering (extractive): find the answer span in a context (the study: SQuAD, SQuAD v2, ...)."""

from __future__ import annotations

from typing import Any

from worker.workloads._shared import PipelineWorkload, count_tokens, one_or_many
from worker.workloads._zero_shot import ZeroShot
from worker.workloads.base import WorkUnits


class QuestionAnswering(PipelineWorkload):
    task = "question-answering"
    input_kind = "qa"

    def call(self, pipeline: Any, queries: list[dict], batch_size: int, params: dict[str, Any]) -> WorkUnits:
        questions = [q["question"] for q in queries]
        contexts = [q["context"] for q in queries]
        pipeline(question=one_or_many(questions), context=one_or_many(contexts), batch_size=batch_size)
        return WorkUnits(len(queries), input_tokens=count_tokens(pipeline.tokenizer, questions, contexts))


WORKLOAD = QuestionAnswering()

# The study's extractive-QA prompt for multi-purpose models, with 65 new tokens (end-of-sequence disabled).
ZERO_SHOT = ZeroShot(task="question-answering", input_kind="qa", max_new_tokens=65,
                     prompt_template='{question}? Find the answer to the question in the following text: '
                                     '"{context}". Answer:')
