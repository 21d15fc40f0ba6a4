"""The sampler's line scan reads the gauges it asks for as prometheus_client's parser reads them, from text that
prometheus_client itself wrote (vLLM's metrics are written by the same library)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from worker.engines.metrics import gauges, parse


def test_the_gauge_scan_agrees_with_the_full_parse():
    registry = CollectorRegistry()
    running = Gauge("vllm:num_requests_running", "running", ["engine", "model_name"], registry=registry)
    waiting = Gauge("vllm:num_requests_waiting", "waiting", ["model_name"], registry=registry)
    by_reason = Gauge("vllm:num_requests_waiting_by_reason", "longer name, same prefix", ["reason"], registry=registry)
    Gauge("vllm:kv_cache_usage_perc", "no labels", registry=registry).set(0.375)
    Counter("vllm:num_preemptions", "a counter", registry=registry).inc(3)
    Histogram("vllm:e2e_request_latency_seconds", "a histogram", registry=registry).observe(0.2)
    running.labels("0", "a model {with} braces and spaces").set(5)
    running.labels("1", 'quoted "m"').set(2)
    waiting.labels("m").set(7)
    by_reason.labels("capacity").set(100)
    text = generate_latest(registry).decode()

    names = ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
             "vllm:gpu_cache_usage_perc")
    full = parse(text)
    assert gauges(text, names) == {name: full[name] for name in names if name in full} == {
        "vllm:num_requests_running": 7.0, "vllm:num_requests_waiting": 7.0, "vllm:kv_cache_usage_perc": 0.375}


def _vllm_like_histograms():
    """TTFT and e2e histograms as vLLM labels them (one series per engine and model), written by prometheus_client."""
    registry = CollectorRegistry()
    labels = ["engine", "model_name"]
    ttft = Histogram("vllm:time_to_first_token_seconds", "ttft", labels, registry=registry)
    e2e = Histogram("vllm:e2e_request_latency_seconds", "e2e", labels, registry=registry)
    return registry, ttft, e2e


def test_the_run_means_count_only_the_runs_requests():
    from worker.engines.metrics import run_means
    from worker.engines.vllm import ENGINE

    registry, ttft, e2e = _vllm_like_histograms()
    for _ in range(16):  # warm-up, before the run: slow first requests that must not count
        ttft.labels("0", "m").observe(5.0)
    before = parse(generate_latest(registry).decode())
    for seconds in (0.010, 0.020, 0.030):  # the run, over two engines' series
        ttft.labels("0", "m").observe(seconds)
        e2e.labels("0", "m").observe(seconds * 10)
    ttft.labels("1", "m").observe(0.040)
    e2e.labels("1", "m").observe(0.4)  # a series that did not exist before the run
    after = parse(generate_latest(registry).decode())

    means = run_means(before, after, ENGINE.metrics)
    assert means.ttft_count == 4 and means.e2e_count == 4
    assert abs(means.ttft_s - 0.025) < 1e-9 and abs(means.e2e_s - 0.25) < 1e-9
    assert means.itl_s is None and means.itl_count is None  # the engine wrote no ITL histogram


def test_a_restarted_engine_counts_from_zero_and_a_missing_scrape_gives_no_means():
    from worker.engines.metrics import run_means
    from worker.engines.vllm import ENGINE

    registry, ttft, _ = _vllm_like_histograms()
    for _ in range(10):
        ttft.labels("0", "m").observe(1.0)
    before = parse(generate_latest(registry).decode())
    registry, ttft, _ = _vllm_like_histograms()  # the engine restarted: its counters begin again at 0
    ttft.labels("0", "m").observe(0.5)
    after = parse(generate_latest(registry).decode())

    means = run_means(before, after, ENGINE.metrics)
    assert means.ttft_count == 1 and means.ttft_s == 0.5
    assert run_means({}, after, ENGINE.metrics).ttft_s is None  # not the engine's whole history
