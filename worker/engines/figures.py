"""A served run's figures: requests and tokens (the engine's `usage`), latencies from the streamed chunks, and
energy per output token and per request from the steady part (worker.engines.steady).

Where the client read the chunks late (worker.engines.lateness: `client-late`), every latency it read (TTFT, ITL,
TPOT, end-to-end, their client means) is None: they hold its own lateness, not the server's. The engine's own
histogram means, the tokens and the energy figures stay; each request's raw timings stay in `request_latencies`
beside the flag.

Tokens inside the steady part: each request's completion tokens spread over its streamed chunks (an engine may
put several tokens in one chunk), counted where the chunk arrived. Requests inside it are request-equivalents:
each request counts by the share of its tokens that arrived there, so that kWh per request is the steady
energy over the work the steady part actually did, prefill included.
"""

from __future__ import annotations

import logging
from typing import Any

from worker.engines.lateness import FLAG, lateness
from worker.engines.metrics import run_means
from worker.engines.records import LoadRun
from worker.engines.steady import Steady, SteadyEnergy
from worker.workloads.base import percentile

log = logging.getLogger(__name__)
SAMPLES_KEPT = 2_000  # load samples stored per run (a longer series is thinned evenly)
CLIENT_LATENCIES = ("ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "itl_p50_s", "itl_p90_s", "itl_p99_s", "tpot_p50_s",
                    "e2e_p50_s", "e2e_p99_s", "client_ttft_mean_s", "client_itl_mean_s", "client_e2e_mean_s")


def serving_figures(run: LoadRun, steady: Steady, energy: SteadyEnergy | None, *, endpoint: Any,
                    concurrency: int | None, request_rate: float | None) -> dict[str, Any]:
    done = [r for r in run.records if r.error is None]
    ttft = [r.ttft_s for r in done if r.ttft_s is not None]
    gaps = [gap for r in done for gap in r.gaps_s()]
    e2e = [r.e2e_s for r in done if r.e2e_s is not None]
    tpot = [(r.e2e_s - r.ttft_s) / (r.completion_tokens - 1) for r in done
            if r.completion_tokens and r.completion_tokens > 1 and r.ttft_s is not None and r.e2e_s is not None]
    output_tokens = sum(r.completion_tokens or 0 for r in done)
    figures: dict[str, Any] = {
        "concurrency": concurrency, "request_rate": request_rate,
        "requests": len(done), "failed_requests": len(run.records) - len(done),
        "input_tokens": sum(r.prompt_tokens or 0 for r in done), "output_tokens": output_tokens,
        "ttft_p50_s": percentile(ttft, 0.5), "ttft_p90_s": percentile(ttft, 0.9), "ttft_p99_s": percentile(ttft, 0.99),
        "itl_p50_s": percentile(gaps, 0.5), "itl_p90_s": percentile(gaps, 0.9), "itl_p99_s": percentile(gaps, 0.99),
        "tpot_p50_s": percentile(tpot, 0.5), "e2e_p50_s": percentile(e2e, 0.5), "e2e_p99_s": percentile(e2e, 0.99),
        "client_ttft_mean_s": _mean(ttft), "client_itl_mean_s": _mean(gaps), "client_e2e_mean_s": _mean(e2e),
    }
    means = run_means(run.metrics_before, run.metrics_after, endpoint.metrics)
    late = lateness(done, means)
    if late.late:  # read times, not the server's: no figure (worker.engines.lateness)
        figures |= dict.fromkeys(CLIENT_LATENCIES)
        log.warning("%s: the load client read the streamed chunks late (%s); no latency figure is stored. Give it "
                    "a core of its own (README: Served models, client-late).", FLAG, late.describe())
    figures |= {"engine_ttft_mean_s": means.ttft_s, "engine_itl_mean_s": means.itl_s,
                "engine_e2e_mean_s": means.e2e_s, "preemptions": means.preemptions}
    kv = [s.kv_cache_usage for s in run.samples if s.kv_cache_usage is not None]
    figures["kv_cache_peak"] = max(kv) if kv else None
    steady_tokens, steady_requests = _inside(done, steady)
    duration = steady.duration_s
    figures |= {
        "engine_load_mean": steady.engine_load_mean,
        "steady_started_at": steady.start, "steady_ended_at": steady.end, "steady_duration_s": duration,
        "steady_output_tokens": steady_tokens, "steady_requests": steady_requests,
        "steady_energy_kwh": energy.energy_kwh if energy else None,
        "steady_cpu_energy_kwh": energy.cpu_kwh if energy else None,
        "steady_gpu_energy_kwh": energy.gpu_kwh if energy else None,
        "steady_ram_energy_kwh": energy.ram_kwh if energy else None,
        "kwh_per_output_token": energy.energy_kwh / steady_tokens if energy and steady_tokens else None,
        "kwh_per_request": energy.energy_kwh / steady_requests if energy and steady_requests else None,
        "throughput_output_tokens_per_s": (steady_tokens / duration if duration and steady_tokens is not None
                                           else _whole_throughput(run, output_tokens)),
        "flags": ",".join(dict.fromkeys([*steady.flags, *(energy.flags if energy else ()), *late.flags])) or None,
        "load_samples": _samples(run),
        "request_latencies": [{"sent_s": round(r.sent_at - run.started_at, 4),
                               "ttft_s": _round(r.ttft_s), "e2e_s": _round(r.e2e_s),
                               "output_tokens": r.completion_tokens, "error": r.error} for r in run.records],
    }
    return figures


def _inside(done: list, steady: Steady) -> tuple[float | None, float | None]:
    if steady.start is None:
        return None, None
    tokens = requests = 0.0
    for record in done:
        if not record.chunk_at or not record.completion_tokens:
            continue
        share = sum(steady.start <= at <= steady.end for at in record.chunk_at) / len(record.chunk_at)
        tokens += share * record.completion_tokens
        requests += share
    return tokens, requests


def _whole_throughput(run: LoadRun, tokens: int) -> float | None:
    span = run.ended_at - run.started_at
    return tokens / span if span > 0 else None


def _samples(run: LoadRun) -> dict[str, list]:
    step = max(1, -(-len(run.samples) // SAMPLES_KEPT))
    kept = run.samples[::step]
    return {"t_s": [round(s.at - run.started_at, 3) for s in kept], "in_flight": [s.in_flight for s in kept],
            "running": [s.running for s in kept], "waiting": [s.waiting for s in kept]}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 5)
