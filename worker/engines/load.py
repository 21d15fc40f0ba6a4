"""The load generator: closed loop (N requests always in flight) or open loop (Poisson arrivals at a rate),
streaming completions from an OpenAI-compatible endpoint through httpx's async client.

Each request records when it was sent, when each streamed chunk arrived, when it ended, and the engine's own
`usage` (prompt and completion tokens), from which TTFT, inter-token gaps and the token counts are read. Output
lengths are fixed (`min_tokens = max_tokens`, `ignore_eos`) unless the sweep says `fixed_length: false`.

Beside the requests, a sampler records the load every `SAMPLE_S`: the client's in-flight count, the engine's
running and waiting requests (its Prometheus gauges, where it has them) and the GPU's energy counter (where the
meter has one), so that the steady part of the run can be cut from the metered window (worker.engines.steady).

httpx rather than the openai SDK: the SDK builds a pydantic object per streamed chunk, several times the client
CPU per token for fields we do not read (bench/serving.py measures the client's cost).
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from worker.engines.base import Endpoint
from worker.engines.records import LoadRun, LoadSample, RequestRecord

__all__ = ["LoadRun", "LoadSample", "RequestRecord", "arrival_offsets_s", "drive", "request_body"]

SAMPLE_S = 0.25
REQUEST_TIMEOUT_S = 3600.0


def request_body(endpoint: Endpoint, prompt: str, max_tokens: int, fixed_length: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": endpoint.model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                            "stream": True, "stream_options": {"include_usage": True}}
    if fixed_length:
        if "min_tokens" in endpoint.fixed_length_fields:
            body["min_tokens"] = max_tokens
        if "ignore_eos" in endpoint.fixed_length_fields:
            body["ignore_eos"] = True
    return body


async def _one(client, endpoint: Endpoint, body: dict[str, Any], record: RequestRecord) -> None:
    """Stream one completion into `record` (its error, not an exception, when it fails)."""
    try:
        async with client.stream("POST", f"{endpoint.base_url}/completions", json=body) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode("utf-8", "replace")
                record.error = f"HTTP {response.status_code}: {' '.join(text.split())[:300]}"
                return
            async for line in response.aiter_lines():  # read to the end (no break): the connection is reused
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    continue
                chunk = json.loads(data)
                choices = chunk.get("choices") or ()
                if choices:  # a chunk of new tokens, even where they decode to no text yet (part of a word)
                    record.chunk_at.append(time.time())
                usage = chunk.get("usage")
                if usage:
                    record.prompt_tokens = usage.get("prompt_tokens")
                    record.completion_tokens = usage.get("completion_tokens")
        record.done_at = time.time()
    except Exception as error:  # the engine died, or refused: the run says why
        record.error = f"{type(error).__name__}: {error}"[:300] or type(error).__name__
        record.done_at = time.time()


def arrival_offsets_s(n: int, rate: float, seed: int) -> list[float]:
    """Poisson arrivals: `n` start times (s after the first) with exponential gaps of mean 1 / `rate`."""
    draw = random.Random(seed)
    offsets, at = [], 0.0
    for _ in range(n):
        offsets.append(at)
        at += draw.expovariate(rate)
    return offsets


@functools.cache
def _tls_context():
    import ssl

    return ssl.create_default_context()


class _Clients:
    """One httpx client per request in flight, each with one kept-alive connection, reused as requests end.

    httpcore's connection pool walks every connection at every request (is_idle, has_expired), which at 64 in
    flight costs the client more CPU than the streaming itself; pools of one connection make that walk O(1).
    """

    def __init__(self, make) -> None:
        self.make, self.free, self.made = make, [], []

    def take(self):
        if self.free:
            return self.free.pop()
        client = self.make()
        self.made.append(client)
        return client

    def give(self, client) -> None:
        self.free.append(client)

    async def close(self) -> None:
        for client in self.made:
            await client.aclose()


async def _drive(endpoint: Endpoint, prompts: Sequence[str], *, max_tokens: int, fixed_length: bool,
                 concurrency: int | None, request_rate: float | None, seed: int,
                 gpu_energy_mj: Callable[[], int | None] | None, sample_s: float) -> LoadRun:
    import httpx

    from worker.engines.sampler import sample_load, scrape

    headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    timeout = httpx.Timeout(REQUEST_TIMEOUT_S, connect=30.0)
    run = LoadRun([], [], time.time(), 0.0)
    in_flight = 0
    tls = _tls_context()  # one for every client: loading the CA bundle costs ~70 ms of CPU each time
    clients = _Clients(lambda: httpx.AsyncClient(limits=limits, timeout=timeout, headers=headers, verify=tls))
    async with httpx.AsyncClient(timeout=10.0) as scraper:
        run.metrics_before = await scrape(scraper, endpoint)
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_load(scraper, endpoint, run, lambda: in_flight, gpu_energy_mj, stop,
                                                  sample_s))

        async def send(prompt: str) -> None:
            nonlocal in_flight
            record = RequestRecord(time.time())
            run.records.append(record)
            in_flight += 1
            client = clients.take()
            try:
                await _one(client, endpoint, request_body(endpoint, prompt, max_tokens, fixed_length), record)
            finally:
                in_flight -= 1
                clients.give(client)

        if request_rate is None:
            pending = iter(prompts)
            target = max(1, min(concurrency or 1, len(prompts)))

            async def loop() -> None:
                while True:
                    prompt = next(pending, None)
                    if prompt is None:
                        if run.drain_at is None:
                            run.drain_at = time.time()
                        return
                    if run.full_at is None and in_flight + 1 >= target:
                        run.full_at = time.time()
                    await send(prompt)

            await asyncio.gather(*(loop() for _ in range(target)))
        else:
            start = time.monotonic()
            tasks = []
            run.full_at = time.time()
            for offset, prompt in zip(arrival_offsets_s(len(prompts), request_rate, seed), prompts, strict=True):
                delay = start + offset - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(send(prompt)))
            run.drain_at = time.time()
            await asyncio.gather(*tasks)
        run.ended_at = time.time()
        stop.set()
        await sampler
        run.metrics_after = await scrape(scraper, endpoint)
        await clients.close()
    return run


def drive(endpoint: Endpoint, prompts: Sequence[str], *, max_tokens: int, fixed_length: bool = True,
          concurrency: int | None = None, request_rate: float | None = None, seed: int = 0,
          gpu_energy_mj: Callable[[], int | None] | None = None, sample_s: float = SAMPLE_S) -> LoadRun:
    """Send every prompt at the given load and wait for every answer; one of concurrency or request_rate."""
    return asyncio.run(_drive(endpoint, prompts, max_tokens=max_tokens, fixed_length=fixed_length,
                              concurrency=concurrency, request_rate=request_rate, seed=seed,
                              gpu_energy_mj=gpu_energy_mj, sample_s=sample_s))
