"""Extractive QA decoding (worker.workloads._extractive_qa) on logits we choose: spans stay in the context, are
at most 15 tokens, widen to whole words, and long contexts are read in overlapping windows."""

from __future__ import annotations

import pytest

from worker.models.tiny import build_tiny
from worker.workloads._extractive_qa import MAX_ANSWER_TOKENS, ExtractiveQA


@pytest.fixture(scope="module")
def reader():
    tokenizer = build_tiny("bert", "question-answering").tokenizer
    return ExtractiveQA(model=None, tokenizer=tokenizer, device="cpu", max_seq_len=32, stride=8)


def logits_for(reader, encoding, window, start_word, end_word):
    """Logits that peak where `start_word` begins and `end_word` ends (context words of that window)."""
    import torch

    length = len(encoding["input_ids"][window])
    start, end = torch.zeros(len(encoding["input_ids"]), length), torch.zeros(len(encoding["input_ids"]), length)
    words = encoding.word_ids(window)
    sequences = encoding.sequence_ids(window)
    for token, (word, sequence) in enumerate(zip(words, sequences, strict=True)):
        if sequence == 1 and word == start_word and not start[window].any():
            start[window, token] = 10.0
        if sequence == 1 and word == end_word:
            end[window, token] = 10.0
    return start, end


def test_the_best_span_is_read_back_as_whole_words_of_the_context(reader):
    context = "the red teacher reached the calm city near calder"
    encoding = reader.windows(["where did the teacher go"], [context])
    start, end = logits_for(reader, encoding, 0, 5, 8)  # "calm" ... "calder"
    [answer] = reader.best_answers(encoding, start, end, [context])
    assert answer["answer"] == "calm city near calder"
    assert context[answer["start"]:answer["end"]] == answer["answer"]
    assert 0 < answer["score"] <= 1


def test_question_tokens_and_overlong_spans_are_never_answers(reader):
    import torch

    context = " ".join(f"w{i}" for i in range(12))  # 12 words, each a few tokens
    encoding = reader.windows(["fox"], [context])
    start, end = torch.zeros(1, len(encoding["input_ids"][0])), torch.zeros(1, len(encoding["input_ids"][0]))
    start[0, 1] = end[0, 1] = 50.0  # the question's token: masked out
    [answer] = reader.best_answers(encoding, start, end, [context])
    assert "fox" not in answer["answer"]
    first = encoding.sequence_ids(0).index(1)
    start[0, first] = 50.0
    end[0, first + MAX_ANSWER_TOKENS + 2] = 50.0  # a span longer than 15 tokens scores nothing
    [answer] = reader.best_answers(encoding, start, end, [context])
    assert len(reader.tokenizer(answer["answer"], add_special_tokens=False)["input_ids"]) <= MAX_ANSWER_TOKENS


def test_a_long_context_is_read_in_overlapping_windows_and_answered_from_any(reader):
    context = " ".join(["the calm city near calder"] * 12) + " lindum harbour"
    encoding = reader.windows(["where"], [context])
    windows = len(encoding["input_ids"])
    assert windows > 2 and set(encoding["overflow_to_sample_mapping"]) == {0}
    last_words = encoding.word_ids(windows - 1)
    lindum = max(w for w, s in zip(last_words, encoding.sequence_ids(windows - 1), strict=True) if s == 1) - 1
    start, end = logits_for(reader, encoding, windows - 1, lindum, lindum + 1)
    [answer] = reader.best_answers(encoding, start, end, [context])
    assert answer["answer"] == "lindum harbour" and answer["end"] == len(context)
