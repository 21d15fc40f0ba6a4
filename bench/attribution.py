"""Attribution benchmarks (issue 9). Prints figures; asserts nothing.

1. store: the cost of storing a window (record_run + commit: the host's lock, attribution, headline and outlier
   flags included) with 8 co-located workers storing theirs, in Postgres: median and p95 ms. Paced: each
   worker stores a window every --pace-s, the 8 offset by 1/8 of it (as windows end on a node); burst: all
   as fast as they can (each waits on the host's lock for the 7 others). With the host samples a window of
   --window-s carries (one every 0.5 s), and without samples (one interval, as rows before them);
2. error: the attribution error against the simulated node's host profile: 8 processes on the node each
   open and close real meter windows (real CodeCarbon reading the fake RAPL) on a random schedule, while the
   host's CPU power follows the number of open windows (40 W + 30 W per open window, per socket: power moves
   exactly when k does, the hard case); prints sum(attributed) against what the profile drew while any
   window was open, beside the old rule (a window's total x its time-average of 1/k) and the plain sum.

Usage: python bench/attribution.py [store] [error] [--window-s 10] [--windows 40] [--seconds 30] [--seed 1]
Needs Postgres on 127.0.0.1:5432 (store) and root with unshare (error, the simulated node).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

POSTGRES_ADMIN_URL = os.environ.get("WATTSWEEP_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
WORKERS = 8
T0 = datetime(2026, 1, 1, tzinfo=UTC)


# -- 1. store ----------------------------------------------------------------------------------------------------

def _samples(window_s: float, step_s: float = 0.5) -> dict:
    n = max(1, round(window_s / step_s))
    return {"t_s": [round((i + 1) * window_s / n, 4) for i in range(n)], "cpu_j": [61.234] * n,
            "ram_j": [4.567] * n}


def _store_worker(url: str, worker: int, run_ids: list[int], window_s: float, with_samples: bool, pace_s: float,
                  go, out) -> None:
    from db.results.store import record_run
    from db.session import session_factory
    from tests.factories import make_reading
    from worker.workloads.base import WorkDone

    sessions = session_factory(url)
    samples = _samples(window_s) if with_samples else None
    n = len(samples["t_s"]) if samples else 1
    times = []
    go.wait()
    first = time.monotonic() + worker * pace_s / WORKERS
    for i, run_id in enumerate(run_ids):
        time.sleep(max(0.0, first + i * pace_s - time.monotonic()))
        started = T0 + timedelta(seconds=i * window_s + worker * window_s / WORKERS)  # 8 overlapping at a time
        reading = make_reading(2e-4, duration_s=window_s, started_at=started, cpu_energy_kwh=61.234 * n / 3.6e6,
                               ram_energy_kwh=4.567 * n / 3.6e6, host_samples=samples)
        begin = time.perf_counter()
        with sessions.begin() as session:
            record_run(session, run_id=run_id, worker_id=f"gpu{worker}@bench", reading=reading,
                       units=WorkDone(queries=100))
        times.append((time.perf_counter() - begin) * 1000)
    out.put(times)


def bench_store(window_s: float, windows: int, pace_s: float) -> None:
    from sqlalchemy import select

    from db.models import Job, Run, Worker
    from db.queue.sweeps import NewJob, insert_sweep
    from db.session import session_factory
    from tests.scratch_db import scratch_database

    for with_samples, pace in ((True, pace_s), (True, 0.0), (False, pace_s)):
        with scratch_database(POSTGRES_ADMIN_URL, "wattsweep_bench") as url:
            sessions = session_factory(url)
            runs = [dict(dataset="builtin:texts", repetition=r, n_queries=100, batch_size=1, warmup=0)
                    for r in range(windows)]
            with sessions.begin() as session:
                for worker in range(WORKERS):
                    session.add(Worker(id=f"gpu{worker}@bench", hostname=f"ctr{worker}", host_id="boot:bench",
                                       device=f"cuda:{worker}", hardware_class="bench", inventory={}))
                insert_sweep(session, name="bench", spec={}, hardware_class="bench", mode="distributed",
                             carbon=dict(country_iso_code=None, region=None, grid_intensity_g_per_kwh=100.0),
                             jobs=[NewJob("fill-mask", f"tiny:bert#{w}", "bench", {}, runs) for w in range(WORKERS)])
            with sessions() as session:
                jobs = session.scalars(select(Job.id).order_by(Job.id)).all()
                run_ids = [session.scalars(select(Run.id).where(Run.job_id == job).order_by(Run.id)).all()
                           for job in jobs]
            context = multiprocessing.get_context("spawn")
            go, out = context.Event(), context.Queue()
            processes = [context.Process(target=_store_worker, args=(url, w, run_ids[w], window_s, with_samples,
                                                                      pace, go, out)) for w in range(WORKERS)]
            for process in processes:
                process.start()
            time.sleep(3.0)  # imports done
            go.set()
            times = [t for _ in processes for t in out.get(timeout=600)]
            for process in processes:
                process.join(60)
        times.sort()
        p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
        what = f"{len(_samples(window_s)['t_s'])} host samples each" if with_samples else "no samples"
        how = f"paced, one per worker every {pace:g} s" if pace else "burst"
        print(f"store: {len(times)} windows of {window_s:g} s ({what}), {WORKERS} co-located workers ({how}), "
              f"up to {WORKERS} overlapping: median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms")


# -- 2. error -------------------------------------------------------------------------------------------------------

METER = r"""
import json, os, sys, time
from worker.measure.meter import Meter

