"""Who does what next: the one unit-selection policy, shared by workers, `plan --workers` and the replay benchmark.

Pure functions over small facts; the database layer (db.queue.staffing) gathers the
facts in SQL and applies the choice atomically, and the simulators
(scheduler.plan.workers, bench/replay.py) call these same functions over their own
state. Nothing here touches a database, a clock or the broker.

The policy, in order:

1. Affinity. A worker that has a job's model loaded claims that job's
   remaining units first, longest expected unit first. A model is never
   reloaded per unit while its job has units left.
2. Joining. Otherwise it joins the job whose completion is furthest away if it
   joins: the job's priority is max(longest claimable unit, claimable work /
   (workers on it + 1)). That is longest-processing-time-first over units,
   with a job's remaining work shared among the workers already on it.
3. A job that already has workers is worth joining only if the newcomer's
   share of its remaining work is at least JOIN_FACTOR x the job's expected
   model load: a second load costs time and energy, and is not paid for a
   few seconds of work. A job nobody works on is always worth joining.
4. Messages (ids only) wake workers: one per job at submit, and a worker on a
   job that is worth joining sends one more when the queue is empty
   (`recruit_target`), so that idle workers join where they are needed. A
   message lets a worker join at most one job; its job id breaks ties.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache
from typing import NamedTuple

JOIN_FACTOR = 2.0


class JobFacts(NamedTuple):
    """What the policy needs to know about one job with claimable units (a tuple: simulators build many)."""

    job_id: int
    claimable_s: float  # expected seconds of its units nobody holds (pending, or under a stale lease)
    longest_s: float  # the longest of those
    staff: int  # live workers that have joined it, not counting the one asking
    load_s: float  # expected model load time


UNIT_CLASS_RATIO = 1.25  # units within 25% of each other count as equally long
_LOG_CLASS_RATIO = math.log(UNIT_CLASS_RATIO)


@lru_cache(maxsize=65536)
def unit_class(seconds: float) -> int:
    """Classes of units within UNIT_CLASS_RATIO of each other (cached: simulators ask millions of times)."""
    return math.floor(math.log(max(seconds, 1e-3)) / _LOG_CLASS_RATIO)


def join_priority(job: JobFacts) -> tuple[int, float]:
    """Longest unit first (in classes of 25%), then the job whose end is furthest if one more worker joins."""
    return unit_class(job.longest_s), max(job.longest_s, job.claimable_s / (job.staff + 1))


def worth_joining(job: JobFacts) -> bool:
    return job.staff == 0 or job.claimable_s / (job.staff + 1) >= JOIN_FACTOR * job.load_s


def choose_job(jobs: Iterable[JobFacts], *, hint: int | None = None) -> JobFacts | None:
    """The job a worker with no claimable unit of its own job should join, or None.

    Ties go to the message's job (`hint`), then to the older job. (worth_joining and join_priority, inlined:
    simulators call this thousands of times over every open job.)
    """
    best, best_key = None, None
    for job in jobs:
        share = job.claimable_s / (job.staff + 1)
        if job.staff and share < JOIN_FACTOR * job.load_s:
            continue
        key = (unit_class(job.longest_s), max(job.longest_s, share), job.job_id == hint, -job.job_id)
        if best_key is None or key > best_key:
            best, best_key = job, key
    return best


def recruit_target(jobs: Iterable[JobFacts]) -> JobFacts | None:
    """A job that has workers and is worth one more: send its id so that an idle worker joins it.

    Jobs nobody works on have their own message (submit, reconcile, hand-back);
    recruiting for them too would make a lost message look delivered.
    """
    return choose_job(job for job in jobs if job.staff > 0)


def unit_order_key(expected_s: float | None, unit_id: int) -> tuple[float, int]:
    """Within a job: longest expected unit first, then query order (sort ascending)."""
    return (-(expected_s or 0.0), unit_id)
