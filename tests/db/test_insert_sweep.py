"""insert_sweep writes what it was given, whichever way it writes (Postgres: binary COPY; SQLite: INSERT)."""

from __future__ import annotations

from sqlalchemy import select

from db.models import Job, Run, Shard
from db.queue.sweeps import NewJob, insert_sweep

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
