"""The chaos run's end check counts what it should: a harness that always printed lost=0 would prove nothing."""

from __future__ import annotations

from sqlalchemy import delete, select

from db.models import Measurement
from db.queue.leases import claim_next
from db.queue.unit_store import store_unit
from tests.chaos.harness import check_stored
from tests.factories import make_reading
from tests.helpers import W1, first_job_id, make_sweep
from worker.workloads.base import WorkDone


def store_all(sessions, job_id: int, n: int) -> None:
    for _ in range(n):
        with sessions.begin() as session:
            claim = claim_next(session, lease=W1, job_id=job_id, lease_timeout_s=60)
            store_unit(session, lease=W1, claim=claim, reading=make_reading(), units=WorkDone(queries=claim.n_queries),
                       claim_next_unit=False)


def test_the_check_counts_lost_duplicated_and_unfinished_units(sessions):
    sharded = first_job_id(sessions, make_sweep(sessions, n_jobs=1, n_runs=1, shards=[(4, 1.0), (4, 1.0)], name="a"))
    whole = first_job_id(sessions, make_sweep(sessions, n_jobs=1, n_runs=2, name="b"))
    store_all(sessions, sharded, 2)
    store_all(sessions, whole, 1)  # one run of two left: its job is still queued or running
    found = check_stored(sessions, planned=4)
    assert (found.units, found.lost, found.duplicated, found.inconsistent, found.stuck_jobs) == (4, 1, 0, 0, 1)

    store_all(sessions, whole, 1)
    assert (check_stored(sessions, planned=4).lost, check_stored(sessions, planned=4).stuck_jobs) == (0, 0)
    assert check_stored(sessions, planned=5).lost == 1  # a planned unit with no row at all

    with sessions.begin() as session:  # a shard's window stored twice
        window = session.scalars(select(Measurement).where(Measurement.phase == "shard")).first()
        copy = {c.key: getattr(window, c.key) for c in Measurement.__table__.columns if c.key != "id"}
        session.add(Measurement(**copy))
    assert check_stored(sessions, planned=4).duplicated == 1

    with sessions.begin() as session:  # a done unit whose window is gone
        session.execute(delete(Measurement).where(Measurement.shard_id == window.shard_id))
    found = check_stored(sessions, planned=4)
    assert (found.lost, found.duplicated, found.inconsistent) == (1, 0, 1)
