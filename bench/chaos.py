"""Chaos run (issue 11): a sweep of at least 200 units on 4 real `wattsweep worker` processes while a seeded
schedule SIGKILLs workers, SIGSTOPs one, restarts Redis and Postgres and offsets a worker's clock.

Runs on a private Postgres and Redis of its own (tests/services.py; the shared ones are never touched). The
harness is tests/chaos/harness.py; tests/chaos runs a short form of it. The last line reads
`units=N faults=N lost=N duplicated=N wall_s=N` (targets: lost=0, duplicated=0; wall_s from submit to the last
job finished, the workers' start-up before it is printed above); exit status 1 when a unit is
lost or duplicated, a job is left unfinished or failed without a reason, or the sweep misses the deadline.

Usage: python bench/chaos.py [--seed N] [--faults N] [--models N] [--repetitions N] [--shards N]
[--unit-queries N] [--deadline S] [--keep FOLDER]
(units = models x repetitions x shards; default 10 x 5 x 4 = 200).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    from tests.chaos.harness import ChaosConfig, run_chaos

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1, help="picks the fault schedule")
    parser.add_argument("--faults", type=int, default=10, help="how many faults (at least one of each kind: 5)")
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--shards", type=int, default=4, help="units per run")
    parser.add_argument("--unit-queries", type=int, default=ChaosConfig.shard_queries, help="queries per unit")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds before the run is called unfinished")
    parser.add_argument("--keep", type=Path, default=None, help="keep the logs in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wattsweep-chaos-") as scratch:
        config = ChaosConfig(seed=args.seed, folder=args.keep or Path(scratch), models=args.models,
                             repetitions=args.repetitions, shards_per_run=args.shards,
                             shard_queries=args.unit_queries, workers=args.workers,
                             faults=max(5, args.faults), deadline_s=args.deadline,
                             log=lambda line: print(line, flush=True))
        result = run_chaos(config)
    print(result.line(), flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
