"""The report's Python part alone, in process: build_report and each format's render of bench/report_commands.py's
kept sweeps, best of --repeat, CPU time, the cycle collector paused as `wattsweep report` runs it. What to watch
when making the rendering cheaper; report_commands.py times the whole command (start, SQL, output) beside it.

    python bench/report_commands.py --build    # once: the kept database
    python bench/report_render.py [--repeat 5] [--sweep scale-100k]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report_commands import BIG, SMALL, URL  # noqa: E402


def best_cpu_s(repeat: int, work, *args) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        work(*args)
        times.append(time.process_time() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=URL, help="a database holding the sweeps (default: the kept one)")
    parser.add_argument("--sweep", action="append", help=f"sweep name or id (default: {BIG} and {SMALL})")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each step; the best is printed")
    args = parser.parse_args()
    from db.queue.sweeps import find_sweep
    from db.session import session_factory
    from scheduler.report.data import ReportOptions, build_report, read_report
    from scheduler.report.render import render

    options = ReportOptions()
    print(f"load average {os.getloadavg()[0]:.2f}; CPU ms, best of {args.repeat}")
    for ref in args.sweep or [BIG, SMALL]:
        with session_factory(args.database_url)() as session:
            rows = read_report(session, find_sweep(session, ref=ref), options)
        gc.disable()
        try:
            data = build_report(rows, options)
            figures = {"build_report": best_cpu_s(args.repeat, build_report, rows, options)}
            for fmt in ("html", "json", "csv"):
                figures[fmt] = best_cpu_s(args.repeat, render, data, fmt)
        finally:
            gc.enable()
        print(f"{ref}: {len(rows.models):,} models, " + ", ".join(f"{k} {v * 1000:.1f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
