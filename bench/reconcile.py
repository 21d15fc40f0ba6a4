"""Reconcile's cost per pass at a long queue (issue 11, defect 8). Prints figures; asserts nothing.

N jobs (default 100,000) wait in Postgres and their N messages in Redis, all sent long ago, as in a sweep
whose workers are busy elsewhere. One pass of `reconcile` is measured three ways:

  counts    nothing lost: the database's count per queue against LLEN (what every pass does now);
  scan      the same state read message by message (what every pass did before: LRANGE of every message);
  lost      one message lost: the counts disagree, so the queue is scanned and the lost job sent again.

Bytes are what Redis sent to reconcile (INFO's total_net_output_bytes before and after the pass, less the
INFO reply itself), time is the pass's wall time (database included). A private Postgres and a private
redis-server (tests/services.py) keep the figures free of other users; both are stopped afterwards.

Usage: python bench/reconcile.py [--jobs N] [--passes K]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUEUE = "bench-reconcile"
CARBON = dict(country_iso_code=None, region=None, grid_intensity_g_per_kwh=100.0)


def output_bytes(client) -> int:
    return int(client.info("stats")["total_net_output_bytes"])


def measure(client, work) -> tuple[int, float, object]:
    """(bytes Redis sent during `work`, seconds, its result); the INFO calls' own replies are taken out."""
    a = output_bytes(client)
    b = output_bytes(client)  # the size of one INFO reply, as seen between two readings
    info_reply = b - a
    started = time.perf_counter()
    result = work()
    elapsed = time.perf_counter() - started
    return output_bytes(client) - b - info_reply, elapsed, result


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args(argv)

    import redis
    from sqlalchemy import text

    from db.queue.reconcile import mark_dispatched, sweep_dispatches
    from db.queue.sweeps import NewJob, insert_sweep
    from db.session import get_engine, session_factory
    from scheduler.dispatch import reconcile_once
    from tests.scratch_db import scratch_database
    from tests.services import PrivatePostgres, PrivateRedis
    from worker.contract.celery_app import make_app, send_job_ids

    with PrivatePostgres() as pg, PrivateRedis() as broker, scratch_database(pg.admin_url, "bench") as url:
        sessions, app = session_factory(url), make_app(broker.url(0))
        client = redis.Redis.from_url(broker.url(0))
        started = time.perf_counter()
        run = dict(dataset="builtin:texts", repetition=0, n_queries=10, batch_size=1, warmup=0, expected_s=1.0)
        with sessions.begin() as session:
            sweep = insert_sweep(session, name="bench", spec={}, hardware_class=QUEUE, mode="distributed",
                                 carbon=CARBON, jobs=[NewJob("fill-mask", f"hub:org/m{i}", QUEUE, {}, [run],
                                                             expected_s=1.0) for i in range(args.jobs)])
            dispatches = sweep_dispatches(session, sweep_id=sweep.id)
            mark_dispatched(session, sweep_id=sweep.id)
        send_job_ids(app, dispatches)
        with sessions.begin() as session:  # sent an hour ago: every job is a candidate, past the grace period
            session.execute(text("UPDATE jobs SET dispatched_at = now() - interval '1 hour'"))
            session.execute(text("ANALYZE"))
        waiting = client.llen(QUEUE)
        message_bytes = client.memory_usage(QUEUE)
        print(f"setup: {args.jobs} jobs stored and {waiting} messages in Redis ({message_bytes / 1e6:.0f} MB in its "
              f"list) in {time.perf_counter() - started:.0f} s", flush=True)

        def one_pass(scan: bool):
            return reconcile_once(sessions, app=app, redis=client, lease_timeout_s=120, grace_s=60, scan=scan)

        figures = {}
        for mode in ("counts", "scan"):
            one_pass(mode == "scan")  # warm the caches and connections
            samples = [measure(client, lambda mode=mode: one_pass(mode == "scan")) for _ in range(args.passes)]
            assert all(result.resent == 0 for _, _, result in samples)
            figures[mode] = (statistics.median(b for b, _, _ in samples), statistics.median(s for _, s, _ in samples),
                             samples[-1][2])
        client.rpop(QUEUE)  # one message lost
        lost_bytes, lost_s, lost = measure(client, lambda: one_pass(False))
        get_engine(url).dispose()
        client.close()

    for mode, (nbytes, seconds, result) in figures.items():
        print(f"{mode}: {nbytes:,.0f} bytes from Redis per pass, {seconds * 1000:.0f} ms per pass "
              f"({result.checked} candidates, queues scanned: {result.scanned or 'none'})")
    print(f"lost: {lost_bytes:,} bytes, {lost_s * 1000:.0f} ms; {lost.resent} job sent again, "
          f"queues scanned: {lost.scanned}")
    counts_bytes, counts_s, _ = figures["counts"]
    scan_bytes, scan_s, _ = figures["scan"]
    print(f"waiting={waiting} counts_bytes_per_pass={counts_bytes:.0f} counts_ms_per_pass={counts_s * 1000:.0f} "
          f"scan_bytes_per_pass={scan_bytes:.0f} scan_ms_per_pass={scan_s * 1000:.0f}")


if __name__ == "__main__":
    main(sys.argv[1:])
