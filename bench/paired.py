"""Throughput of two ways of doing the same work, compared round by round.

On a shared VM the machine's speed drifts by tens of percent within a minute,
so medians of separate series compare different moments. Each round here runs
both, in alternating order (ABBA), and the figure is the median of the
per-round ratios, with its interquartile range to show the noise.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Paired:
    ratio: float  # candidate throughput / baseline throughput, median over rounds
    ratio_q1: float
    ratio_q3: float
    baseline_per_s: float  # median throughput, items per second
    candidate_per_s: float

    def describe(self) -> str:
        return (f"{100 * self.ratio:.1f}% (IQR {100 * self.ratio_q1:.1f}-{100 * self.ratio_q3:.1f}%; "
                f"medians {self.baseline_per_s:.1f} vs {self.candidate_per_s:.1f} per s)")


def compare(baseline: Callable[[], None], candidate: Callable[[], None], *, items: int, rounds: int) -> Paired:
    def per_s(work: Callable[[], None]) -> float:
        start = time.perf_counter()
        work()
        return items / (time.perf_counter() - start)

    base, cand = [], []
    for round_number in range(rounds):
        if round_number % 2:
            cand.append(per_s(candidate))
            base.append(per_s(baseline))
        else:
            base.append(per_s(baseline))
            cand.append(per_s(candidate))
    ratios = [c / b for b, c in zip(base, cand, strict=True)]
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return Paired(statistics.median(ratios), q1, q3, statistics.median(base), statistics.median(cand))
