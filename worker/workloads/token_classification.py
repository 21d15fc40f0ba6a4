"""token-classification: a label per token (the study: NER models on CoNLL-2003, WikiANN, ...)."""

from __future__ import annotations

from typing import Any

from worker.contract.tasks import TASKS
from worker.workloads._shared import PipelineWorkload, count_tokens, one_or_many
from worker.workloads.base import WorkDone

DECLARED = TASKS["token-classification"]  # name, input kind, default params: worker.contract.tasks


class TokenClassification(PipelineWorkload):
    task, input_kind, default_params = DECLARED.task, DECLARED.input_kind, DECLARED.default_params

    def call(self, pipeline: Any, queries: list[str], batch_size: int, params: dict[str, Any]) -> WorkDone:
        pipeline(one_or_many(queries), batch_size=batch_size)  # no aggregation: the pipeline's default, as in the study
        return WorkDone(len(queries), input_tokens=count_tokens(pipeline.tokenizer, queries))


WORKLOAD = TokenClassification()
