"""question-answering (extractive): find the answer span in a context (the study: SQuAD, SQuAD v2, ...)."""

from __future__ import annotations

from typing import Any

from worker.contract.tasks import TASKS
from worker.workloads._shared import PipelineWorkload, count_tokens, one_or_many
from worker.workloads._zero_shot import ZeroShot
from worker.workloads.base import WorkDone

DECLARED = TASKS["question-answering"]  # name, input kind, default params, zero-shot form: worker.contract.tasks


class QuestionAnswering(PipelineWorkload):
    task, input_kind, default_params = DECLARED.task, DECLARED.input_kind, DECLARED.default_params

    def call(self, pipeline: Any, queries: list[dict], batch_size: int, params: dict[str, Any]) -> WorkDone:
        questions = [q["question"] for q in queries]
        contexts = [q["context"] for q in queries]
        pipeline(question=one_or_many(questions), context=one_or_many(contexts), batch_size=batch_size)
        return WorkDone(len(queries), input_tokens=count_tokens(pipeline.tokenizer, questions, contexts))


WORKLOAD = QuestionAnswering()

ZERO_SHOT = ZeroShot(DECLARED.zero_shot)
