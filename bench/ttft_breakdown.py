"""Where a request's time to first token goes between the client and vLLM (issue 20: why the client's TTFT and
vLLM's `vllm:time_to_first_token_seconds` differ). Prints figures; asserts nothing.

vLLM (CPU build, the tiny Llama) runs under bench/vllm_timestamps.py, which stamps each request in the API server:
when uvicorn read it, when its handler began, vLLM's arrival_time (the start of the engine's TTFT), the engine
core's queued / scheduled / first-token events, when the API server took the first token (the end of the engine's
TTFT) and when the first SSE chunk left the generator. The load is worker.engines.load.drive, our client as the
worker runs it, with a `request_id` in each body so the two sides can be joined; prompts of a few words and of
~400 words, at 1 and 8 in flight.

    python bench/ttft_breakdown.py [--pin] [--rt]

--pin: the client on core 0, vLLM on core 1 (2 cores); --rt (root only): the client at real-time priority.
"""

from __future__ import annotations

import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.serving import free_port, tagged_requests, vllm_command  # noqa: E402
from bench.vllm_timestamps import read_stamps, timed_command  # noqa: E402
from worker.engines import load  # noqa: E402

SEGMENTS = (  # (label, from, to): consecutive stamps; None is the client's side
    ("client sends -> uvicorn reads", "sent", "recv"),
    ("uvicorn -> ASGI task runs", "recv", "asgi"),
    ("ASGI -> handler (body, pydantic)", "asgi", "handler"),
    ("handler -> arrival_time", "handler", "arrival"),
    ("arrival -> to the core (tokenize)", "arrival", "added"),
    ("to the core -> queued (ZMQ)", "added", "queued"),
    ("queued -> scheduled", "queued", "scheduled"),
    ("scheduled -> first token (prefill)", "scheduled", "first_token"),
    ("first token -> API server has it", "first_token", "iteration"),
    ("API server -> chunk yielded", "iteration", "yielded"),
    ("chunk yielded -> written to socket", "yielded", "body_sent"),
    ("written -> client reads it", "body_sent", "first_chunk"),
)


def main() -> None:
    from worker.engines.metrics import run_means
    from worker.engines.process import EngineProcess
    from worker.engines.served import model_location
    from worker.engines.vllm import ENGINE

    pin = "--pin" in sys.argv
    timed = timed_command(shlex.split(vllm_command()))
    if timed is None:
        sys.exit("WATTSWEEP_VLLM_COMMAND must be `PYTHON -m vllm.entrypoints.openai.api_server` here")
    stamps_path = Path(tempfile.mkdtemp()) / "stamps.jsonl"
    model = model_location("tiny:llama", "text-generation")[0]
    port = free_port()
    command = [*timed, "--model", model, "--served-model-name", "wattsweep-model", "--port", str(port),
               "--enforce-eager", "--disable-uvicorn-access-log"]
    if pin:
        command = ["taskset", "-c", "1", *command]
        os.sched_setaffinity(0, {0})
    server = EngineProcess(command, log_path=Path("/tmp/wattsweep-ttft-breakdown.log"),
                           env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "WATTSWEEP_TIMESTAMPS": str(stamps_path)})
    import httpx

    server.start()
    try:
        with tagged_requests():
            server.wait_healthy(lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200, 600)
            endpoint = ENGINE.endpoint({}, port=port)
            if "--rt" in sys.argv:  # an experiment (root only), once vLLM started (it must not inherit it)
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
            load.drive(endpoint, [f"w{i} warm up" for i in range(16)], max_tokens=24, concurrency=4)
            print(f"vLLM under bench/vllm_timestamps.py, tiny:llama, 24 tokens per request, "
                  f"{'client on core 0, vLLM on core 1' if pin else 'unpinned'}"
                  f"{', the client at real-time priority' if '--rt' in sys.argv else ''}; load average "
                  f"{os.getloadavg()[0]:.1f}")
            words = "the quick brown fox jumps over the lazy dog ".split()
            for label, prompt_words in (("short prompt", 9), ("long prompt", 150)):
                for concurrency in (1, 8):
                    tag = f"{label[0]}{concurrency}"
                    prompts = [f"{tag}x{i} " + " ".join(words[(i + j) % 9] for j in range(prompt_words))
                               for i in range(96)]
                    run = load.drive(endpoint, prompts, max_tokens=24, concurrency=concurrency)
                    tokens = statistics.fmean(r.prompt_tokens or 0 for r in run.records)
                    report(f"{label} ({tokens:.0f} tokens), {concurrency} in flight; load average "
                           f"{os.getloadavg()[0]:.1f}", prompts, run, stamps_path,
                           run_means(run.metrics_before, run.metrics_after, endpoint.metrics), concurrency)
    finally:
        server.stop()


def report(title: str, prompts: list[str], run, stamps_path: Path, means, concurrency: int) -> None:
    time.sleep(0.2)  # the stamps of the last stream are written after its last chunk
    server = read_stamps(str(stamps_path))
    rows = []
    for prompt, record in zip(prompts, run.records, strict=True):
        stamps = server.get(prompt.split()[0])
        if stamps is None or record.error or not record.chunk_at:
            continue
        rows.append({**stamps, "sent": record.sent_at, "first_chunk": record.chunk_at[0], "done": record.done_at,
                     "client_ttft": record.ttft_s})
    print(f"\n{title}: {len(rows)} of {len(run.records)} requests joined; means in ms, [median]; "
          f"TCP_NODELAY on the server's sockets: {sorted({r.get('nodelay') for r in rows})}")
    if run.errors:
        print(f"  {len(run.errors)} failed: {run.errors[0]}")
    for label, start, end in SEGMENTS:
        values = [(r[end] - r[start]) * 1e3 for r in rows if r.get(start) and r.get(end)]
        print(f"  {label:36s} {statistics.fmean(values):8.2f}  [{statistics.median(values):7.2f}]")
    new = [(r["recv"] - r["sent"]) * 1e3 for r in rows[:concurrency]]
    print(f"  (client sends -> uvicorn reads: {statistics.fmean(new):.2f} ms on the run's first {concurrency} "
          f"requests, which open their connections)")
    client = statistics.fmean(r["client_ttft"] for r in rows) * 1e3
    engine = statistics.fmean(r["ttft"] for r in rows) * 1e3
    before = statistics.fmean(r["arrival"] - r["sent"] for r in rows) * 1e3
    after = statistics.fmean(r["first_chunk"] - r["iteration"] for r in rows) * 1e3
    print(f"  client TTFT {client:.2f} ms = before arrival_time {before:.2f} + engine TTFT {engine:.2f} "
          f"(its histogram over the run: {means.ttft_s * 1e3:.2f}) + after the engine's stamp {after:.2f}; "
          f"client / engine {client / engine - 1:+.0%}")
    last = [(r["done"] - r["chunks"][-1]) * 1e3 for r in rows if r.get("chunks")]
    print(f"  e2e: client {statistics.fmean((r['done'] - r['sent']) * 1e3 for r in rows):.2f} ms, engine's "
          f"histogram {means.e2e_s * 1e3:.2f} ms; last chunk yielded -> client done {statistics.fmean(last):.2f}")


if __name__ == "__main__":
    main()
