"""Reading an engine's Prometheus metrics: its load gauges while a run is measured (a line scan for the few
names the sampler reads, 4 times a second), its latency histograms before and after (prometheus_client's own
text parser: 7 ms of CPU for vLLM's 600 lines, too much for every sample)."""

from __future__ import annotations

from dataclasses import dataclass

from worker.engines.base import MetricNames


def parse(text: str) -> dict[str, float]:
    """Sample name -> value summed over label sets (a histogram's `_sum` and `_count` included)."""
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_bucket") or sample.name.endswith("_created"):
                continue
            values[sample.name] = values.get(sample.name, 0.0) + float(sample.value)
    return values


def gauges(text: str, names: tuple[str, ...]) -> dict[str, float]:
    """`names`' samples summed over label sets, as `parse` gives them, from the lines that start with one.

    A sample line is `name{labels} value [timestamp]` or `name value [timestamp]`; the labels end at the line's
    last `}` (a value or timestamp has none). Comment lines start with `#`, so they never match."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith(names):
            continue
        brace = line.find("{")
        space = line.find(" ")
        end = brace if brace != -1 and (space == -1 or brace < space) else space
        name = line[:end]
        if name not in names:  # a longer name sharing the prefix (vllm:num_requests_waiting_by_reason)
            continue
        fields = line[line.rindex("}") + 1:].split() if brace == end else line[end:].split()
        values[name] = values.get(name, 0.0) + float(fields[0])
    return values


def first(values: dict[str, float], names: tuple[str, ...], suffix: str = "") -> float | None:
    for name in names:
        if name + suffix in values:
            return values[name + suffix]
    return None


def load_of(values: dict[str, float], names: MetricNames) -> tuple[float | None, float | None]:
    """(running, waiting) requests as the engine counts them; None where it does not say."""
    return (values.get(names.running) if names.running else None,
            values.get(names.waiting) if names.waiting else None)


@dataclass(frozen=True)
class HistogramMeans:
    """The engine's own mean TTFT, inter-token and end-to-end latency over a run (differences of sum / count), and
    how many observations each mean is over (requests for TTFT and e2e, token gaps for ITL)."""

    ttft_s: float | None
    itl_s: float | None
    e2e_s: float | None
    preemptions: float | None
    ttft_count: float | None = None
    itl_count: float | None = None
    e2e_count: float | None = None


def run_means(before: dict[str, float], after: dict[str, float], names: MetricNames) -> HistogramMeans:
    """The run's part of the engine's histograms: `after` minus `before` (the scrapes either side of the run), so
    that earlier requests (warm-up, other runs) count in neither the sums nor the counts. No `before` (its scrape
    failed): no means, rather than the engine's whole history."""
    def mean(histogram: tuple[str, ...]) -> tuple[float | None, float | None]:
        total = _delta(before, after, histogram, "_sum")
        count = _delta(before, after, histogram, "_count")
        return (total / count if total is not None and count else None), count

    preemptions = None
    if names.preemptions:
        preemptions = _delta(before, after, (names.preemptions,), "_total")
    (ttft, ttft_n), (itl, itl_n), (e2e, e2e_n) = mean(names.ttft), mean(names.itl), mean(names.e2e)
    return HistogramMeans(ttft, itl, e2e, preemptions, ttft_n, itl_n, e2e_n)


def _delta(before: dict[str, float], after: dict[str, float], names: tuple[str, ...], suffix: str) -> float | None:
    """How much a counter (or a histogram's _sum or _count) grew over the run. A sample absent before it is 0 there
    (an engine may create a labelled series at its first observation); one that went down was reset (the engine
    restarted), and grew from 0, as Prometheus' increase() reads it."""
    if not before:
        return None
    end = first(after, names, suffix)
    if end is None:
        return None
    start = first(before, names, suffix) or 0.0
    return end - start if end >= start else end
