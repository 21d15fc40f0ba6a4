"""Measurement-quality benchmarks. Prints figures; asserts nothing.

1. meter overhead: throughput of one workload inside a meter window vs the
   same calls unmetered (target: metered >= 98% of unmetered);
2. repeatability: coefficient of variation of kWh per 1,000 queries over 5
   repetitions of a run of at least 10 s (target: < 5%).
"""

from __future__ import annotations

import argparse
import statistics
import time

from worker.datasets import load_queries
from worker.meter import Meter
from worker.workloads import get_workload


def setup(task: str, model: str, dataset: str, n_queries: int):
    workload = get_workload(task)
    params = dict(workload.default_params)
    pipeline = workload.load(model, "cpu", params)
    queries = load_queries(dataset, n_queries)
    workload.run(pipeline, queries[:20], 1, params)  # warm-up
    return workload, pipeline, queries, params


def meter_overhead(workload, pipeline, queries, params, meter: Meter, rounds: int) -> None:
    bare, metered = [], []
    for _ in range(rounds):  # interleaved, so drift affects both alike
        start = time.perf_counter()
        workload.run(pipeline, queries, 1, params)
        bare.append(len(queries) / (time.perf_counter() - start))
        start = time.perf_counter()
        with meter.window("query"):
            workload.run(pipeline, queries, 1, params)
        metered.append(len(queries) / (time.perf_counter() - start))
    b, m = statistics.median(bare), statistics.median(metered)
    print(f"meter overhead: unmetered {b:.1f} q/s, metered {m:.1f} q/s = {100 * m / b:.1f}% "
          f"(median of {rounds}, {len(queries)} queries each; target >= 98%)")


def repeatability(workload, pipeline, queries, params, meter: Meter, repetitions: int) -> None:
    per_1k, durations = [], []
    for _ in range(repetitions):
        with meter.window("query") as window:
            workload.run(pipeline, queries, 1, params)
        per_1k.append(window.reading.energy_kwh * 1000 / len(queries))
        durations.append(window.reading.duration_s)
    cv = statistics.stdev(per_1k) / statistics.mean(per_1k)
    print(f"repeatability: kWh/1k queries over {repetitions} runs of {statistics.mean(durations):.1f} s: "
          f"mean {statistics.mean(per_1k):.3e}, CV {100 * cv:.2f}% (target < 5%); "
          f"CPU method {window.reading.cpu_method}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="text-classification")
    parser.add_argument("--model", default="tiny:bert")
    parser.add_argument("--dataset", default="builtin:reviews")
    parser.add_argument("--queries", type=int, default=6000, help="per run; pick enough for >= 10 s runs")
    args = parser.parse_args()
    workload, pipeline, queries, params = setup(args.task, args.model, args.dataset, args.queries)
    meter = Meter(grid_intensity_g_per_kwh=100.0, measure_power_secs=1.0)
    with meter.window("warm-up"):  # CodeCarbon detects the hardware on its first window
        workload.run(pipeline, queries[:50], 1, params)
    try:
        meter_overhead(workload, pipeline, queries[: args.queries // 4], params, meter, rounds=5)
        repeatability(workload, pipeline, queries, params, meter, repetitions=5)
    finally:
        meter.close()
