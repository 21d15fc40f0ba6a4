"""Reading a streamed completion (server-sent events) as bytes: when each chunk of new tokens arrived, and the
engine's `usage`, at the client CPU cost of a few bytes operations per read.

Every read is stamped once; each `data:` line in it is one chunk (chunks that arrive in one read are 0 apart:
the client sees no finer gap). A read whose complete lines are all plain
token chunks (`"choices":[{` on each, no `usage` object) is counted without parsing; anything else (the usage
chunk, `[DONE]`, an empty `choices`, an error event, JSON written with other spacing) goes line by line through
json.loads, so the counts are exactly those of parsing every line: a chunk counts when its `choices` is
non-empty (new tokens, even ones that decode to no text yet), and the last `usage` seen is the request's. A JSON
string cannot hold a raw newline nor an unescaped quote, so neither test can be fooled by generated text. (A
token chunk is not checked to be valid JSON; the count it adds to is checked against the parsed `usage`.)
"""

from __future__ import annotations

import json
import re
from itertools import repeat

from worker.engines.records import RequestRecord

TOKEN_CHUNK = b'"choices":[{'  # how vLLM and SGLang write a chunk of new tokens (compact JSON)
USAGE = re.compile(rb'"usage"\s*:\s*\{')


class TokenStream:
    """Feeds one request's response body, read by read, into its RequestRecord."""

    __slots__ = ("record", "tail")

    def __init__(self, record: RequestRecord) -> None:
        self.record = record
        self.tail = b""  # the last line, until its newline arrives

    def feed(self, data: bytes, now: float) -> None:
        if self.tail:
            data = self.tail + data
        end = data.rfind(b"\n") + 1
        self.tail = data[end:]
        if end:
            self._lines(data[:end] if end < len(data) else data, now)

    def close(self, now: float) -> None:
        """The body ended: a last line without a newline counts too."""
        if self.tail:
            tail, self.tail = self.tail, b""
            self._lines(tail, now)

    def _lines(self, lines: bytes, now: float) -> None:
        chunks = lines.count(b"\ndata:") + lines.startswith(b"data:")
        if chunks and lines.count(TOKEN_CHUNK) == chunks and USAGE.search(lines) is None:
            self.record.chunk_at.extend(repeat(now, chunks))
            return
        for line in lines.splitlines():  # the same test line by line, json.loads for the rest
            if not line.startswith(b"data:"):
                continue
            if TOKEN_CHUNK in line and USAGE.search(line) is None:
                self.record.chunk_at.append(now)
            else:
                self._parse(line[5:].strip(), now)

    def _parse(self, data: bytes, now: float) -> None:
        if data == b"[DONE]":
            return
        chunk = json.loads(data)
        if chunk.get("choices"):
            self.record.chunk_at.append(now)
        usage = chunk.get("usage")
        if usage:
            self.record.prompt_tokens = usage.get("prompt_tokens")
            self.record.completion_tokens = usage.get("completion_tokens")
