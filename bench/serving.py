"""The serving load generator's own cost and accuracy (issue 20). Prints figures; asserts nothing.

1. Against a minimal local streaming endpoint (aiohttp, in its own process, answering instantly): the client's
   CPU time per request and per streamed token (a least-squares fit over output lengths), and the highest request
   rate one core drives (requests per client CPU-second at 64 in flight). Target: under 1% of one core per
   100 requests/s, i.e. under 0.1 ms of client CPU per request.
2. Against the real engine (vLLM's CPU build serving the tiny Llama; WATTSWEEP_VLLM_COMMAND or .venv-vllm): per
   load, the client's CPU per request and per token, the steady share of the run (worker.engines.steady), and the
   measured TTFT, inter-token and end-to-end latency beside the engine's own histograms (means over the same
   requests, the histograms' counts diffed around the run; target: within 10%), with the verdict. vLLM runs under
   bench/vllm_timestamps.py, so that each request's TTFT is split exactly: the client's send, the API server's
   work before vLLM's arrival_time, the engine's TTFT (its histogram's own observation), the API server's work
   after it, and the chunk's write to the client's read; a second process measures how late this machine wakes a
   sleeping process (what the client's reads wait for). bench/ttft_breakdown.py splits finer (tokenization,
   queue, prefill) over long prompts too.

    python bench/serving.py [--skip-minimal] [--skip-engine] [--client-rt]

--client-rt (root only) runs the client at real-time priority against the real engine: an experiment that shows
what its timestamps read when this machine never keeps it waiting for a core.

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
rates; it now scans for its gauges (0.09 ms).

Client against vLLM (24 tokens, 160 requests per load; load average in brackets, other engineers' tests running).
vLLM's histogram times its TTFT from `arrival_time`, stamped in its renderer (renderers/base.py render_cmpl_async)
before tokenization, to the moment its API server takes the first token off the engine core (IterationStats,
before detokenization); its ITL from the engine core's own step timestamps. What the user waits for and the
histogram leaves out is the API server's own work: reading the request, the JSON body and pydantic validation
before arrival_time (0.7-1.15 ms at 1 in flight, 1.2-7 ms at 8), and detokenizing, encoding and writing the chunk
after the stamp (0.24-0.29 ms at 1, 0.5-1.9 ms at 8). With the client never kept waiting for a core
(--client-rt, two runs) [15]: TTFT client 8.0 and 10.9 ms vs histogram 6.1 and 8.3 ms at 1 in flight (+31%,
+32%; 1.3-1.4 ms of it the API server's own work, 0.6-1.2 ms transit), 16.9 and 47.7 vs 13.1 and 36.3 ms at 8
(+29%, +32%; 1.9 and 8.4 ms the API server's); the client against the API server's whole span (request read to
first chunk written) +8.2% and +12.6% at 1, +12.6% and +6.9% at 8; ITL per token within 1%; e2e +3.8% to +6.0%.
So on a model whose TTFT is a few ms the client's TTFT cannot agree with the histogram within 10%: the server's
own work is 1-1.5 ms a request at 1 in flight whatever the model (more as its event loop gets busier), which is
why the bench prints it beside the verdict; ITL and e2e do agree. Without --client-rt on the
same busy machine [12-15] the client reads each chunk late: vLLM wrote every chunk on time (its timestamps, the
server's write calls seen with perf trace), but the client read it 30-70 ms later (median), all of a request's
chunks in one read at 1 in flight, while a sleeping process woke 1-47 ms late on average; so its TTFT read
+310% to +2160%, its ITL near 0 (chunks read together). That lateness is this machine's, not vLLM's nor the
client's code (no Nagle: TCP_NODELAY is set on vLLM's sockets): the client must have a core of its own beside
the engine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "bench"))  # vllm_timestamps

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
AGREEMENT = 0.10  # the target: the client's figures within 10% of the engine's own


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


LAG_PROBE = textwrap.dedent('''
    import json, sys, threading, time
    lags, stop = [], threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    while not stop.is_set():
        start = time.perf_counter()
        time.sleep(0.002)
        lags.append(time.perf_counter() - start - 0.002)
    print(json.dumps(sorted(lags)))
''')


class WakeLag:
    """How late a process of the client's priority wakes on this machine while a run goes on: a second process
    sleeps 2 ms at a time and records by how much each sleep overran. The client waits for its chunks the same
    way; where the machine is busy it reads them late, together, whatever the engine did."""

    def __enter__(self) -> WakeLag:
        self.process = subprocess.Popen([sys.executable, "-c", LAG_PROBE], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc) -> None:
        out, _ = self.process.communicate("")
        self.lags = [float(x) for x in json.loads(out)] or [0.0]

    def text(self) -> str:
        lags = self.lags
        return (f"{sum(lags) / len(lags) * 1e3:.2f} ms on average, p99 {lags[int(0.99 * (len(lags) - 1))] * 1e3:.1f}"
                f", max {lags[-1] * 1e3:.0f}")


@contextlib.contextmanager
def tagged_requests():
    """Each request's body carries its prompt's first word as `request_id`, vLLM's own field, so that the
    timestamps vLLM's API server writes (bench/vllm_timestamps.py) join the client's records."""
    from worker.engines import load

    plain = load.request_body
    load.request_body = lambda endpoint, prompt, *args: {**plain(endpoint, prompt, *args),
                                                         "request_id": prompt.split()[0]}
    try:
        yield
    finally:
        load.request_body = plain


def verdict(client: float, engine: float | None) -> str:
    if not engine:
        return "no engine figure"
    ratio = client / engine - 1
    return f"{ratio:+.1%}, {'within' if abs(ratio) <= AGREEMENT else 'outside'} {AGREEMENT:.0%}"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def compare(run, prompts: list[str], means, stamps: dict[str, dict], lag: WakeLag) -> None:
    """The client's TTFT, inter-token and end-to-end latency beside the engine's histograms (means over the same
    requests), and where they part: the API server's own work, which its histograms leave out and a user waits
    for, measured by vLLM's timestamps; and the client's reading, late where the machine is busy."""
    from statistics import fmean, median

    from worker.engines.lateness import lateness

    done = [r for r in run.records if r.error is None]
    late = lateness(done, means)
    print(f"    the worker would store this run {'flagged client-late, no client latency' if late.late else 'on time'}"
          f" ({late.describe()})")
    print(f"    the engine's histograms counted {means.ttft_count:.0f} first tokens and {means.e2e_count:.0f} "
          f"requests over the run; the client sent {len(run.records)}, {len(done)} answered")
    ttft = fmean(r.ttft_s for r in done)
    per_token = sum(r.e2e_s - r.ttft_s for r in done) / sum((r.completion_tokens or 1) - 1 for r in done)
    gaps = [g for r in done for g in r.gaps_s()]
    e2e = fmean(r.e2e_s for r in done)
    # a closed loop sends the prompts in order, each request's record made as it is sent
    by_prompt = zip(run.records, (p.split()[0] for p in prompts), strict=True)
    joined = [(r, stamps[key]) for r, key in by_prompt if r.error is None and key in stamps]
    print(f"    TTFT             client {ms(ttft)}, engine's histogram {ms(means.ttft_s or 0)}: "
          f"{verdict(ttft, means.ttft_s)}")
    if joined:  # an identity per request: the client's TTFT is the sum of these spans, the engine's is one of them
        sending = fmean(s["recv"] - r.sent_at for r, s in joined)
        before = fmean(s["arrival"] - s["recv"] for _, s in joined)
        engine = fmean(s["iteration"] - s["arrival"] for _, s in joined)
        after = fmean(s["body_sent"] - s["iteration"] for _, s in joined)
        reading = [r.chunk_at[0] - s["body_sent"] for r, s in joined]
        print(f"      = request in transit {ms(sending)} (the client's stamp to uvicorn's read) + API server before "
              f"arrival_time {ms(before)} (HTTP, JSON body, "
              f"validation) + engine {ms(engine)} + API server after the first token's stamp {ms(after)} "
              f"(detokenize, JSON) + chunk in transit {ms(fmean(reading))} (median "
              f"{ms(median(reading))}: uvicorn's write to the client's read); {len(joined)} requests joined to "
              f"vLLM's timestamps")
        own = before + after
        print(f"      the API server's own work ({ms(own)}: {own / engine:.0%} of the engine's TTFT) is the "
              f"server's, which the user waits for and vLLM's histogram leaves out; the transit both ways "
              f"({ms(sending + fmean(reading))}) is where this machine keeps the client (and the server's reads) "
              f"waiting for a core")
        server = fmean(s["body_sent"] - s["recv"] for _, s in joined)
        print(f"      client vs the API server's whole span (request read to first chunk written, {ms(server)}): "
              f"{verdict(ttft, server)}")
    print(f"    ITL (per token)  client {ms(per_token)}, engine's histogram {ms(means.itl_s or 0)}: "
          f"{verdict(per_token, means.itl_s)}")
    chunk_mean = fmean(gaps) if gaps else 0.0
    print(f"    ITL (chunk gaps) client {ms(chunk_mean)} over {len(gaps)} gaps ({sum(g == 0 for g in gaps)} of "
          f"them 0: chunks read together), engine's histogram {ms(means.itl_s or 0)} over {means.itl_count:.0f}: "
          f"{verdict(chunk_mean, means.itl_s)}")
    print(f"    e2e              client {ms(e2e)}, engine's histogram {ms(means.e2e_s or 0)}: "
          f"{verdict(e2e, means.e2e_s)}")
    if joined:
        tail = fmean(r.done_at - s["last_iteration"] for r, s in joined)
        print(f"      the client's e2e adds the API server before arrival_time {ms(before)}, the request in transit "
              f"{ms(sending)}, and from the last token's stamp to reading the stream's end (last chunk, usage, "
              f"[DONE]) {ms(tail)}")
    print(f"    the client's machine: a process sleeping 2 ms at a time woke late by {lag.text()}")


def real_engine() -> None:
    from vllm_timestamps import read_stamps, timed_command

    from worker.engines.metrics import run_means
    from worker.engines.process import EngineProcess
    from worker.engines.served import model_location
    from worker.engines.steady import steady_part
    from worker.engines.vllm import ENGINE

    command = shlex.split(vllm_command())
    if not Path(command[0]).exists():
        print(f"real engine: skipped, no vLLM at {command[0]} (make vllm)")
        return
    stamps_path = Path(tempfile.mkdtemp(prefix="wattsweep-bench-")) / "stamps.jsonl"
    timed = timed_command(command)
    model = model_location("tiny:llama", "text-generation")[0]
    port = free_port()
    server = EngineProcess([*(timed or command), "--model", model, "--served-model-name", "wattsweep-model",
                            "--port", str(port), "--enforce-eager", "--disable-uvicorn-access-log"],
                           log_path=Path("/tmp/wattsweep-bench-vllm.log"),
                           env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "WATTSWEEP_TIMESTAMPS": str(stamps_path)})
    import httpx

    started = time.perf_counter()
    server.start()
    try:
        server.wait_healthy(lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200, 600)
        print(f"real engine: vLLM (CPU build) ready in {time.perf_counter() - started:.0f} s, tiny:llama, "
              f"160 requests of 24 tokens per load{'' if timed else ' (no timestamps: not the api_server module)'}")
        endpoint = ENGINE.endpoint({}, port=port)
        if "--client-rt" in sys.argv:  # after the engine started: it must not inherit the priority
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
                print("  the client (and its wake-up probe) at real-time priority: never kept waiting for a core")
            except PermissionError:
                print("  --client-rt: not permitted here (root or CAP_SYS_NICE); the client runs as usual")
        with tagged_requests():
            drive(endpoint, [f"w{i} {PROMPT}" for i in range(16)], max_tokens=24, concurrency=4)  # warm-up
            for concurrency in (1, 8):
                prompts = [f"c{concurrency}r{i} {PROMPT}" for i in range(160)]
                cpu = time.process_time()
                with WakeLag() as lag:
                    run = drive(endpoint, prompts, max_tokens=24, concurrency=concurrency)
                cpu = time.process_time() - cpu
                tokens = sum(r.completion_tokens or 0 for r in run.records)
                steady = steady_part(run, concurrency=concurrency, steady_min_s=1)
                share = (steady.duration_s or 0) / (run.ended_at - run.started_at)
                done = len([r for r in run.records if r.error is None])
                print(f"  concurrency {concurrency} (load average {os.getloadavg()[0]:.1f}): "
                      f"{tokens / (run.ended_at - run.started_at):,.0f} tokens/s, client "
                      f"{cpu / done * 1e3:.2f} ms CPU per request, {cpu / tokens * 1e6:.0f} us per token; steady "
                      f"share {share:.0%} {list(steady.flags)}")
                time.sleep(0.5)  # the last stream's stamps are written after its last chunk
                compare(run, prompts, run_means(run.metrics_before, run.metrics_after, endpoint.metrics),
                        read_stamps(str(stamps_path)), lag)
    finally:
        server.stop()


if __name__ == "__main__":
    if "--skip-minimal" not in sys.argv:
        minimal_endpoint()
    if "--skip-engine" not in sys.argv:
        real_engine()
