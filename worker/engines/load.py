"""The load generator: closed loop (N requests always in flight) or open loop (Poisson arrivals at a rate),
streaming completions from an OpenAI-compatible endpoint through httpx's async client.

Each request records when it was sent, when each streamed chunk arrived, when it ended, and the engine's own
`usage` (prompt and completion tokens), from which TTFT, inter-token gaps and the token counts are read. Output
lengths are fixed (`min_tokens = max_tokens`, `ignore_eos`) unless the sweep says `fixed_length: false`.

Beside the requests, a sampler records the load every `SAMPLE_S`: the client's in-flight count, the engine's
running and waiting requests (its Prometheus gauges, where it has them) and the GPU's energy counter (where the
meter has one), so that the steady part of the run can be cut from the metered window (worker.engines.steady).

The client is aiohttp: one session per run, its connections kept alive and reused, the response bodies read as
bytes (worker.engines.sse: no JSON parsed per token). Its C HTTP parser costs about a sixth of httpx's pure-Python
stack per request (httpcore, h11, anyio), and the openai SDK builds a pydantic object per streamed chunk;
bench/serving.py measures the client's cost.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from worker.engines.base import Endpoint
from worker.engines.records import LoadRun, LoadSample, RequestRecord
from worker.engines.sse import TokenStream

__all__ = ["LoadRun", "LoadSample", "RequestRecord", "arrival_offsets_s", "drive", "request_body"]

SAMPLE_S = 0.25
READ_TIMEOUT_S = 3600.0  # an engine silent this long on a request has hung


def request_body(endpoint: Endpoint, prompt: str, max_tokens: int, fixed_length: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": endpoint.model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                            "stream": True, "stream_options": {"include_usage": True}}
    if fixed_length:
        if "min_tokens" in endpoint.fixed_length_fields:
            body["min_tokens"] = max_tokens
        if "ignore_eos" in endpoint.fixed_length_fields:
            body["ignore_eos"] = True
    return body


async def _one(session, url: str, body: bytes, auth: dict[str, str] | None, record: RequestRecord) -> None:
    """Stream one completion into `record` (its error, not an exception, when it fails)."""
    try:
        async with session.post(url, data=body, headers=auth) as response:
            if response.status != 200:
                text = (await response.read()).decode("utf-8", "replace")
                record.error = f"HTTP {response.status}: {' '.join(text.split())[:300]}"
                return
            stream = TokenStream(record)
            async for data in response.content.iter_any():  # to the end (no break): the connection is reused
                stream.feed(data, time.time())
            stream.close(time.time())
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


async def _drive(endpoint: Endpoint, prompts: Sequence[str], *, max_tokens: int, fixed_length: bool,
                 concurrency: int | None, request_rate: float | None, seed: int,
                 gpu_energy_mj: Callable[[], int | None] | None, sample_s: float) -> LoadRun:
    import aiohttp

    from worker.engines.sampler import sample_load, scrape

    auth = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else None  # not to the metrics
    url = f"{endpoint.base_url}/completions"
    run = LoadRun([], [], time.time(), 0.0)
    in_flight = 0
    # no connection limit: a closed loop opens `concurrency` connections, an open loop as many as are in flight
    connector = aiohttp.TCPConnector(limit=0)
    # no cap on a whole request (a long generation under load may take hours), one on the wait for each read
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30.0, sock_read=READ_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     headers={"Content-Type": "application/json"}) as session:
        run.metrics_before = await scrape(session, endpoint)
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_load(session, endpoint, run, lambda: in_flight, gpu_energy_mj, stop,
                                                  sample_s))

        async def send(prompt: str) -> None:
            nonlocal in_flight
            body = json.dumps(request_body(endpoint, prompt, max_tokens, fixed_length)).encode()
            record = RequestRecord(time.time())
            run.records.append(record)
            in_flight += 1
            try:
                await _one(session, url, body, auth, record)
            finally:
                in_flight -= 1

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
        run.metrics_after = await scrape(session, endpoint)
    return run


def drive(endpoint: Endpoint, prompts: Sequence[str], *, max_tokens: int, fixed_length: bool = True,
          concurrency: int | None = None, request_rate: float | None = None, seed: int = 0,
          gpu_energy_mj: Callable[[], int | None] | None = None, sample_s: float = SAMPLE_S) -> LoadRun:
    """Send every prompt at the given load and wait for every answer; one of concurrency or request_rate."""
    return asyncio.run(_drive(endpoint, prompts, max_tokens=max_tokens, fixed_length=fixed_length,
                              concurrency=concurrency, request_rate=request_rate, seed=seed,
                              gpu_energy_mj=gpu_energy_mj, sample_s=sample_s))
