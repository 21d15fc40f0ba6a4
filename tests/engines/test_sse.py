"""The streamed body read as bytes counts exactly what parsing every `data:` line would, however the reads split it
(worker.engines.sse; the real engine's streams are read in tests/engines/test_serving.py)."""

from __future__ import annotations

import json

import pytest

from worker.engines.records import RequestRecord
from worker.engines.sse import TokenStream


def event(payload: dict, *, compact: bool = True, newline: str = "\n") -> str:
    text = json.dumps(payload, separators=(",", ":")) if compact else json.dumps(payload)
    return f"data: {text}{newline}{newline}"


def token(text: str, **options) -> str:
    return event({"id": "c", "object": "text_completion", "choices": [{"index": 0, "text": text}], "usage": None},
                 **options)


USAGE = {"id": "c", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 5}}
BODIES = {
    "vllm": "".join(token(t) for t in (" a", " b", "", ' "usage": {', "\\n data: x")) + event(USAGE)
    + "data: [DONE]\n\n",
    "spaced, CRLF, with comments": ": ping\r\n\r\n" + "".join(token(t, compact=False, newline="\r\n") for t in "abcde")
    + event(USAGE, compact=False, newline="\r\n") + "data: [DONE]\r\n\r\n",
    "usage on every chunk, no [DONE] nor final newline": "".join(
        event({"choices": [{"text": t}], "usage": {"prompt_tokens": 7, "completion_tokens": i + 1}})
        for i, t in enumerate("abcde")).rstrip("\n"),
    "empty choices and an error event": token("a") + event({"choices": []}) + token("b") + token("c") + token("d")
    + event({"error": {"message": "overloaded"}}) + token("e") + event(USAGE),
}


def read(body: bytes, cuts: list[int]) -> RequestRecord:
    """`body` fed in reads that end at `cuts`, the n-th read stamped n."""
    record = RequestRecord(0.0)
    stream = TokenStream(record)
    for n, (a, b) in enumerate(zip([0, *cuts], [*cuts, len(body)], strict=True)):
        stream.feed(body[a:b], float(n))
    stream.close(float(len(cuts) + 1))
    return record


def parse_each_line(body: bytes, cuts: list[int]) -> RequestRecord:
    """What the client did before: every `data:` line through json.loads, stamped with the read that completed it."""
    record = RequestRecord(0.0)
    ends = [*cuts, len(body)]
    at = 0
    for line in body.decode().splitlines(keepends=True):
        at += len(line.encode())
        if not line.startswith("data:") or line[5:].strip() == "[DONE]":
            continue
        chunk = json.loads(line[5:])
        stamp = float(next((i for i, end in enumerate(ends) if end >= at), len(cuts)))
        if not line.endswith("\n"):
            stamp = float(len(cuts) + 1)  # counted at close
        if chunk.get("choices"):
            record.chunk_at.append(stamp)
        if chunk.get("usage"):
            record.prompt_tokens, record.completion_tokens = (chunk["usage"]["prompt_tokens"],
                                                              chunk["usage"]["completion_tokens"])
    return record


@pytest.mark.parametrize("name", BODIES)
def test_every_split_of_a_stream_counts_as_parsing_each_line(name):
    body = BODIES[name].encode()
    assert read(body, []).completion_tokens == 5 and len(read(body, []).chunk_at) == 5
    for cut in range(1, len(body)):  # two reads, split anywhere; and one read per byte
        for cuts in ([cut], list(range(cut, len(body), 7))):
            got, expected = read(body, cuts), parse_each_line(body, cuts)
            assert (got.chunk_at, got.prompt_tokens, got.completion_tokens) == \
                (expected.chunk_at, expected.prompt_tokens, expected.completion_tokens), (name, cuts)


def test_a_malformed_event_that_is_not_a_token_chunk_raises_as_json_does():
    with pytest.raises(json.JSONDecodeError):
        read(b'data: {"choices":[{"text":"a"}]}\n\ndata: {"usage": oops}\n\n', [])
