"""The load generator: closed loop (N requests always in flight) or open loop (Poisson arrivals at a rate),
streaming completions from an OpenAI-compatible endpoint.

Each request records when it was sent, when each streamed chunk arrived, when it ended, and the engine's own
`usage` (prompt and completion tokens), from which TTFT, inter-token gaps and the token counts are read. Output
lengths are fixed (`min_tokens = max_tokens`, `ignore_eos`) unless the sweep says `fixed_length: false`.

Beside the requests, a sampler records the load every `SAMPLE_S`: the client's in-flight count, the engine's
running and waiting requests (its Prometheus gauges, where it has them) and the GPU's energy counter (where the
meter has one), so that the steady part of the run can be cut from the metered window (worker.engines.steady).

The client is libcurl's multi interface (worker.engines.transfers): sockets, HTTP and keep-alive in C, one
Python call per piece of body received and per request ended, the bodies read as bytes (worker.engines.sse: no
JSON parsed per token). It costs the client under half of what aiohttp's asyncio client did per request, whose
event loop alone took most of the budget of 0.1 ms per request (bench/serving.py).
"""

from __future__ import annotations

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
CONNECT_TIMEOUT_S = 30.0
IDLE_WAKE_S = 1.0  # the longest wait without a socket, timer or sample due


def request_body(endpoint: Endpoint, prompt: str, max_tokens: int, fixed_length: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": endpoint.model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                            "stream": True, "stream_options": {"include_usage": True}}
    if fixed_length:
        if "min_tokens" in endpoint.fixed_length_fields:
            body["min_tokens"] = max_tokens
        if "ignore_eos" in endpoint.fixed_length_fields:
            body["ignore_eos"] = True
    return body


def arrival_offsets_s(n: int, rate: float, seed: int) -> list[float]:
    """Poisson arrivals: `n` start times (s after the first) with exponential gaps of mean 1 / `rate`."""
    draw = random.Random(seed)
    offsets, at = [], 0.0
    for _ in range(n):
        offsets.append(at)
        at += draw.expovariate(rate)
    return offsets


def drive(endpoint: Endpoint, prompts: Sequence[str], *, max_tokens: int, fixed_length: bool = True,
          concurrency: int | None = None, request_rate: float | None = None, seed: int = 0,
          gpu_energy_mj: Callable[[], int | None] | None = None, sample_s: float = SAMPLE_S) -> LoadRun:
    """Send every prompt at the given load and wait for every answer; one of concurrency or request_rate."""
    from worker.engines.sampler import Sampler, scrape
    from worker.engines.transfers import Transfers

    headers = ["Content-Type: application/json"]
    if endpoint.api_key:  # to the completions only, not the metrics
        headers.append(f"Authorization: Bearer {endpoint.api_key}")
    url = f"{endpoint.base_url}/completions"
    # no cap on a whole request (a long generation under load may take hours), one on a silence
    transfers = Transfers(headers, connect_timeout_s=CONNECT_TIMEOUT_S, stall_s=READ_TIMEOUT_S)
    try:
        run = LoadRun([], [], time.time(), 0.0)
        run.metrics_before = scrape(transfers, endpoint)
        in_flight = 0
        sampler = Sampler(transfers, endpoint, run, lambda: in_flight, gpu_energy_mj, sample_s)

        def send(prompt: str, then: Callable[[], object] | None = None) -> None:
            nonlocal in_flight
            body = json.dumps(request_body(endpoint, prompt, max_tokens, fixed_length)).encode()
            record = RequestRecord(time.time())
            run.records.append(record)
            stream = TokenStream(record)

            def done(error: str | None) -> None:
                nonlocal in_flight
                if error is None:
                    try:
                        stream.close(transfers.now)
                    except Exception as failure:  # a last line that is not JSON
                        error = f"{type(failure).__name__}: {failure}"[:300]
                record.error = error  # the engine died, refused, or wrote what is not a stream: the run says why
                record.done_at = time.time()
                in_flight -= 1
                if then is not None:
                    then()

            in_flight += 1
            transfers.post(url, body, stream.feed, done)

        def wait_until(deadline: float) -> None:  # monotonic; moves the transfers, starts the samples due
            sampler.poll()
            transfers.wait(min(deadline, sampler.due or deadline) - time.monotonic())

        if request_rate is None:
            pending = iter(prompts)
            target = max(1, min(concurrency or 1, len(prompts)))

            def next_request() -> None:  # each of the `target` loops: one request after the other
                prompt = next(pending, None)
                if prompt is None:
                    if run.drain_at is None:
                        run.drain_at = time.time()
                    return
                if run.full_at is None and in_flight + 1 >= target:
                    run.full_at = time.time()
                send(prompt, next_request)

            for _ in range(target):
                next_request()
        else:
            start = time.monotonic()
            run.full_at = time.time()
            for offset, prompt in zip(arrival_offsets_s(len(prompts), request_rate, seed), prompts, strict=True):
                while time.monotonic() < start + offset:
                    wait_until(start + offset)
                send(prompt)
            run.drain_at = time.time()
        while in_flight:
            wait_until(time.monotonic() + IDLE_WAKE_S)
        run.ended_at = time.time()
        sampler.stopping = True
        while sampler.busy():  # the sample being taken is kept
            transfers.wait(IDLE_WAKE_S)
        run.metrics_after = scrape(transfers, endpoint)
        return run
    finally:
        transfers.close()
