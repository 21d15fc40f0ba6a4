"""Units that shrink as the queue drains: a long unit is split at claim time, and its run still adds up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from db.models import Measurement, Run, Shard
from db.queue.leases import claim_next
from db.queue.policy import FACTOR, MIN_UNIT_S, SPLIT_SLACK, split_s, unit_target_s
from db.queue.unit_store import store_unit
from tests.factories import make_reading
from tests.helpers import W1, W2, first_job_id, make_sweep
from worker.workloads.base import WorkDone

GRID_100_G = dict(country_iso_code=None, region=None, grid_intensity_g_per_kwh=100.0)


def test_the_policy_hands_out_a_share_of_what_is_left_and_never_less_than_a_minute():
    assert unit_target_s(queue_s=36_000, workers=4) == 36_000 / (FACTOR * 4)
    assert unit_target_s(queue_s=100, workers=4) == MIN_UNIT_S
    assert split_s(unit_s=1800, queue_s=10_000_000, workers=8) is None  # early on: the unit as submit made it
    assert split_s(unit_s=1800, queue_s=36_000, workers=64) == 36_000 / (FACTOR * 64)  # near the end: smaller
    assert split_s(unit_s=1800, queue_s=6_000, workers=64) == MIN_UNIT_S  # at the very end: a minute
    assert split_s(unit_s=SPLIT_SLACK * MIN_UNIT_S, queue_s=0, workers=1) is None  # a rest that small: whole


def _drain(sessions, job_id, leases):
    """Claim and store every unit of the job, taking turns between `leases`; returns the claims in order."""
    claims, start = [], datetime.now(UTC) - timedelta(hours=2)
    while True:
        lease = leases[len(claims) % len(leases)]
        with sessions.begin() as session:
            claim = claim_next(session, lease=lease, job_id=job_id, lease_timeout_s=60)
            if claim is None:
                return claims
            start += timedelta(seconds=10)
            store_unit(session, lease=lease, claim=claim, claim_next_unit=False,
                       reading=make_reading(1e-6 * claim.n_queries, 5.0, started_at=start),
                       units=WorkDone(queries=claim.n_queries))
            claims.append(claim)


def test_a_long_unit_is_split_at_claim_time_and_the_run_is_their_sum(sessions):
    # One run of 1,000 queries expected to take 3,000 s, two live workers: each claim takes what is left / 6.
    job_id = first_job_id(sessions, make_sweep(sessions, n_jobs=1, n_runs=1, shards=[(1000, 3000.0)]))
    claims = _drain(sessions, job_id, (W1, W2))
    first = claims[0]
    assert (first.query_start, first.n_queries, first.n_shards) == (0, 166, 2)  # 3,000 s / 6 = 500 s: 166 queries
    assert first.expected_s == pytest.approx(498.0)
    assert [c.n_queries for c in claims] == sorted((c.n_queries for c in claims), reverse=True)  # shrinking
    assert min(c.n_queries for c in claims[:-1]) >= MIN_UNIT_S / 3  # never under a minute, but for the very last
    with sessions() as session:
        run = session.scalars(select(Run).where(Run.job_id == job_id)).one()
        units = session.scalars(select(Shard).where(Shard.run_id == run.id).order_by(Shard.query_start)).all()
        total = session.scalars(select(Measurement).where(Measurement.run_id == run.id,
                                                          Measurement.phase == "query")).one()
    # Every query measured once, in consecutive units; the run knows how many; its row is their sum.
    assert [u.query_start for u in units] == [0] + [sum(u.n_queries for u in units[:i]) for i in range(1, len(units))]
    assert sum(u.n_queries for u in units) == 1000 and {u.status for u in units} == {"done"}
    assert sorted(u.shard_index for u in units) == list(range(len(units))) and run.n_shards == len(units) > 2
    assert run.status == "done" and total.shards == len(units) and total.n_queries == 1000
    assert total.energy_kwh == pytest.approx(1e-6 * 1000) and total.duration_s == pytest.approx(5.0 * len(units))


def test_a_split_keeps_whole_batches_and_counts_the_warm_up_of_each_part(sessions):
    from sqlalchemy import update

    job_id = first_job_id(sessions, make_sweep(sessions, n_jobs=1, n_runs=1, shards=[(1000, 3000.0)]))
    with sessions.begin() as session:  # batches of 8 and a warm-up of 16 queries, as submit would have estimated
        session.execute(update(Run).where(Run.job_id == job_id).values(batch_size=8, warmup=16))
        session.execute(update(Shard).where(Shard.job_id == job_id).values(expected_s=3 * (1000 + 16)))
    with sessions.begin() as session:
        claim = claim_next(session, lease=W1, job_id=job_id, lease_timeout_s=60)
        rest = session.scalars(select(Shard).where(Shard.job_id == job_id, Shard.status == "pending")).one()
    # Target 3,048 s / 6 = 508 s: 169 queries less the warm-up's 16 = 153, down to whole batches: 152.
    assert claim.n_queries == 152 and claim.expected_s == pytest.approx(3 * (152 + 16))
    assert (rest.query_start, rest.n_queries, rest.expected_s) == (152, 848, pytest.approx(3 * (848 + 16)))


def test_short_units_are_never_split(sessions):
    job_id = first_job_id(sessions, make_sweep(sessions, n_jobs=1, n_runs=3, shards=[(100, SPLIT_SLACK * 60)]))
    claims = _drain(sessions, job_id, (W1,))
    assert [(c.n_queries, c.n_shards) for c in claims] == [(100, 1)] * 3


def test_a_sweep_that_fixed_its_unit_size_keeps_it(sessions):
    from db.queue.sweeps import GroupedRuns, NewJob, RunGroup, insert_sweep
    from scheduler.plan.expand import PlannedJob
    from scheduler.plan.priors import prior_estimate
    from scheduler.plan.submit import UnitSettings, new_job

    planned = PlannedJob("fill-mask", "tiny:m", "cpu", {}, GroupedRuns([RunGroup("builtin:texts", 0, 1, 1000, 1, 0)]))
    estimate = prior_estimate(task="fill-mask", model="tiny:m", params={})
    assert new_job(planned, estimate, UnitSettings(None, 1800)).split_units  # sized by max_unit_s: may split
    assert not new_job(planned, estimate, UnitSettings(500, 1800)).split_units  # shard_queries: fixed
    run = dict(dataset="builtin:texts", repetition=0, n_queries=1000, batch_size=1, warmup=0,
               shards=[(500, 1500.0), (500, 1500.0)])
    make_sweep(sessions, n_jobs=0)  # the two workers
    with sessions.begin() as session:
        fixed = NewJob("fill-mask", "tiny:m", "cpu", {}, [run], split_units=False)
        sweep = insert_sweep(session, name="fixed", spec={}, hardware_class="cpu", mode="distributed",
                             carbon=GRID_100_G, jobs=[fixed])
    job_id = first_job_id(sessions, sweep.id)
    claims = _drain(sessions, job_id, (W1, W2))
    assert [(c.query_start, c.n_queries, c.n_shards) for c in claims] == [(0, 500, 2), (500, 500, 2)]
