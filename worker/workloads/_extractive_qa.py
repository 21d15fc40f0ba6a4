"""Extractive question answering through the QA head, as transformers 4's question-answering pipeline did it.

transformers 5 has no such pipeline; this is our own code for the same work and the same answers:

- windows: the question and the context tokenised as a pair, the context split into windows of at most
  `max_seq_len` tokens (min(model limit, 384)) overlapping by `stride` tokens (min(max_seq_len // 2, 128)); the
  question comes first where the tokenizer pads on the right, as the pipeline ordered them;
- the model reads the windows in batches of the run's batch size;
- decoding, per window: start and end logits softmaxed over the context's tokens (and the CLS token, kept for
  models that mark "no answer" there), the CLS position then zeroed; every span of 1 to `max_answer_tokens`
  (15) context tokens scored start x end; the 12 best (the pipeline's top_k x 2 + 10) widened to whole words of
  the context; the same text (case-insensitive) found more than once adds its scores; the best text wins over
  all windows of the query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_SEQ_LEN = 384
MAX_ANSWER_TOKENS = 15
CANDIDATES = 12  # per window: the pipeline's top_k * 2 + 10, as some candidates merge once widened to words
MASKED = -10000.0


@dataclass
class ExtractiveQA:
    """A QA model and its (fast) tokenizer, with the pipeline's window settings."""

    model: Any
    tokenizer: Any
    device: str
    max_seq_len: int
    stride: int
    wattsweep_provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def question_first(self) -> bool:
        return self.tokenizer.padding_side == "right"

    def windows(self, questions: Sequence[str], contexts: Sequence[str]) -> Any:
        """Every query's windows, padded to the longest; `overflow_to_sample_mapping` says whose each one is."""
        first, second = (questions, contexts) if self.question_first else (contexts, questions)
        return self.tokenizer(list(first), list(second), padding=True, max_length=self.max_seq_len,
                              truncation="only_second" if self.question_first else "only_first",
                              stride=self.stride, return_overflowing_tokens=True, return_offsets_mapping=True)

    def logits(self, encoding: Any, batch_size: int) -> tuple[Any, Any]:
        """Start and end logits of every window, the model reading `batch_size` windows at a time."""
        import inspect

        import torch

        names = [name for name in self.tokenizer.model_input_names if name in encoding]
        tensors = {name: torch.tensor(encoding[name], device=self.device) for name in names}
        extra = {"use_cache": False} if "use_cache" in inspect.signature(self.model.forward).parameters else {}
        starts, ends = [], []
        total = len(encoding["input_ids"])
        with torch.inference_mode():
            for first in range(0, total, batch_size):
                output = self.model(**{name: t[first:first + batch_size] for name, t in tensors.items()}, **extra)
                starts.append(output.start_logits.float().cpu())
                ends.append(output.end_logits.float().cpu())
        return torch.cat(starts), torch.cat(ends)

    def best_answers(self, encoding: Any, start_logits: Any, end_logits: Any, contexts: Sequence[str]
                     ) -> list[dict[str, Any] | None]:
        """The best answer of each query: {score, start, end, answer} (character offsets in its context)."""
        found: list[list[dict[str, Any]]] = [[] for _ in contexts]
        for window, query in enumerate(encoding["overflow_to_sample_mapping"]):
            answers = found[query]
            for start, end, score in self._spans(encoding, window, start_logits[window], end_logits[window]):
                first, last = self._characters(encoding, window, start, end)
                text = contexts[query][first:last]
                same = next((a for a in answers if a["answer"].lower() == text.lower()), None)
                if same is not None:
                    same["score"] += score
                else:
                    answers.append({"score": score, "start": first, "end": last, "answer": text})
        return [max(answers, key=lambda a: a["score"]) if answers else None for answers in found]

    def _spans(self, encoding: Any, window: int, start: Any, end: Any) -> list[tuple[int, int, float]]:
        """The CANDIDATES best (start token, end token, score) spans of one window inside its context."""
        import torch

        context = 1 if self.question_first else 0
        ids = encoding["input_ids"][window]
        cls = self.tokenizer.cls_token_id
        allowed = torch.tensor([sequence == context or (cls is not None and token == cls)
                                for sequence, token in zip(encoding.sequence_ids(window), ids, strict=True)])
        start = torch.where(allowed, start.double(), MASKED).softmax(-1)
        end = torch.where(allowed, end.double(), MASKED).softmax(-1)
        start[0] = end[0] = 0.0  # the CLS position is no answer
        scores = torch.triu(torch.tril(start[:, None] * end[None, :], MAX_ANSWER_TOKENS - 1))
        best = scores.flatten().topk(min(CANDIDATES, scores.numel())).indices
        length = scores.shape[1]
        spans = []
        for index in best.tolist():
            first, last = divmod(index, length)
            if allowed[first] and allowed[last]:
                spans.append((first, last, float(scores[first, last])))
        return spans

    def _characters(self, encoding: Any, window: int, start: int, end: int) -> tuple[int, int]:
        """The span's characters in the context, widened to the whole words its first and last tokens are in."""
        context = 1 if self.question_first else 0
        first_word, last_word = encoding.token_to_word(window, start), encoding.token_to_word(window, end)
        if first_word is not None and last_word is not None:
            first = encoding.word_to_chars(window, first_word, sequence_index=context)
            last = encoding.word_to_chars(window, last_word, sequence_index=context)
            if first is not None and last is not None:
                return first[0], last[1]
        offsets = encoding["offset_mapping"][window]
        return offsets[start][0], offsets[end][1]


def load_extractive_qa(model_ref: str, device: str, dtype: Any) -> ExtractiveQA:
    from worker.errors import ModelLoadError
    from worker.models.loading import load_for_task
    from worker.workloads._shared import quiet

    with quiet():
        loaded = load_for_task(model_ref, "question-answering", device, dtype)
    tokenizer = loaded.tokenizer
    if not getattr(tokenizer, "is_fast", True):
        raise ModelLoadError(f"{model_ref}: extractive question answering needs a fast tokenizer (character "
                             "offsets of its tokens)")
    loaded.model.eval()
    max_seq_len = min(int(tokenizer.model_max_length), MAX_SEQ_LEN)
    return ExtractiveQA(loaded.model, tokenizer, device, max_seq_len, min(max_seq_len // 2, 128),
                        loaded.provenance)
