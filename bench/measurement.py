"""Measurement-quality benchmarks. Prints figures; asserts nothing.

1. meter overhead: throughput of one workload inside a meter window vs the
   same calls unmetered (target: metered >= 98% of unmetered);
2. repeatability: coefficient of variation of kWh per 1,000 queries over 5
   repetitions of a run of at least 10 s (target: < 5%).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.paired import compare  # noqa: E402
from worker.datasets import load_queries  # noqa: E402
from worker.meter import Meter  # noqa: E402
from worker.workloads import get_workload  # noqa: E402


def setup(task: str, model: str, dataset: str, n_queries: int):
    workload = get_workload(task)
    params = dict(workload.default_params)
    pipeline = workload.load(model, "cpu", params)
    queries = load_queries(dataset, n_queries)
    workload.run(pipeline, queries[:20], 1, params)  # warm-up
    return workload, pipeline, queries, params


def meter_overhead(workload, pipeline, queries, params, meter: Meter, rounds: int) -> None:
    def unmetered() -> None:
        workload.run(pipeline, queries, 1, params)

    def metered() -> None:
        with meter.window("query"):
            workload.run(pipeline, queries, 1, params)

    result = compare(unmetered, metered, items=len(queries), rounds=rounds)
    print(f"meter overhead: metered throughput is {result.describe()} of unmetered "
          f"({rounds} paired rounds of {len(queries)} queries; target >= 98%)")


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
        meter_overhead(workload, pipeline, queries[: args.queries // 4], params, meter, rounds=16)
        repeatability(workload, pipeline, queries, params, meter, repetitions=5)
    finally:
        meter.close()
