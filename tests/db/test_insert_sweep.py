"""insert_sweep writes what it was given, whichever way it writes (Postgres: binary COPY; SQLite: INSERT)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db.models import Job, Run, Shard
from db.queue.sweeps import GroupedRuns, NewJob, RunGroup, insert_sweep, run_groups

GRID_100_G = dict(country_iso_code=None, region=None, grid_intensity_g_per_kwh=100.0)


def test_jobs_runs_and_units_come_back_as_written(sessions):
    run = dict(dataset="builtin:texts", repetition=0, n_queries=10, batch_size=2, warmup=1,
               shards=[(6, 3.5), (4, 2.5)])
    params = {"max_new_tokens": 8, "stop": ["\n", "é"], "nested": {"a": None, "b": 1.5}}
    with sessions.begin() as session:
        sweep = insert_sweep(session, name="written", spec={"x": 1}, hardware_class="cpu", mode="distributed",
                             carbon=GRID_100_G, jobs=[
                                 NewJob("text-generation", "tiny:gpt2", "cpu", params, [run], cell_key="batch_size=2",
                                        axes={"batch_size": 2, "dtype": "float16"}, expected_s=6.0,
                                        load_expected_s=1.5, estimate_source="prior", split_units=False),
                                 NewJob("fill-mask", "tiny:bert", "cpu", {}, [dict(run, shards=None)])])
    with sessions() as session:
        jobs = session.scalars(select(Job).where(Job.sweep_id == sweep.id).order_by(Job.id)).all()
        runs = session.scalars(select(Run).where(Run.job_id.in_([j.id for j in jobs])).order_by(Run.id)).all()
        units = session.scalars(select(Shard).where(Shard.job_id.in_([j.id for j in jobs])).order_by(Shard.id)).all()
    first, second = jobs
    assert first.params == params and second.params == {}
    assert (first.batch_size, first.dtype, first.cell_key, first.max_new_tokens) == (2, "float16", "batch_size=2", None)
    assert (first.expected_s, first.load_expected_s, first.estimate_source) == (6.0, 1.5, "prior")
    assert (first.split_units, second.split_units) == (False, True)
    assert all(j.status == "queued" and j.attempts == 0 and j.load_failures == 0 and j.created_at for j in jobs)
    assert [(r.job_id, r.n_shards, r.status, r.batch_size, r.warmup) for r in runs] == [
        (first.id, 2, "pending", 2, 1), (second.id, 1, "pending", 2, 1)]
    assert [(u.run_id, u.shard_index, u.query_start, u.n_queries, u.expected_s, u.status, u.attempts) for u in units] \
        == [(runs[0].id, 0, 0, 6, 3.5, "pending", 0), (runs[0].id, 1, 6, 4, 2.5, "pending", 0),
            (runs[1].id, 0, 0, 10, None, "pending", 0)]


def test_consecutive_runs_alike_but_for_their_repetition_make_one_group():
    def run(dataset, repetition, n_queries=10, **more):
        return dict(dataset=dataset, repetition=repetition, n_queries=n_queries, batch_size=1, warmup=0, **more)

    given = [run("builtin:texts", 1), run("builtin:texts", 2), run("builtin:texts", 0), run("builtin:texts", 3, 11),
             run("builtin:reviews", 0, shards=[[4, 1.0], [6, 1.5]]),
             run("builtin:reviews", 1, shards=[(4, 1.0), (6, 1.5)]),
             run("builtin:reviews", 2, expected_s=2.0), run("builtin:reviews", 3, expected_s=2.0)]
    assert list(run_groups(given)) == [
        RunGroup("builtin:texts", 1, 2, 10, 1, 0), RunGroup("builtin:texts", 0, 1, 10, 1, 0),
        RunGroup("builtin:texts", 3, 1, 11, 1, 0), RunGroup("builtin:reviews", 0, 2, 10, 1, 0, ((4, 1.0), (6, 1.5))),
        RunGroup("builtin:reviews", 2, 2, 10, 1, 0, None, 2.0)]
    fields = ("dataset", "repetition", "n_queries", "expected_s")
    assert [[r.get(f) for f in fields] for r in GroupedRuns(run_groups(given))] == [[r.get(f) for f in fields]
                                                                                    for r in given]


def test_runs_keep_the_order_given_and_groups_of_like_runs_write_the_same_rows(sessions):
    """The server makes runs from groups of like runs (Postgres): runs given out of order, or alike but for a
    setting, still come back in the order given, each with its own units, as GroupedRuns' do."""
    def run(dataset, repetition, n_queries=10, **more):
        return dict(dataset=dataset, repetition=repetition, n_queries=n_queries, batch_size=1, warmup=0, **more)

    given = [run("builtin:texts", 2), run("builtin:texts", 0), run("builtin:texts", 1),
             run("builtin:reviews", 0, shards=[(4, 1.0), (6, 1.5)]), run("builtin:reviews", 1, expected_s=2.0),
             run("builtin:reviews", 2, n_queries=12), run("builtin:reviews", 3, n_queries=12)]
    grouped = GroupedRuns([RunGroup("builtin:texts", 0, 3, 10, 1, 0, [(10, 2.0)]),
                           RunGroup("builtin:reviews", 5, 2, 8, 2, 1, [(5, 1.0), (3, 0.5)])])
    assert len(grouped) == 5 and grouped[-1]["repetition"] == 6 and list(grouped)[3] == grouped[3]
    with sessions.begin() as session:
        sweep = insert_sweep(session, name="ordered", spec={}, hardware_class="cpu", mode="distributed",
                             carbon=GRID_100_G, dispatched=True,
                             jobs=[NewJob("fill-mask", "tiny:a", "cpu", {}, given),
                                   NewJob("fill-mask", "tiny:b", "cpu", {}, grouped)])
    with sessions() as session:
        jobs = session.scalars(select(Job).where(Job.sweep_id == sweep.id).order_by(Job.id)).all()
        runs = session.scalars(select(Run).where(Run.job_id.in_([j.id for j in jobs])).order_by(Run.id)).all()
        units = session.scalars(select(Shard).where(Shard.job_id.in_([j.id for j in jobs])).order_by(Shard.id)).all()
    assert all(job.dispatched_at is not None for job in jobs)
    assert [(r.job_id, r.dataset, r.repetition, r.n_queries, r.batch_size, r.warmup, r.n_shards) for r in runs] == [
        (jobs[0].id, "builtin:texts", 2, 10, 1, 0, 1), (jobs[0].id, "builtin:texts", 0, 10, 1, 0, 1),
        (jobs[0].id, "builtin:texts", 1, 10, 1, 0, 1), (jobs[0].id, "builtin:reviews", 0, 10, 1, 0, 2),
        (jobs[0].id, "builtin:reviews", 1, 10, 1, 0, 1), (jobs[0].id, "builtin:reviews", 2, 12, 1, 0, 1),
        (jobs[0].id, "builtin:reviews", 3, 12, 1, 0, 1),
        *[(jobs[1].id, "builtin:texts", r, 10, 1, 0, 1) for r in range(3)],
        *[(jobs[1].id, "builtin:reviews", r, 8, 2, 1, 2) for r in (5, 6)]]
    by_run = {r.id: r for r in runs}
    assert [(by_run[u.run_id].repetition, u.job_id, u.shard_index, u.query_start, u.n_queries, u.expected_s)
            for u in units] == [
        (2, jobs[0].id, 0, 0, 10, None), (0, jobs[0].id, 0, 0, 10, None), (1, jobs[0].id, 0, 0, 10, None),
        (0, jobs[0].id, 0, 0, 4, 1.0), (0, jobs[0].id, 1, 4, 6, 1.5), (1, jobs[0].id, 0, 0, 10, 2.0),
        (2, jobs[0].id, 0, 0, 12, None), (3, jobs[0].id, 0, 0, 12, None),
        *[(r, jobs[1].id, 0, 0, 10, 2.0) for r in range(3)],
        *[(r, jobs[1].id, *unit) for r in (5, 6) for unit in ((0, 0, 5, 1.0), (1, 5, 3, 0.5))]]
    assert all(by_run[u.run_id].job_id == u.job_id for u in units)


def test_units_that_do_not_add_up_to_their_run_are_refused(sessions):
    bad = dict(dataset="builtin:texts", repetition=0, n_queries=10, batch_size=1, warmup=0, shards=[(4, 1.0)])
    with pytest.raises(ValueError, match="add up to 4 queries, not 10"), sessions.begin() as session:
        insert_sweep(session, name="bad", spec={}, hardware_class="cpu", mode="distributed", carbon=GRID_100_G,
                     jobs=[NewJob("fill-mask", "tiny:a", "cpu", {}, [bad])])
