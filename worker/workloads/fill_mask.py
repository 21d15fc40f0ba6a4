"""fill-mask: predict one masked word per text (the study: BERT-family models, top 1 prediction).

Queries are plain texts; the middle word is replaced by the model's own mask
token ([MASK], <mask>, ...), so one dataset serves every model.
"""

from __future__ import annotations

from typing import Any

from worker.workloads._shared import PipelineWorkload, count_tokens, one_or_many, with_common
from worker.workloads.base import WorkUnits


def mask_middle_word(text: str, mask_token: str) -> str:
    words = text.split()
    if not words:
        return mask_token
    words[len(words) // 2] = mask_token
    return " ".join(words)


class FillMask(PipelineWorkload):
    task = "fill-mask"
    input_kind = "text"
    default_params = with_common(top_k=1)

    def call(self, pipeline: Any, queries: list[str], batch_size: int, params: dict[str, Any]) -> WorkUnits:
        masked = [mask_middle_word(text, pipeline.tokenizer.mask_token) for text in queries]
        pipeline(one_or_many(masked), batch_size=batch_size, top_k=int(params["top_k"]),
                 tokenizer_kwargs={"truncation": True})
        return WorkUnits(len(queries), input_tokens=count_tokens(pipeline.tokenizer, masked))


WORKLOAD = FillMask()
