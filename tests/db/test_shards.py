"""Shards add up to their run's figures; each keeps its own provenance; the run stays the repetition unit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from db.models import Measurement, Run, Shard
from db.queue.leases import claim_next
from db.queue.unit_store import store_unit
from tests.factories import make_reading
from tests.helpers import W1, W2, first_job_id, make_sweep
from worker.workloads.base import WorkDone

SHARDS = [(4, 1.0), (4, 1.0), (2, 0.5)]  # 10 queries in three consecutive shards


def test_shards_add_up_to_their_run_and_keep_their_own_provenance(sessions):
    job_id = first_job_id(sessions, make_sweep(sessions, n_jobs=1, n_runs=1, shards=SHARDS,
                                               hostnames=("h1", "h2")))
    start = datetime.now(UTC) - timedelta(hours=1)
    energies, durations = (3e-6, 5e-6, 1e-6), (2.0, 4.0, 1.0)
    stored = []
    for i, (lease, energy, duration) in enumerate(zip((W1, W2, W1), energies, durations, strict=True)):
        with sessions.begin() as session:
            claim = claim_next(session, lease=lease, job_id=job_id, lease_timeout_s=60)
            assert claim.n_shards == 3
            queries = claim.n_queries
            reading = make_reading(energy, duration, started_at=start + timedelta(seconds=10 * i),
                                   cpu_model=f"cpu-{lease.worker_id}", gpu_utilization_pct=10.0 * (i + 1))
            result = store_unit(session, lease=lease, claim=claim, reading=reading,
                                units=WorkDone(queries=queries, input_tokens=7 * queries), claim_next_unit=False)
            stored.append((claim.query_start, claim.n_queries, result.run_done))
        with sessions() as session:
            run = session.scalars(select(Run).where(Run.job_id == job_id)).one()
            assert run.status == ("done" if i == 2 else "pending")  # done with its last shard only
    assert stored == [(0, 4, False), (4, 4, False), (8, 2, True)]  # longest expected first, then query order
    with sessions() as session:
        run = session.scalars(select(Run).where(Run.job_id == job_id)).one()
        total = session.scalars(select(Measurement).where(Measurement.run_id == run.id,
                                                          Measurement.phase == "query")).one()
        shards = session.scalars(select(Measurement).where(Measurement.phase == "shard")
                                 .order_by(Measurement.shard_id)).all()
        units = session.scalars(select(Shard).where(Shard.run_id == run.id).order_by(Shard.shard_index)).all()
    assert run.n_shards == 3 and [u.status for u in units] == ["done"] * 3
    assert [(u.query_start, u.n_queries) for u in units] == [(0, 4), (4, 4), (8, 2)]
    # Each shard: its own window, worker, host and hardware.
    assert len(shards) == 3 and {s.worker_id for s in shards} == {W1.worker_id, W2.worker_id}
    assert {s.hostname for s in shards} == {"h1", "h2"} and len({s.cpu_model for s in shards}) == 2
    # The run: the sums.
    assert total.shards == 3 and total.shard_id is None and total.hostname is None
    assert total.energy_kwh == pytest.approx(sum(energies))
    assert total.cpu_energy_kwh == pytest.approx(sum(energies) / 2)
    assert total.emissions_kg == pytest.approx(sum(energies) * 0.1)
    assert total.duration_s == pytest.approx(sum(durations))
    assert (total.n_queries, total.input_tokens) == (10, 70)
    assert total.kwh_per_1k_queries == pytest.approx(sum(energies) * 1000 / 10)
    assert total.cpu_power_w == pytest.approx(sum(energies) / 2 * 3.6e6 / sum(durations))
    weighted = sum(u * d for u, d in zip((10.0, 20.0, 30.0), durations, strict=True)) / sum(durations)
    assert total.gpu_utilization_pct == pytest.approx(weighted)
    assert total.cpu_energy_attributed_kwh == pytest.approx(sum(s.cpu_energy_attributed_kwh for s in shards))
    assert total.cpu_model is None  # the shards ran on different hardware: no single value
    assert total.started_at == min(s.started_at for s in shards) and total.ended_at == max(s.ended_at for s in shards)
    assert "short-window" in (total.flags or "")  # the union of the shards' flags


def test_a_sharded_run_counts_once_in_the_statistics(sessions):
    from db.results.stats import cell_stats

    sweep_id = make_sweep(sessions, n_jobs=1, n_runs=2, shards=SHARDS)
    job_id = first_job_id(sessions, sweep_id)
    claim, start = True, datetime.now(UTC) - timedelta(hours=1)
    while claim:
        with sessions.begin() as session:
            claim = claim_next(session, lease=W1, job_id=job_id, lease_timeout_s=60)
            if claim:  # one worker's windows follow each other: nothing to share, headline = the reading
                start += timedelta(seconds=10)
                store_unit(session, lease=W1, claim=claim, units=WorkDone(queries=claim.n_queries),
                           reading=make_reading(1e-6 * claim.n_queries, 3.0, started_at=start), claim_next_unit=False)
    with sessions() as session:
        (cell,) = cell_stats(session, sweep_id=sweep_id)
    assert cell.kwh_per_1k.n == 2  # two repetitions, not six shards
    assert cell.kwh_per_1k.mean == pytest.approx(1e-6 * 1000)
