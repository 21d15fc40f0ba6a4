"""Storing a unit: its windows, under its lease, in one transaction with the claim of the worker's next unit.

A whole run (one shard) is stored as before: its `query` window (and
`prefill`) on the run. A shard of a longer run is stored as a `shard`
window (`shard-pre` for its prefill) with its own provenance; when the run's
last shard arrives, the run's `query` (and `prefill`) row is written as the
sum over its shards (db.results.sums). Statistics keep reading one `query` row per
run, so a run stays the repetition unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import Run, Shard
from db.queue.leases import Lease, UnitClaim, claim_next, complete, finish_if_complete
from db.results.stats import flag_outliers
from db.results.store import _add_windows, _new_window, phase_units, record_run, unit_flags, with_flags, work_columns
from db.results.sums import SHARD_PHASE, shard_windows, sum_windows


@dataclass(frozen=True)
class Stored:
    next: UnitClaim | None  # the worker's next unit of the same job, already leased (affinity)
    run_done: bool  # this unit completed its run
    job_status: str | None  # `done` / `failed` when this unit finished the job


def store_unit(session: Session, *, lease: Lease, claim: UnitClaim, reading: Any, units: Any,
               prefill: Any | None = None, baseline_id: int | None = None, claim_next_unit: bool = True,
               lease_timeout_s: float = 120.0, may_take_over: bool = True, prefill_units: Any | None = None) -> Stored:
    """Mark the unit done under its lease (LeaseLost otherwise), claim the next unit of its job, store windows."""
    complete(session, lease=lease, shard_id=claim.shard_id)
    following = claim_next(session, lease=lease, job_id=claim.job_id, lease_timeout_s=lease_timeout_s,
                           may_take_over=may_take_over) if claim_next_unit else None
    job_status = None if following is not None else finish_if_complete(session, job_id=claim.job_id)
    if getattr(units, "serving", None):  # a served unit's figures (worker/engines), stored with it
        from db.results.serving import record_serving

        record_serving(session, job_id=claim.job_id, run_id=claim.run_id, shard_id=claim.shard_id,
                       figures=units.serving)
    if claim.n_shards == 1:
        record_run(session, run_id=claim.run_id, worker_id=lease.worker_id, reading=reading, units=units,
                   baseline_id=baseline_id, prefill=prefill, shard_id=claim.shard_id, prefill_units=prefill_units)
        return Stored(following, True, job_status)
    run_done = record_shard(session, claim=claim, worker_id=lease.worker_id, reading=reading, units=units,
                            prefill=prefill, baseline_id=baseline_id, prefill_units=prefill_units)
    return Stored(following, run_done, job_status)


def record_shard(session: Session, *, claim: UnitClaim, worker_id: str, reading: Any, units: Any,
                 prefill: Any | None = None, baseline_id: int | None = None, prefill_units: Any | None = None) -> bool:
    """Store one shard's windows; with the run's last shard, also the run's sums. Returns whether the run is done."""
    run = session.get(Run, claim.run_id)
    readings = {"query": reading} | ({"prefill": prefill} if prefill is not None else {})
    per_phase = phase_units(units, prefill_units)  # as db.results.store.record_run
    windows = [
        with_flags(_new_window(session, window, job_id=claim.job_id, run_id=None, phase=SHARD_PHASE[phase],
                               worker_id=worker_id, baseline_id=baseline_id, shard_id=claim.shard_id,
                               kwh_per_1k_queries=window.energy_kwh * 1000 / units.queries,
                               **work_columns(per_phase[phase], run.batch_size)), unit_flags(per_phase[phase]))
        for phase, window in readings.items()
    ]
    latency = units.latency_figures() if hasattr(units, "latency_figures") else {}  # as db.results.store.record_run
    for name, value in latency.items():
        setattr(windows[0], name, value)
    windows[0].throughput_queries_per_s = units.queries / reading.duration_s if reading.duration_s > 0 else None
    left = session.scalar(select(Shard.id).where(Shard.run_id == claim.run_id, Shard.status != "done",
                                                 Shard.id != claim.shard_id).limit(1))
    stored = {phase: shard_windows(session, run_id=claim.run_id, phase=phase) for phase in readings} \
        if left is None else {}
    _add_windows(session, windows)  # attribution first: the sums add the attributed shares up too
    if left is None:
        totals = [sum_windows([*stored[phase], window], job_id=claim.job_id, run_id=claim.run_id, phase=phase)
                  for phase, window in zip(readings, windows, strict=True)]
        session.execute(update(Run).where(Run.id == claim.run_id, Run.status != "done")
                        .values(status="done", worker_id=worker_id, error=None, finished_at=totals[0].ended_at))
        flag_outliers(session, job_id=claim.job_id, dataset=run.dataset, new=totals[0])
        session.add_all(totals)
    return left is None
