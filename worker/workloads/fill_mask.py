"""fill-mask: predict one masked word per text (the study: BERT-family models, top 1 prediction).

Queries are plain texts; the middle word of what the model keeps is replaced by
the model's own mask token ([MASK], <mask>, ...), so one dataset serves every
model. A document longer than the model's limit (the study's C4 and OSCAR sets
have them) is cut to the words that fit first: masking the middle of the whole
text and truncating afterwards would cut the mask off, and the run would fail.
"""

from __future__ import annotations

from typing import Any

from worker.contract.tasks import TASKS
from worker.workloads._shared import PipelineWorkload, count_tokens, one_or_many
from worker.workloads.base import WorkDone

UNSET_MAX_LENGTH = 1_000_000  # tokenizers without a limit report a huge model_max_length


def mask_middle_word(text: str, mask_token: str) -> str:
    words = text.split()
    if not words:
        return mask_token
    words[len(words) // 2] = mask_token
    return " ".join(words)


def token_limit(pipeline: Any) -> int | None:
    """The most tokens (special tokens included) the model reads: the tokenizer's limit, else the model's
    positions (RoBERTa-style models start positions after the padding index: two fewer)."""
    limit = getattr(pipeline.tokenizer, "model_max_length", None)
    if limit and limit < UNSET_MAX_LENGTH:
        return int(limit)
    config = pipeline.model.config
    positions = getattr(config, "max_position_embeddings", None)
    if not positions:
        return None
    return int(positions) - (2 if "roberta" in str(getattr(config, "model_type", "")) else 0)


def short_enough(text: str, tokenizer: Any, limit: int) -> bool:
    """Whether `text` surely fits without tokenising it: every token covers at least one byte of text."""
    return len(text.encode()) + tokenizer.num_special_tokens_to_add() + 1 <= limit


def kept_words(text: str, tokenizer: Any, limit: int) -> list[str]:
    """The leading words of `text` whose tokens (special tokens included) fit in `limit`.

    This runs inside the meter window, once per long document: a fast tokenizer says in one pass where its
    truncation cuts the text (character offsets); others are searched by halves.
    """
    words = text.split()
    if getattr(tokenizer, "is_fast", False):
        # Every word is at least one token: the first limit + 1 words reach past the cut, the rest need no reading.
        head = " ".join(words[:limit + 1])
        offsets = tokenizer(head, truncation=True, max_length=limit, return_offsets_mapping=True)["offset_mapping"]
        cut = max((end for start, end in offsets if end > start), default=0)  # special tokens cover nothing
        if cut >= len(head):
            return words[:limit + 1]
        kept = len(head[:cut].split()) - (0 if head[cut] == " " else 1)  # a word cut in two is dropped
        return words[:max(kept, 0)]

    def fits(n: int) -> bool:
        return len(tokenizer(" ".join(words[:n]))["input_ids"]) <= limit

    low, high = 0, len(words)  # fits(low) holds; find the largest n with fits(n)
    if fits(high):
        return words
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return words[:low]


def mask_inside(text: str, tokenizer: Any, limit: int | None) -> str:
    """`text` cut to what the model keeps, its middle word replaced by the mask token, still within `limit`."""
    mask = tokenizer.mask_token
    if limit is None or short_enough(text, tokenizer, limit):
        return mask_middle_word(text, mask)
    words = kept_words(text, tokenizer, limit)
    masked = mask_middle_word(" ".join(words), mask)
    # A mask is one token where its word may have been several; should a tokenizer still count more, drop words.
    while len(words) > 1 and len(tokenizer(masked)["input_ids"]) > limit:
        words = words[:-1]
        masked = mask_middle_word(" ".join(words), mask)
    return masked


DECLARED = TASKS["fill-mask"]  # name, input kind, default params: worker.contract.tasks


class FillMask(PipelineWorkload):
    task, input_kind, default_params = DECLARED.task, DECLARED.input_kind, DECLARED.default_params

    def call(self, pipeline: Any, queries: list[str], batch_size: int, params: dict[str, Any]) -> WorkDone:
        limit = token_limit(pipeline)
        masked = [mask_inside(text, pipeline.tokenizer, limit) for text in queries]
        truncate = {"truncation": True} | ({"max_length": limit} if limit else {})
        pipeline(one_or_many(masked), batch_size=batch_size, top_k=int(params["top_k"]), tokenizer_kwargs=truncate)
        return WorkDone(len(queries), input_tokens=count_tokens(pipeline.tokenizer, masked))


WORKLOAD = FillMask()
