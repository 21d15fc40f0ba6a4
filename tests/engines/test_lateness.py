"""The client-late rule (worker.engines.lateness) on chunk timelines: written out by hand for its edges, and
recorded from vLLM's CPU build on the loaded 2-core dev VM (tests/engines/data/chunk_timelines.json: the client at
normal priority, then at real-time priority, where no other process keeps it waiting for a core)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.engines.figures import CLIENT_LATENCIES, serving_figures
from worker.engines.lateness import FLAG, lateness
from worker.engines.load import LoadRun, RequestRecord
from worker.engines.metrics import HistogramMeans
from worker.engines.steady import Steady, SteadyEnergy
from worker.engines.vllm import ENGINE

T0 = 1_000_000.0
STEP_S = 0.0025  # vLLM's inter-token interval on the dev VM
RECORDED = json.loads((Path(__file__).parent / "data" / "chunk_timelines.json").read_text())


def request(offsets_s: list[float], sent: float = T0) -> RequestRecord:
    return RequestRecord(sent, chunk_at=[sent + s for s in offsets_s], done_at=sent + offsets_s[-1],
                         prompt_tokens=4, completion_tokens=len(offsets_s))


def on_time(tokens: int = 24, ttft_s: float = 0.008) -> list[float]:
    return [ttft_s + i * STEP_S for i in range(tokens)]


def engine(itl_s: float | None) -> HistogramMeans:
    return HistogramMeans(0.006, itl_s, 0.07, 0.0)


def test_a_client_that_reads_each_chunk_in_its_own_wake_up_is_not_late():
    records = [request(on_time(), T0 + i) for i in range(10)]
    late = lateness(records, engine(STEP_S))
    assert (late.same_read_gaps, late.gaps) == (0, 10 * 22)
    assert late.client_itl_mean_s == pytest.approx(STEP_S)
    assert late.flags == ()


def test_chunks_read_together_are_late_and_one_percent_of_the_gaps_is_enough():
    # at 1 in flight on the loaded VM: the whole answer in one read, 60 ms after vLLM wrote its first chunk
    assert lateness([request([0.07] * 24)], None).flags == (FLAG,)
    # 101 gaps, the last one left out: 1 of 100 read in one wake-up is 1%, the rule's bound
    chunks = on_time(102)
    chunks[50] = chunks[49]
    assert lateness([request(chunks)], None).flags == (FLAG,)
    one_in_two_hundred = [request(chunks), request(on_time(102), T0 + 1)]
    assert lateness(one_in_two_hundred, None).same_read_share == pytest.approx(0.005)
    assert lateness(one_in_two_hundred, None).flags == ()


def test_a_finish_chunk_written_right_after_the_last_token_is_not_lateness():
    records = [request([*on_time(24), on_time(24)[-1]], T0 + i) for i in range(10)]  # each request's last gap 0
    assert lateness(records, engine(STEP_S)).flags == ()


def test_reads_compressed_over_separate_wake_ups_are_late_by_the_engines_own_inter_token_mean():
    # the late reads split over wake-ups a few microseconds apart: no gap is 0, and the client's mean gap is far
    # below the engine's own (its first chunk was read much later than vLLM wrote it)
    records = [request([0.07 + i * 5e-6 for i in range(24)], T0 + i) for i in range(10)]
    assert lateness(records, None).flags == ()  # without the engine's histogram, rule 1 alone cannot tell
    assert lateness(records, engine(STEP_S)).flags == (FLAG,)
    # within the 10% of the engine's mean: on time (the API server's own jitter)
    assert lateness([request(on_time(), T0 + i) for i in range(10)], engine(STEP_S * 1.1)).flags == ()


def test_chunks_of_several_tokens_make_the_clients_mean_larger_never_late():
    records = [request([0.008 + i * 4 * STEP_S for i in range(6)], T0 + i) for i in range(10)]  # 4 tokens a chunk
    assert lateness(records, engine(STEP_S)).flags == ()


def test_failed_requests_and_single_chunks_count_no_gap():
    failed = request([0.07] * 24)
    failed.error = "HTTP 500: boom"
    late = lateness([failed, request([0.01])], engine(STEP_S))
    assert (late.gaps, late.client_itl_mean_s, late.flags) == (0, None, ())


def figures_of(records: list[RequestRecord], itl_s: float | None) -> dict:
    before = {"vllm:inter_token_latency_seconds_sum": 0.0, "vllm:inter_token_latency_seconds_count": 0.0}
    gaps = sum(len(r.chunk_at) - 1 for r in records)
    after = {"vllm:inter_token_latency_seconds_sum": (itl_s or 0) * gaps,
             "vllm:inter_token_latency_seconds_count": float(gaps)} if itl_s else {}
    run = LoadRun(records, [], T0, T0 + 20, metrics_before=before, metrics_after=after)
    energy = SteadyEnergy(energy_kwh=1e-5, cpu_kwh=8e-6, gpu_kwh=1e-6, ram_kwh=1e-6)
    return serving_figures(run, Steady(T0, T0 + 20), energy, endpoint=ENGINE.endpoint({}, port=1), concurrency=1,
                           request_rate=None)


def test_a_late_run_stores_no_latency_of_the_clients_and_keeps_its_energy_and_the_engines_own():
    late = figures_of([request([0.07] * 24, T0 + i) for i in range(10)], STEP_S)
    assert FLAG in late["flags"].split(",")
    assert all(late[name] is None for name in CLIENT_LATENCIES)  # no 0 ITL, no TTFT that is the client's wait
    assert late["engine_itl_mean_s"] == pytest.approx(STEP_S)
    assert late["kwh_per_output_token"] == pytest.approx(1e-5 / 240)  # the meter is not the client: it stays
    assert late["output_tokens"] == 240 and late["throughput_output_tokens_per_s"] > 0
    assert [r["ttft_s"] for r in late["request_latencies"]] == [0.07] * 10  # the raw reads, beside the flag
    timely = figures_of([request(on_time(), T0 + i) for i in range(10)], STEP_S)
    assert FLAG not in (timely["flags"] or "")
    assert timely["itl_p50_s"] == pytest.approx(STEP_S) and timely["ttft_p50_s"] == pytest.approx(0.008)
    assert all(timely[name] is not None for name in CLIENT_LATENCIES)


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_recorded_vllm_timelines_are_late_at_normal_priority_and_on_time_at_real_time_priority(name):
    recorded = RECORDED[name]
    records = [request(r["chunk_s"], T0 + i) for i, r in enumerate(recorded["requests"])]
    late = lateness(records, engine(recorded["engine_itl_mean_s"]))
    assert late.late == name.startswith("normal"), late.describe()
