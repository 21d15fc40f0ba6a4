"""The serving load generator's own cost and accuracy (issue 20). Prints figures; asserts nothing.

1. Against a minimal local streaming endpoint (aiohttp, in its own process, answering instantly): the client's
   CPU time per request and per streamed token (a least-squares fit over output lengths), and the highest request
   rate one core drives (requests per client CPU-second at 64 in flight). Target: under 1% of one core per
   100 requests/s, i.e. under 0.1 ms of client CPU per request.
2. Against the real engine (vLLM's CPU build serving the tiny Llama; WATTSWEEP_VLLM_COMMAND or .venv-vllm): per
   load, the client's CPU per request and per token, the steady share of the run (worker.engines.steady), and the
   measured TTFT, inter-token and end-to-end latency beside the engine's own histograms (means over the run;
   target: within 10%).

    python bench/serving.py [--skip-engine]

What it showed on the 2-core dev VM (shared; load average in brackets). Client against the minimal endpoint:
before (httpx, one client per request in flight, a json.loads per chunk) 0.78 ms of CPU per request plus 13.9 us
per streamed token [6-8]; then (aiohttp, one session, the stream read as bytes: worker.engines.sse) 0.13-0.14
ms per request plus 2.7-2.9 us per token [5-14], i.e. 1.3-1.4% of one core per 100 requests/s of one token,
the target missed by a third, half of it asyncio's event loop (hand-parsed HTTP on asyncio's streams: 0.05 ms;
uvloop changed neither); now (pycurl: libcurl's multi interface, its I/O loop, HTTP and keep-alive in C,
worker.engines.transfers) 0.045-0.049 ms per request of one token, fit 0.056-0.064 ms plus 1.4-1.7 us per token
[4-14]: 0.5% of one core per 100 requests/s, some 21,000 requests per client CPU-second (one run at [15]: 0.080
ms, 0.8%).
Against the real engine each streamed chunk is a read of its own, one wake-up each. 24-token requests, the
sampler included, aiohttp and pycurl interleaved on one engine, 5 pairs per load [8-21]: at 1 in flight
1.0-2.9 ms per request with aiohttp, 0.63-1.8 ms with pycurl (less in each pair); at 8, 0.44-0.82 and 0.27-0.55
ms (before httpx: 4.8 and 3.5 ms); the latencies beside the engine's histograms were alike for both clients. A
server that sleeps 2 ms between chunks (one wake-up each) [13-18]: 70-90 us of client CPU per chunk at 1 in
flight (aiohttp 100-150), 17-21 us at 8 (aiohttp 28-54); most of it the wake-up itself on a busy machine.
The load sampler used to
parse the engine's whole /metrics (600 lines, 7.4 ms) 4 times a second, most of the client's CPU at low
rates; it now scans for its gauges (0.09 ms). When the machine was quiet [0.8] vLLM streamed token by token and
the client's inter-token latency agreed with the engine's histogram within 1-2%, end-to-end within 4-6%, TTFT
+28-39% (the client's includes the API server's HTTP and tokenization, the engine's starts in its core); when
it was loaded [6-17] vLLM's API server delivered each request's chunks in one burst, so the client's TTFT and
end-to-end exceed the engine's many times over and its inter-token gaps are 0 (chunks of one read).
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from worker.engines.base import Endpoint  # noqa: E402
from worker.engines.load import drive  # noqa: E402

ENDPOINT = textwrap.dedent('''
    import json, sys
    from aiohttp import web

    def event(payload):  # compact JSON, as vLLM writes it
        return ("data: " + json.dumps(payload, separators=(",", ":")) + "\\n\\n").encode()

    async def completions(request):
        body = await request.json()
        n = body["max_tokens"]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        line = event({"id": "x", "object": "text_completion", "choices": [{"index": 0, "text": " tok"}], "usage": None})
        for _ in range(n):
            await response.write(line)
        usage = {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": n, "total_tokens": n + 4}}
        await response.write(event(usage) + b"data: [DONE]\\n\\n")
        return response

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
''')
PROMPT = "the quick brown fox jumps over the lazy dog"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_port(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def client_cost(endpoint: Endpoint, n: int, tokens: int, concurrency: int) -> tuple[float, float, float]:
    """(client CPU s, wall s, requests answered) for n requests of `tokens` tokens at `concurrency`."""
    cpu, wall = time.process_time(), time.perf_counter()
    run = drive(endpoint, [PROMPT] * n, max_tokens=tokens, concurrency=concurrency, fixed_length=False)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if run.errors:
        sys.exit(f"requests failed: {run.errors[0]}")
    miscounted = [r for r in run.records if r.completion_tokens != tokens or len(r.chunk_at) != tokens]
    if miscounted:
        sys.exit(f"{len(miscounted)} requests miscounted: usage {miscounted[0].completion_tokens}, "
                 f"{len(miscounted[0].chunk_at)} chunks, {tokens} sent")
    return cpu, wall, len(run.records)


def endpoint_python() -> str:
    """An interpreter with aiohttp (the endpoint is an aiohttp server): this one (wattsweep's dev extra), or vLLM's
    venv (one of its dependencies)."""
    import importlib.util

    if importlib.util.find_spec("aiohttp") is not None:
        return sys.executable
    vllm_python = shlex.split(vllm_command())[0]
    if not Path(vllm_python).exists():
        sys.exit("the minimal endpoint needs aiohttp: pip install aiohttp, or `make vllm` (its venv has it)")
    return vllm_python


def vllm_command() -> str:
    return os.environ.get("WATTSWEEP_VLLM_COMMAND") or \
        f"{ROOT / '.venv-vllm' / 'bin' / 'python'} -m vllm.entrypoints.openai.api_server"


def minimal_endpoint() -> None:
    port = free_port()
    server = subprocess.Popen([endpoint_python(), "-c", ENDPOINT, str(port)])
    try:
        wait_port(port)
        endpoint = Endpoint(base_url=f"http://127.0.0.1:{port}/v1", model="m", fixed_length_fields=())
        client_cost(endpoint, 200, 4, 16)  # warm up imports and connections
        print("client cost against a minimal local streaming endpoint (64 in flight, 2,000 requests each; load "
              f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs):")
        xs, ys = [], []
        for tokens in (1, 16, 64, 256):
            cpu, wall, n = client_cost(endpoint, 2000, tokens, 64)
            xs.append(tokens)
            ys.append(cpu / n)
            print(f"  {tokens:4d} tokens/request: {cpu / n * 1e3:7.3f} ms CPU per request, {n / cpu:7,.0f} "
                  f"requests per client CPU-second, {n / wall:7,.0f} requests/s wall")
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        per_token = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / \
            sum((x - mean_x) ** 2 for x in xs)
        per_request = mean_y - per_token * mean_x
        print(f"  fit: {per_request * 1e3:.3f} ms CPU per request + {per_token * 1e6:.1f} us per streamed token")
        best = 1 / ys[0]
        print(f"  highest request rate one core drives (1 token each): {best:,.0f} requests/s; at 100 requests/s "
              f"of 1 token the client takes {100 * ys[0] * 100:.1f}% of one core (target < 1%), of 256 tokens "
              f"{100 * ys[-1] * 100:.1f}%")
    finally:
        server.terminate()
        server.wait()


def real_engine() -> None:
    from worker.engines.metrics import run_means
    from worker.engines.process import EngineProcess
    from worker.engines.served import model_location
    from worker.engines.steady import steady_part
    from worker.engines.vllm import ENGINE

    command = vllm_command()
    if not Path(shlex.split(command)[0]).exists():
        print(f"real engine: skipped, no vLLM at {shlex.split(command)[0]} (make vllm)")
        return
    model = model_location("tiny:llama", "text-generation")[0]
    port = free_port()
    server = EngineProcess([*shlex.split(command), "--model", model, "--served-model-name", "wattsweep-model",
                            "--port", str(port), "--enforce-eager", "--disable-uvicorn-access-log"],
                           log_path=Path("/tmp/wattsweep-bench-vllm.log"),
                           env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"})
    import httpx

    started = time.perf_counter()
    server.start()
    try:
        server.wait_healthy(lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200, 600)
        print(f"real engine: vLLM (CPU build) ready in {time.perf_counter() - started:.0f} s, tiny:llama, "
              "160 requests of 24 tokens per load")
        endpoint = ENGINE.endpoint({}, port=port)
        drive(endpoint, [PROMPT] * 16, max_tokens=24, concurrency=4)  # warm-up
        for concurrency in (1, 8):
            cpu = time.process_time()
            run = drive(endpoint, [f"{PROMPT} {i}" for i in range(160)], max_tokens=24, concurrency=concurrency)
            cpu = time.process_time() - cpu
            tokens = sum(r.completion_tokens or 0 for r in run.records)
            steady = steady_part(run, concurrency=concurrency, steady_min_s=1)
            share = (steady.duration_s or 0) / (run.ended_at - run.started_at)
            means = run_means(run.metrics_before, run.metrics_after, endpoint.metrics)
            done = [r for r in run.records if r.error is None]
            ttft = sum(r.ttft_s for r in done) / len(done)
            gaps = [g for r in done for g in r.gaps_s()]
            per_token_gap = sum(r.e2e_s - r.ttft_s for r in done) / sum((r.completion_tokens or 1) - 1 for r in done)
            e2e = sum(r.e2e_s for r in done) / len(done)
            print(f"  concurrency {concurrency}: {tokens / (run.ended_at - run.started_at):,.0f} tokens/s, client "
                  f"{cpu / len(done) * 1e3:.2f} ms CPU per request, {cpu / tokens * 1e6:.0f} us per token; steady "
                  f"share {share:.0%} {list(steady.flags)}")
            for name, client, engine in (("TTFT", ttft, means.ttft_s), ("ITL (per token)", per_token_gap, means.itl_s),
                                         ("ITL (chunk gaps)", sum(gaps) / len(gaps), means.itl_s),
                                         ("e2e", e2e, means.e2e_s)):
                diff = f"{(client - engine) / engine:+.0%}" if engine else "n/a"
                print(f"    {name:17s} client {client * 1e3:8.2f} ms, engine's histogram {engine * 1e3:8.2f} ms "
                      f"({diff})")
    finally:
        server.stop()


if __name__ == "__main__":
    minimal_endpoint()
    if "--skip-engine" not in sys.argv:
        real_engine()
