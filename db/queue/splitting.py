"""Units that shrink as the queue drains: a claimed unit longer than the policy's target is split at claim time.

Submit cuts long runs into units of at most `max_unit_s`; near the end of a
sweep that is too long (a few GPUs finish the last long units while the
others have nothing left, and a unit that runs slower than expected makes it
worse). So each claim of a long unit asks db.queue.policy.split_s how much
to take now, from the work left in the queue and the workers serving it: the
worker keeps the first whole batches of the unit, and the rest becomes a new
pending unit of the same run (the next shard index; `query_start` keeps the
query order), in the same transaction as the claim. A run split this way is a
sharded run like any other: its `query` row is the sum of its shards
(db.results.sums), so statistics and reports keep their meaning.

Units too short to split (under SPLIT_SLACK x MIN_UNIT_S) skip the sums over
the queue: a sweep of short runs pays nothing for this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import Connection, and_, bindparam, func, insert, or_, select, update

from db.clock import lease_is_live, lease_is_stale
from db.models import Job, Run, Shard, Sweep, Worker
from db.queue.policy import MIN_UNIT_S, SPLIT_SLACK, split_s

ACTIVE_JOB = ("queued", "running")


@dataclass(frozen=True)
class Split:
    """The claimed unit after its split: what the worker measures now, and the run's shard count."""

    n_queries: int
    expected_s: float
    n_shards: int


def may_split(expected_s: float | None) -> bool:
    """Whether a unit is long enough that the policy could split it (no database work otherwise)."""
    return expected_s is not None and expected_s > SPLIT_SLACK * MIN_UNIT_S


@lru_cache(maxsize=64)
def _queue_statements(lease_timeout_s: float):
    """The queue's claimable work (expected seconds) and its live workers, per hardware class."""
    open_job = and_(Job.hardware_class == bindparam("hardware_class"), Job.status.in_(ACTIVE_JOB),
                    Sweep.cancelled.is_(False))
    claimable = or_(Shard.status == "pending",
                    and_(Shard.status == "running", lease_is_stale(Shard.lease_heartbeat_at, lease_timeout_s),
                         Shard.attempts < Job.max_attempts))
    work = (select(func.coalesce(func.sum(Shard.expected_s), 0.0))
            .join(Job, Job.id == Shard.job_id).join(Sweep, Sweep.id == Job.sweep_id)
            .where(open_job, claimable))
    workers = select(func.count()).select_from(Worker).where(
        Worker.hardware_class == bindparam("hardware_class"), Worker.stopped_reason.is_(None),
        lease_is_live(Worker.heartbeat_at, lease_timeout_s))
    return work, workers


def split_claimed(connection: Connection, *, shard_id: int, run_id: int, job_id: int, hardware_class: str,
                  query_start: int, n_queries: int, expected_s: float, batch_size: int, warmup: int,
                  lease_timeout_s: float) -> Split | None:
    """Split the unit just leased by this transaction if the policy says so; None leaves it whole."""
    work, workers = _queue_statements(float(lease_timeout_s))
    others_s = float(connection.execute(work, {"hardware_class": hardware_class}).scalar() or 0.0)
    serving = int(connection.execute(workers, {"hardware_class": hardware_class}).scalar() or 0)
    part_s = split_s(unit_s=expected_s, queue_s=others_s + expected_s, workers=max(serving, 1))
    if part_s is None:
        return None
    batch = max(batch_size, 1)
    s_per_query = expected_s / (n_queries + warmup)  # as scheduler.plan.priors.unit_seconds made it
    taken = math.floor((part_s / s_per_query - warmup) / batch) * batch
    taken = max(taken, batch)
    if taken >= n_queries:
        return None
    rest = n_queries - taken
    count = connection.execute(update(Run).where(Run.id == run_id).values(n_shards=Run.n_shards + 1)
                               .returning(Run.n_shards)).scalar_one()  # the run's row lock orders concurrent splits
    connection.execute(insert(Shard).values(job_id=job_id, run_id=run_id, shard_index=count - 1,
                                            query_start=query_start + taken, n_queries=rest,
                                            expected_s=s_per_query * (rest + warmup), status="pending", attempts=0))
    taken_s = s_per_query * (taken + warmup)
    connection.execute(update(Shard).where(Shard.id == shard_id).values(n_queries=taken, expected_s=taken_s))
    return Split(taken, taken_s, count)
