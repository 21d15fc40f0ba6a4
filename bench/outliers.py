"""Outlier flags on normal noise: the share of cells in which at least one run is flagged, old rule against new.

old: 3 MADs x 1.4826 from the median, from 3 runs on (before issue 9);
new: db.results.stats.outlier_flags (3.5 small-sample-corrected robust sigmas, from 5 runs on).

A cell is n runs drawn from one normal distribution (repetition noise, nothing wrong), so every flag is false.
Prints figures; asserts nothing. `python bench/outliers.py [cells]` (default 20,000 cells per n, a few seconds).
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from db.results.stats import outlier_flags  # noqa: E402


def old_flags(values: list[float]) -> list[bool]:
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values) * 1.4826
    return [len(values) >= 3 and mad > 0 and abs(v - median) > 3.0 * mad for v in values]


def main(cells: int = 20_000, time_limit_s: float = 120.0) -> None:
    rng = random.Random(9)
    started = time.monotonic()
    print(f"cells with at least one false flag, normal noise, {cells:,} cells per n")
    for n in (3, 5, 10, 30):
        old = new = 0
        done = 0
        for _ in range(cells):
            values = [rng.gauss(1.0, 0.05) for _ in range(n)]
            old += any(old_flags(values))
            new += any(outlier_flags(values))
            done += 1
            if time.monotonic() - started > time_limit_s:
                break
        print(f"  n = {n:2d}: old rule {100 * old / done:5.1f}%, new rule {100 * new / done:5.1f}% ({done:,} cells)")
    # One gross error (10 sigma) among otherwise normal runs: how often the new rule finds it.
    for n in (5, 10):
        found = 0
        for _ in range(2000):
            values = [rng.gauss(1.0, 0.05) for _ in range(n - 1)] + [1.5]
            found += outlier_flags(values)[-1]
        print(f"  n = {n:2d}, one run 10 sigma off: new rule flags it in {100 * found / 2000:.1f}% of cells")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
