"""Write a synthetic per-run trace with the shape of the "Power Hungry Processing" study's CodeCarbon logs.

98 jobs, 2,380 runs, about 700 GPU-hours; text-to-image about 80% of it, one
SDXL-like job (3 datasets x 10 repetitions of 1,000 images) about 40%; the
longest run 9.4 h, the median run about 29 s. Columns: task, model, dataset,
repetition, duration_s (what bench/replay.py reads). Other seeds give other
traces of the same shape:

    python bench/make_trace.py --seed 7 --out /tmp/trace7.tsv

The study's tail is in its repetitions, not only in its jobs: runs of one
(model, dataset) differ (log-normal, sigma RUN_SIGMA) and one in twenty is
1.5 to 2.5 times slower than its siblings (a throttled or shared GPU, a cold
cache). Estimates are per (model, dataset), so such a run's units last up to
2.5 times what the scheduler expects: with 1,800 s units that alone kept 256
GPUs 12% past total work / GPUs, as the study's own durations did (17%).
`--smooth` leaves the repetitions alike (the trace before that: 1.01 at 256).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOTAL_H, SDXL_SHARE, T2I_SHARE = 700.0, 0.40, 0.80
LONGEST_RUN_S, MEDIAN_RUN_S = 9.4 * 3600, 29.0
SMALL_TASKS = {  # task -> (jobs, datasets per job): 93 jobs and 223 (job, dataset) pairs = 2,230 runs, which
    # with the 5 text-to-image jobs' 150 runs make the study's 2,380 (its first object-detection job has 3 sets)
    "text-classification": (12, 3), "token-classification": (8, 2), "question-answering": (13, 2),
    "fill-mask": (8, 2), "text-generation": (12, 2), "summarization": (12, 3), "image-classification": (8, 2),
    "object-detection": (8, 2), "image-to-text": (12, 3),
}
REPETITIONS = 10
RUN_SIGMA = 0.25  # spread of one cell's repetitions (log-normal)
SLOW_SHARE, SLOW_FACTOR = 0.05, (1.5, 2.5)  # one run in twenty is that much slower than its siblings


def make_trace(seed: int = 1, *, smooth: bool = False) -> list[tuple[str, str, str, int, float]]:
    rows = _cells(seed)
    return rows if smooth else _uneven_repetitions(rows, random.Random(seed + 1_000_003))


def _uneven_repetitions(rows, rng: random.Random) -> list[tuple[str, str, str, int, float]]:
    """Each run's own noise and the occasional slow one, then the total back to TOTAL_H (no run past the
    longest: the study's longest run is its longest)."""
    noisy = []
    for task, model, dataset, repetition, seconds in rows:
        factor = math.exp(rng.gauss(0.0, RUN_SIGMA))
        if rng.random() < SLOW_SHARE:
            factor *= rng.uniform(*SLOW_FACTOR)
        noisy.append((task, model, dataset, repetition, seconds * factor))
    target_s = sum(r[4] for r in rows)
    for _ in range(20):  # scale to the total, cap at the longest run, again: the capped runs gave some back
        scale = target_s / sum(r[4] for r in noisy)
        noisy = [(t, m, d, r, min(s * scale, LONGEST_RUN_S)) for t, m, d, r, s in noisy]
    return noisy


def _cells(seed: int) -> list[tuple[str, str, str, int, float]]:
    """Every run's duration by its cell: the study's jobs and totals, repetitions alike (within 1-2%)."""
    rng = random.Random(seed)
    rows = []
    # Text-to-image: the SDXL-like job, then four smaller diffusion jobs sharing the rest of the 80%.
    sdxl_s = TOTAL_H * 3600 * SDXL_SHARE
    factors = (0.97, 0.988, 1.0)  # per dataset; the third is the longest
    base = sdxl_s / (REPETITIONS * sum(factors))
    for d, factor in enumerate(factors):
        for r in range(REPETITIONS):
            noise = 1.0 if (d, r) == (2, 0) else 1 - rng.uniform(0, 0.01)  # one run is the longest, 9.4 h
            rows.append(("text-to-image", "hub:sim/sdxl-like", f"hf:prompts-{d}:test", r, base * factor * noise))
    scale = LONGEST_RUN_S / max(r[4] for r in rows)
    rows = [(t, m, d, r, s * scale) for t, m, d, r, s in rows]
    rest_t2i = TOTAL_H * 3600 * (T2I_SHARE - SDXL_SHARE)
    weights = [rng.uniform(0.5, 1.5) for _ in range(4)]
    for j, weight in enumerate(weights):
        job_s = rest_t2i * weight / sum(weights)
        for d in range(3):
            for r in range(REPETITIONS):
                rows.append(("text-to-image", f"hub:sim/diffusion-{j}", f"hf:prompts-{d}:test", r,
                             job_s / 30 * rng.uniform(0.95, 1.05)))
    # Everything else: per-job sizes from a log-normal, fitted to the median run and the remaining 20%.
    small = []
    for task, (n_jobs, n_datasets) in SMALL_TASKS.items():
        for j in range(n_jobs):
            z = rng.gauss(0, 1)
            extra = 1 if (task, j) == ("object-detection", 0) else 0
            dataset_factors = [rng.uniform(0.6, 1.6) for _ in range(n_datasets + extra)]
            for d, factor in enumerate(dataset_factors):
                for r in range(REPETITIONS):
                    small.append((task, f"hub:sim/{task}-{j}", f"hf:{task}-set-{d}:test", r, z, factor,
                                  rng.uniform(0.98, 1.02)))
    target_s = TOTAL_H * 3600 * (1 - T2I_SHARE)
    rank = len(rows) + len(small)  # the overall median falls among the small runs at this quantile
    quantile = (rank / 2 - 0) / len(small)

    def durations(mu: float, sigma: float) -> list[float]:
        return [math.exp(mu + sigma * z) * f * n for _, _, _, _, z, f, n in small]

    low, high = 0.1, 4.0  # sigma: the spread that makes the total right once the median is pinned
    for _ in range(60):
        sigma = (low + high) / 2
        trial = durations(0.0, sigma)
        mu = math.log(MEDIAN_RUN_S) - math.log(sorted(trial)[int(quantile * len(trial))])
        total = sum(durations(mu, sigma))
        low, high = (sigma, high) if total < target_s else (low, sigma)
    values = durations(mu, sigma)
    values = [min(v, LONGEST_RUN_S * 0.5) for v in values]
    rows += [(t, m, d, r, v) for (t, m, d, r, *_), v in zip(small, values, strict=True)]
    return rows


def describe(rows) -> str:
    jobs: dict[str, float] = {}
    for _, model, *_, seconds in rows:
        jobs[model] = jobs.get(model, 0.0) + seconds
    total = sum(r[4] for r in rows)
    median_s = statistics.median(r[4] for r in rows)
    return (f"{len(jobs)} jobs, {len(rows)} runs, {total / 3600:.0f} h, largest job {max(jobs.values()) / total:.0%}, "
            f"longest run {max(r[4] for r in rows) / 3600:.2f} h, median run {median_s:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "study_trace.tsv")
    parser.add_argument("--smooth", action="store_true", help="repetitions of a cell alike (the older shape)")
    args = parser.parse_args()
    rows = make_trace(args.seed, smooth=args.smooth)
    lines = ["task\tmodel\tdataset\trepetition\tduration_s"]
    lines += [f"{t}\t{m}\t{d}\t{r}\t{s:.1f}" for t, m, d, r, s in rows]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"{args.out}: {describe(rows)}")


if __name__ == "__main__":
    main()
