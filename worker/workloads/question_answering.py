"""question-answering (extractive): find the answer span in a context (the study: SQuAD, SQuAD v2, ...).

transformers 5 has no question-answering pipeline: the QA head's start and end logits are decoded to the best
span within the context by worker.workloads._extractive_qa, windows and all, as the pipeline did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.workloads._shared import PipelineWorkload, count_tokens, merged
from worker.workloads._zero_shot import ZeroShot
from worker.workloads.base import WorkUnits


class QuestionAnswering(PipelineWorkload):
    task = "question-answering"
    input_kind = "qa"

    def load(self, model: str, device: str, params: Mapping[str, Any]) -> Any:
        from worker.workloads._extractive_qa import load_extractive_qa

        return load_extractive_qa(model, device, merged(self.task, self.default_params, params)["dtype"])

    def call(self, reader: Any, queries: list[dict], batch_size: int, params: dict[str, Any]) -> WorkUnits:
        questions = [q["question"] for q in queries]
        contexts = [q["context"] for q in queries]
        windows = reader.windows(questions, contexts)
        reader.best_answers(windows, *reader.logits(windows, batch_size), contexts)
        return WorkUnits(len(queries), input_tokens=count_tokens(reader.tokenizer, questions, contexts))


WORKLOAD = QuestionAnswering()

# The study's extractive-QA prompt for multi-purpose models, with 65 new tokens (end-of-sequence disabled).
ZERO_SHOT = ZeroShot(task="question-answering", input_kind="qa", max_new_tokens=65,
                     prompt_template='{question}? Find the answer to the question in the following text: '
                                     '"{context}". Answer:')
