"""Measurement-quality benchmarks. Prints figures; asserts nothing.

1. meter overhead: throughput of one workload inside a meter window vs the
   same calls in a bare loop, ABBA-paired round by round (bench/paired.py;
   target: metered >= 98% of bare), plus the fixed cost of one window
   (begin + end around nothing: CodeCarbon's readings, the device state);
2. repeatability: coefficient of variation of kWh per 1,000 queries over 5
   repetitions of a run of at least 10 s (target: < 5%).

`--simnode-workers 8` runs (1) in 8 processes at once on the simulated 8-GPU
node (tests/simnode: fake NVML and RAPL read by the real CodeCarbon), each
metering its own GPU as a pinned worker does (torch on the CPU, as workers
on the simulated node do), and prints each worker's figures and their median.

    python bench/measurement.py                       # one process, this host
    python bench/measurement.py --simnode-workers 8   # 8 pinned workers on the simulated node
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.paired import compare  # noqa: E402


def setup(task: str, model: str, dataset: str, n_queries: int):
    from worker.data.datasets import load_queries
    from worker.workloads import get_workload

    workload = get_workload(task)
    params = dict(workload.default_params)
    pipeline = workload.load(model, "cpu", params)
    queries = load_queries(dataset, n_queries)
    workload.run(pipeline, queries[:20], 1, params)  # warm-up
    return workload, pipeline, queries, params


def meter_overhead(workload, pipeline, queries, params, meter, rounds: int) -> dict:
    def bare() -> None:
        workload.run(pipeline, queries, 1, params)

    def metered() -> None:
        with meter.window("query"):
            workload.run(pipeline, queries, 1, params)

    result = compare(bare, metered, items=len(queries), rounds=rounds)
    costs, cpu_start = [], time.process_time()
    for _ in range(20):  # the fixed cost of a window: begin + end around nothing
        start = time.perf_counter()
        with meter.window("query"):
            pass
        costs.append(time.perf_counter() - start)
    window_cpu_ms = 1000 * (time.process_time() - cpu_start) / 20
    # The meter's CPU while a window is open (CodeCarbon's monitor thread, the host-energy sampler), whatever the
    # machine's load: the process's CPU time around a window whose body only sleeps.
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    with meter.window("query"):
        time.sleep(3.0)
    open_cpu_share = (time.process_time() - cpu_start) / (time.perf_counter() - wall_start)
    with meter.window("query") as window:
        workload.run(pipeline, queries, 1, params)
    return {"ratio": result.ratio, "q1": result.ratio_q1, "q3": result.ratio_q3, "bare_per_s": result.baseline_per_s,
            "metered_per_s": result.candidate_per_s, "window_cost_ms": 1000 * statistics.median(costs),
            "window_cpu_ms": window_cpu_ms, "open_cpu_pct": 100 * open_cpu_share,
            "window_s": window.reading.duration_s, "gpu_count": window.reading.gpu_count,
            "gpu_uuid": window.reading.gpu_uuid, "gpu_method": window.reading.gpu_method,
            "cpu_method": window.reading.cpu_method, "describe": result.describe()}


def repeatability(workload, pipeline, queries, params, meter, repetitions: int) -> None:
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


def make_meter(gpu: int | None):
    from worker.measure.meter import Meter

    meter = Meter(grid_intensity_g_per_kwh=100.0, gpu_ids=[gpu] if gpu is not None else [],
                  extra_flags=("simulated-gpu",) if gpu is not None else ())
    with meter.window("warm-up"):  # CodeCarbon's first task also counts its own set-up
        pass
    return meter


def child(args) -> None:
    """One pinned worker on the simulated node: its overhead figures as one JSON line."""
    workload, pipeline, queries, params = setup(args.task, args.model, args.dataset, args.queries)
    meter = make_meter(args.gpu)
    print("ready", flush=True)  # all workers measure at once: none is still loading while the others run
    while not Path(args.go).exists():
        time.sleep(0.05)
    try:
        print(json.dumps({"gpu": args.gpu, **meter_overhead(workload, pipeline, queries, params, meter,
                                                            rounds=args.rounds)}), flush=True)
    finally:
        meter.close()


def on_simnode(args) -> None:
    import tempfile

    from tests.simnode import SimNode

    ok, why = SimNode.available()
    if not ok:
        sys.exit(f"the simulated node cannot run here: {why}")
    with tempfile.TemporaryDirectory(prefix="wattsweep-bench-") as folder, \
            SimNode(Path(folder) / "node", gpus=args.simnode_workers) as node:
        env = node.env() | {"OMP_NUM_THREADS": "1", "WATTSWEEP_SIMULATED_GPU": "1"}
        go = Path(folder) / "go"
        processes = []
        for gpu in range(args.simnode_workers):
            argv = [sys.executable, __file__, "--child", "--gpu", str(gpu), "--task", args.task, "--model", args.model,
                    "--dataset", args.dataset, "--queries", str(args.queries), "--rounds", str(args.rounds),
                    "--go", str(go)]
            processes.append(subprocess.Popen(node.wrap(argv), env=env | {"CUDA_VISIBLE_DEVICES": str(gpu)},
                                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for process in processes:
            if process.stdout.readline().strip() != "ready":
                sys.exit(f"a worker failed to start: {process.communicate(timeout=60)[1][-2000:]}")
        started = time.monotonic()
        go.touch()
        results = []
        for process in processes:
            stdout, stderr = process.communicate(timeout=args.timeout_s)
            if process.returncode != 0:
                sys.exit(f"a worker failed: {stderr[-2000:]}")
            results.append(json.loads(stdout.strip().splitlines()[-1]))
        elapsed = time.monotonic() - started
    for r in sorted(results, key=lambda r: r["gpu"]):
        print(f"  gpu{r['gpu']}: metered {r['describe']}; window {r['window_s']:.2f} s, fixed cost "
              f"{r['window_cost_ms']:.1f} ms ({r['window_cpu_ms']:.1f} ms CPU), {r['open_cpu_pct']:.2f}% of a core "
              f"while open; gpu_count {r['gpu_count']} {r['gpu_uuid']} ({r['gpu_method']}, CPU "
              f"{r['cpu_method']})")
    ratios = [r["ratio"] for r in results]
    costs = [r["window_cost_ms"] for r in results]
    print(f"meter overhead, {len(results)} pinned workers at once on the simulated node: metered throughput is "
          f"{100 * statistics.median(ratios):.1f}% of the bare loop (median of the workers' ABBA medians; range "
          f"{100 * min(ratios):.1f}-{100 * max(ratios):.1f}%; target >= 98%); fixed cost of a window "
          f"{statistics.median(costs):.1f} ms median (range {min(costs):.1f}-{max(costs):.1f}); {args.rounds} rounds "
          f"of {args.queries} queries each, {elapsed:.0f} s of measuring")
    cpu_ms = [r["window_cpu_ms"] for r in results]
    open_pct = [r["open_cpu_pct"] for r in results]
    print(f"meter's own CPU (independent of the machine's load): {statistics.median(cpu_ms):.1f} ms per window "
          f"(begin + end; range {min(cpu_ms):.1f}-{max(cpu_ms):.1f}) and {statistics.median(open_pct):.2f}% of a core "
          f"while a window is open (range {min(open_pct):.2f}-{max(open_pct):.2f}%)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="text-classification")
    parser.add_argument("--model", default="tiny:bert")
    parser.add_argument("--dataset", default="builtin:reviews")
    parser.add_argument("--queries", type=int, default=None,
                        help="per run (default 6000, 400 per worker on the simulated node)")
    parser.add_argument("--rounds", type=int, default=None, help="ABBA rounds (default 16, 8 on the simulated node)")
    parser.add_argument("--simnode-workers", type=int, default=0, help="pinned workers on the simulated node")
    parser.add_argument("--timeout-s", type=float, default=900.0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--gpu", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--go", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
    elif args.simnode_workers:
        args.queries, args.rounds = args.queries or 400, args.rounds or 8
        on_simnode(args)
    else:
        args.queries, args.rounds = args.queries or 6000, args.rounds or 16
        workload, pipeline, queries, params = setup(args.task, args.model, args.dataset, args.queries)
        meter = make_meter(None)
        try:
            r = meter_overhead(workload, pipeline, queries[: args.queries // 4], params, meter, rounds=args.rounds)
            print(f"meter overhead: metered throughput is {r['describe']} of the bare loop ({args.rounds} paired "
                  f"rounds of {args.queries // 4} queries; target >= 98%); fixed cost of a window "
                  f"{r['window_cost_ms']:.1f} ms ({r['window_cpu_ms']:.1f} ms CPU), {r['open_cpu_pct']:.2f}% of a "
                  "core while a window is open")
            repeatability(workload, pipeline, queries, params, meter, repetitions=5)
        finally:
            meter.close()