go, plan = sys.argv[1], json.loads(sys.argv[2])
meter = Meter(grid_intensity_g_per_kwh=100.0, gpu_ids=[])
with meter.window("warm-up"):
    time.sleep(0.1)
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.01)
t0 = float(open(go).read())
out = []
for start, end in plan:
    time.sleep(max(0.0, t0 + start - time.time()))
    meter.begin_window("query")
    time.sleep(max(0.0, t0 + end - time.time()))
    r = meter.end_window("query")
    out.append({"t0": r.started_at.timestamp(), "t1": r.ended_at.timestamp(), "cpu_kwh": r.cpu_energy_kwh,
                "ram_kwh": r.ram_energy_kwh, "samples": r.host_samples, "flags": r.flags})
print(json.dumps(out), flush=True)
"""


def plan_windows(seconds: float, rng: random.Random) -> list[list[tuple[float, float]]]:
    """Per worker: back-to-back windows of 1-8 s with 0-3 s gaps, within [0, seconds]."""
    plans = []
    for _ in range(WORKERS):
        t, plan = rng.uniform(0, 3), []
        while True:
            length = rng.uniform(1, 8)
            if t + length > seconds:
                break
            plan.append((round(t, 3), round(t + length, 3)))
            t += length + rng.uniform(0, 3)
        plans.append(plan)
    return plans


def bench_error(seconds: float, seed: int) -> None:
    from db.results.attribution import Concurrency, share
    from tests.simnode import SimNode

    ok, why = SimNode.available()
    if not ok:
        print(f"error: skipped ({why})")
        return
    plans = plan_windows(seconds, random.Random(seed))
    with tempfile.TemporaryDirectory() as folder, SimNode(Path(folder) / "node", gpus=0,
                                                          package_w=[40.0, 40.0]) as node:
        go = Path(folder) / "go"
        env = node.env() | {"OMP_NUM_THREADS": "1"}
        processes = [subprocess.Popen(node.wrap([sys.executable, "-c", METER, str(go), json.dumps(plan)]), env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
                     for plan in plans]
        for process in processes:
            assert process.stdout.readline().strip() == "ready", process.stderr.read()[-3000:]
        t0 = time.time() + 1.0
        planned = Concurrency([(t0 + s, t0 + e) for plan in plans for s, e in plan])
        for at, k in zip(planned.points, planned.k, strict=True):  # 40 W + 30 W per open window, per socket
            node.set_power(at=at, package_w=[40.0 + 30.0 * k] * 2)
        go.write_text(repr(t0))
        results = []
        for process in processes:
            stdout, stderr = process.communicate(timeout=seconds + 120)
            assert process.returncode == 0, stderr[-3000:]
            results.extend(json.loads(stdout.strip().splitlines()[-1]))
        union = []
        for w in sorted(results, key=lambda w: w["t0"]):
            if union and w["t0"] <= union[-1][1]:
                union[-1][1] = max(union[-1][1], w["t1"])
            else:
                union.append([w["t0"], w["t1"]])
        cpu_truth_j = sum(node.host_energy_j(a, b) for a, b in union)
    ram_w = results[0]["ram_kwh"] * 3.6e6 / (results[0]["t1"] - results[0]["t0"])
    truth_j = cpu_truth_j + ram_w * sum(b - a for a, b in union)
    origin = min(w["t0"] for w in results)  # seconds from here, as db.results.attribution does
    concurrency = Concurrency([(w["t0"] - origin, w["t1"] - origin) for w in results])
    new_j = old_j = plain_j = 0.0
    for w in results:
        samples = w["samples"]
        series = [(t, c / 3.6e6, r / 3.6e6) for t, c, r in zip(samples["t_s"], samples["cpu_j"], samples["ram_j"],
                                                                 strict=True)]
        series[-1] = (w["t1"] - w["t0"], *series[-1][1:])
        attributed = share(w["t0"] - origin, series, concurrency, totals=(w["cpu_kwh"], w["ram_kwh"]))
        new_j += (attributed.cpu_kwh + attributed.ram_kwh) * 3.6e6
        old_j += (w["cpu_kwh"] + w["ram_kwh"]) * 3.6e6 * concurrency.mean_inverse(w["t0"] - origin, w["t1"] - origin)
        plain_j += (w["cpu_kwh"] + w["ram_kwh"]) * 3.6e6
    gaps = sum("cpu-sample-gap" in (w["flags"] or "") for w in results)
    print(f"error: {len(results)} windows of {WORKERS} workers over {seconds:g} s (seed {seed}), up to "
          f"{max(concurrency.k)} open at once, host CPU power 40 W + 30 W per open window per socket")
    print(f"  host CPU+RAM drawn while any window was open (profile): {truth_j / 1000:.3f} kJ")
    for name, value in (("sum(dE/k) over samples (now)", new_j), ("total x mean(1/k) (before)", old_j),
                        ("plain sum of node-wide readings", plain_j)):
        print(f"  {name:34s} {value / 1000:8.3f} kJ  error {100 * (value - truth_j) / truth_j:+7.2f}%")
    print(f"  windows flagged cpu-sample-gap: {gaps}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("parts", nargs="*", default=["store", "error"])
    parser.add_argument("--window-s", type=float, default=10.0)
    parser.add_argument("--windows", type=int, default=40, help="per worker, store part")
    parser.add_argument("--pace-s", type=float, default=1.0, help="store part: seconds between a worker's stores")
    parser.add_argument("--seconds", type=float, default=30.0, help="schedule length, error part")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if "store" in args.parts:
        bench_store(args.window_s, args.windows, args.pace_s)
    if "error" in args.parts:
        bench_error(args.seconds, args.seed)


if __name__ == "__main__":
    main()
