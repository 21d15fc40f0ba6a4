"""The steady part of a served run and its energy, on load series and meter readings written out by hand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from worker.engines.figures import serving_figures
from worker.engines.load import LoadRun, LoadSample, RequestRecord, arrival_offsets_s
from worker.engines.steady import Steady, steady_energy, steady_part
from worker.engines.vllm import ENGINE

T0 = 1_000_000.0


def run_with(loads, *, engine=None, full=1.0, drain=9.0) -> LoadRun:
    """Samples every second from T0: the client's in-flight counts, and the engine's running counts."""
    samples = [LoadSample(T0 + i, load, None if engine is None else engine[i], None if engine is None else 0.0)
               for i, load in enumerate(loads)]
    return LoadRun([], samples, T0, T0 + len(loads), full_at=T0 + full, drain_at=T0 + drain)


def test_closed_loop_steady_part_is_where_the_engine_holds_the_load():
    # the engine ramps up to 8 by t=3, holds until t=7, drains: its first and last holding samples bound the part
    run = run_with([8] * 10, engine=[0, 2, 5, 8, 8, 7, 8, 8, 4, 0])
    steady = steady_part(run, concurrency=8, steady_min_s=1)
    assert (steady.start, steady.end) == (T0 + 3, T0 + 7)
    assert steady.flags == ()


def test_engine_below_target_keeps_the_clients_span_and_says_so():
    # on 2 CPU cores vLLM's engine core idles while its API server is the bottleneck: gauges near 0
    run = run_with([8] * 10, engine=[0, 1, 0, 0, 2, 0, 0, 1, 0, 0])
    steady = steady_part(run, concurrency=8, steady_min_s=1)
    assert (steady.start, steady.end) == (T0 + 1, T0 + 9)
    assert steady.flags == ("engine-below-target",)


def test_no_steady_state_and_short_steady_part_are_flagged():
    never = run_with([1, 2, 1, 2, 1, 2, 1, 2, 1, 2])  # the client never got near 8 in flight
    assert steady_part(never, concurrency=8, steady_min_s=1).flags == ("no-steady-state",)
    empty = run_with([8] * 10, full=5.0, drain=5.0)
    assert steady_part(empty, concurrency=8, steady_min_s=1) == Steady(None, None, ("no-steady-state",))
    short = run_with([4] * 10)
    assert steady_part(short, concurrency=4, steady_min_s=30).flags == ("steady-short",)


def test_open_loop_steady_part_starts_where_the_load_reaches_its_median():
    run = run_with([0, 1, 2, 3, 3, 4, 3, 3, 2, 0], full=0.0, drain=8.0)
    steady = steady_part(run, concurrency=None, steady_min_s=1)
    assert (steady.start, steady.end) == (T0 + 3, T0 + 8)


def test_poisson_arrivals_have_the_asked_rate_and_repeat_with_the_seed():
    offsets = arrival_offsets_s(20_000, 50.0, seed=3)
    assert offsets == arrival_offsets_s(20_000, 50.0, seed=3)
    assert len(offsets) / offsets[-1] == pytest.approx(50.0, rel=0.03)


@dataclass(frozen=True)
class Reading:
    started_at: datetime
    duration_s: float
    cpu_energy_kwh: float
    gpu_energy_kwh: float
    ram_energy_kwh: float
    host_samples: dict | None
    pue: float = 1.0


def test_steady_energy_is_cut_from_the_host_series_and_the_gpu_counter():
    # 10 s window: CPU drew 10 J a second for 5 s, then 30 J a second; RAM 1 J a second; GPU counter 100 W
    t_s = [float(i) for i in range(1, 11)]
    cpu_j = [10.0] * 5 + [30.0] * 5
    reading = Reading(datetime.fromtimestamp(T0, UTC), 10.0, sum(cpu_j) / 3.6e6, 1000 / 3.6e6, 10 / 3.6e6,
                      {"t_s": t_s, "cpu_j": cpu_j, "ram_j": [1.0] * 10})
    gpu = [LoadSample(T0 + i, 1, gpu_energy_mj=int(i * 100_000)) for i in range(11)]
    energy = steady_energy(reading, Steady(T0 + 4.5, T0 + 8.5), gpu)
    assert energy.cpu_kwh * 3.6e6 == pytest.approx(0.5 * 10 + 3.5 * 30)
    assert energy.ram_kwh * 3.6e6 == pytest.approx(4.0)
    assert energy.gpu_kwh * 3.6e6 == pytest.approx(400.0)
    assert energy.flags == ()
    # without the series, the share of the window's time, and the flags say so
    bare = steady_energy(Reading(reading.started_at, 10.0, 1.0, 1.0, 1.0, None), Steady(T0 + 2, T0 + 7), [])
    assert (bare.cpu_kwh, bare.gpu_kwh) == (pytest.approx(0.5), pytest.approx(0.5))
    assert bare.flags == ("steady-prorated", "gpu-steady-prorated")


def test_tokens_and_requests_inside_the_steady_part_spread_over_each_requests_chunks():
    records = [RequestRecord(T0, chunk_at=[T0 + 1, T0 + 2, T0 + 3, T0 + 4], done_at=T0 + 4, prompt_tokens=5,
                             completion_tokens=8),
               RequestRecord(T0 + 3, chunk_at=[T0 + 5, T0 + 6], done_at=T0 + 6, prompt_tokens=3, completion_tokens=4),
               RequestRecord(T0 + 3, done_at=T0 + 3.5, error="HTTP 500: boom")]
    run = LoadRun(records, [], T0, T0 + 6)
    figures = serving_figures(run, Steady(T0 + 2.5, T0 + 5.5), None, endpoint=ENGINE.endpoint({}, port=1),
                              concurrency=2, request_rate=None)
    assert (figures["requests"], figures["failed_requests"]) == (2, 1)
    assert (figures["input_tokens"], figures["output_tokens"]) == (8, 12)
    assert figures["steady_output_tokens"] == pytest.approx(8 * 2 / 4 + 4 * 1 / 2)
    assert figures["steady_requests"] == pytest.approx(0.5 + 0.5)
    assert figures["ttft_p50_s"] == pytest.approx(1.5)  # 1 s and 2 s
    assert figures["e2e_p99_s"] == pytest.approx(3.0 + 0.99 * 1.0)
    assert figures["tpot_p50_s"] == pytest.approx(((4 - 1) / 7 + (3 - 2) / 3) / 2)
    assert figures["itl_p50_s"] == pytest.approx(1.0)
    assert len(figures["request_latencies"]) == 3
