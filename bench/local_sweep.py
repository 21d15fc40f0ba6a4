"""Local-sweep benchmarks (issue: a whole sweep on one machine). Prints figures; asserts nothing.

1. quickstart wall time and peak memory (targets: < 3 min, < 3 GB on 2 cores);
2. harness overhead: queries/s through wattsweep's measured loop (meter window, latency timed around
   each batch, token counting) vs a bare loop calling the same pipeline on the same queries
   (target: >= 97% of bare); for an encoder task and for generation (time to first token hooked);
3. `wattsweep --help` start-up time (target: < 1 s).
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.paired import compare  # noqa: E402


def quickstart() -> None:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        result = subprocess.run(
            ["/usr/bin/time", "-v", sys.executable, "-m", "scheduler", "run", str(ROOT / "examples/quickstart.yaml")],
            cwd=folder, capture_output=True, text=True,
        )
        wall_s = time.perf_counter() - start
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    print(f"quickstart: exit {result.returncode}, wall {wall_s:.1f} s, peak RSS {peak_kb / 2**20:.2f} GiB"
          " (targets < 180 s, < 3 GB)")


def harness_overhead(task: str = "text-classification", model: str = "tiny:bert", dataset: str = "builtin:reviews",
                     n_queries: int = 400, rounds: int = 16, bare_kwargs: dict | None = None,
                     params: dict | None = None) -> None:
    from worker.data.datasets import load_queries
    from worker.measure.meter import Meter
    from worker.workloads import get_workload

    workload = get_workload(task)
    params = {**workload.default_params, **(params or {})}
    pipeline = workload.load(model, "cpu", params)
    queries = load_queries(dataset, n_queries)
    meter = Meter(grid_intensity_g_per_kwh=100.0)
    with meter.window("warm-up"):  # CodeCarbon detects hardware on its first window
        workload.run(pipeline, queries[:20], 1, params)

    bare_kwargs = bare_kwargs or {}

    def bare() -> None:
        for query in queries:
            pipeline(query, **bare_kwargs)

    def measured() -> None:
        with meter.window("query"):
            workload.run(pipeline, queries, 1, params)

    result = compare(bare, measured, items=n_queries, rounds=rounds)
    meter.close()
    units = workload.run(pipeline, queries[:4], 1, params)
    timed = "latency timed" if units.timing and len(units.timing.batch_s) == 4 else "NO LATENCY TIMING"
    print(f"harness overhead ({task}, {model}, {n_queries} queries, {rounds} paired rounds, {timed}): wattsweep's "
          f"measured loop runs at {result.describe()} of the bare loop (target >= 97%)")


def help_startup(rounds: int = 5) -> None:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "scheduler", "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    print(f"`wattsweep --help`: median {statistics.median(times) * 1000:.0f} ms over {rounds} (target < 1 s)")


if __name__ == "__main__":
    help_startup()
    harness_overhead()
    # generation: the bare loop asks for the same fixed length; wattsweep's loop also hooks time to first token
    harness_overhead("text-generation", "tiny:gpt2", "builtin:prompts", n_queries=120, params={"max_new_tokens": 4},
                     bare_kwargs={"max_new_tokens": 4, "min_new_tokens": 4})
    quickstart()
