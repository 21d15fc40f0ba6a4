"""question-answering (extractive): find the answer span in a context (the study: SQuAD, SQuAD v2, ...).

transformers 5 has no question-answering pipeline: the QA head's start and end logits are decoded to the best
span within the context by worker.workloads._extractive_qa, windows and all, as the pipeline did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.contract.tasks import TASKS
from worker.workloads._shared import PipelineWorkload, count_tokens, merged
from worker.workloads._zero_shot import ZeroShot
from worker.workloads.base import WorkDone

DECLARED = TASKS["question-answering"]  # name, input kind, default params, zero-shot form: worker.contract.tasks


class QuestionAnswering(PipelineWorkload):
    task, input_kind, default_params = DECLARED.task, DECLARED.input_kind, DECLARED.default_params

    def load(self, model: str, device: str, params: Mapping[str, Any]) -> Any:
        from worker.workloads._extractive_qa import load_extractive_qa

        return load_extractive_qa(model, device, merged(self.task, self.default_params, params)["dtype"])

    def call(self, reader: Any, queries: list[dict], batch_size: int, params: dict[str, Any]) -> WorkDone:
        questions = [q["question"] for q in queries]
        contexts = [q["context"] for q in queries]
        windows = reader.windows(questions, contexts)
        reader.best_answers(windows, *reader.logits(windows, batch_size), contexts)
        return WorkDone(len(queries), input_tokens=count_tokens(reader.tokenizer, questions, contexts))


WORKLOAD = QuestionAnswering()

ZERO_SHOT = ZeroShot(DECLARED.zero_shot)
