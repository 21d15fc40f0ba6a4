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
