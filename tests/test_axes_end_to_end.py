"""Sweep axes end to end: a two-value batch-size axis is two jobs, run, stored in their own column, groupable in
SQL, with latency columns filled; `plan` counts the combinations; a 0010 database upgrades without losing runs."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from db.models import Job, Measurement
from db.session import session_factory
from tests.helpers import wattsweep

AXIS_SWEEP = """
name: batch-axis
defaults: {queries: 4, repetitions: 1, warmup: 1, batch_size: [1, 2]}
carbon: {grid_intensity_g_per_kwh: 100}
tasks:
  text-generation:
    models: [tiny:gpt2]
    datasets: [builtin:prompts]
    params: {max_new_tokens: [2, 3]}
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_value_batch_size_axis_runs_each_cell_and_sql_groups_by_it(backend, tmp_path, request):
    (tmp_path / "sweep.yaml").write_text(AXIS_SWEEP)
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    plan = wattsweep("plan", "sweep.yaml", cwd=tmp_path, env_url=url)
    assert plan.returncode == 0, plan.stderr
    assert "4 combinations" in plan.stdout and "batch_size (2) x max_new_tokens (2)" in plan.stdout
    result = wattsweep("run", "sweep.yaml", cwd=tmp_path, env_url=url)
    assert result.returncode == 0, result.stderr
    url = url or f"sqlite:///{tmp_path / 'wattsweep.db'}"
    with session_factory(url)() as session:
        jobs = session.scalars(select(Job).order_by(Job.id)).all()
        assert [(j.batch_size, j.max_new_tokens, j.cell_key, j.status) for j in jobs] == [
            (1, 2, "batch_size=1 max_new_tokens=2", "done"), (1, 3, "batch_size=1 max_new_tokens=3", "done"),
            (2, 2, "batch_size=2 max_new_tokens=2", "done"), (2, 3, "batch_size=2 max_new_tokens=3", "done")]
        windows = session.scalars(select(Measurement).where(Measurement.phase == "query")).all()
        assert len(windows) == 4
        for window in windows:
            job = session.get(Job, window.job_id)
            assert window.batch_size == job.batch_size and window.output_tokens == 4 * job.max_new_tokens
            assert 0 < window.latency_p50_s <= window.latency_p95_s and window.throughput_queries_per_s > 0
            assert window.ttft_p50_s > 0
        grouped = session.execute(text(
            "SELECT batch_size, count(*), sum(queries_total) FROM v_model_summary GROUP BY batch_size "
            "ORDER BY batch_size")).all()
        assert [tuple(row) for row in grouped] == [(1, 2, 8), (2, 2, 8)]
        latency = session.execute(text("SELECT latency_p95_s_mean FROM v_model_summary")).scalars().all()
        assert len(latency) == 4 and all(v > 0 for v in latency)


def test_upgrading_a_0010_database_keeps_its_runs_and_fills_batch_size(tmp_path):
    from alembic import command

    from db.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0010")
    with session_factory(url).begin() as session:
        session.execute(text("INSERT INTO sweeps (id, name, spec, hardware_class, mode, cancelled, exclusive, "
                             "created_at) VALUES (1, 'old', '{}', 'cpu', 'local', 0, 0, '2026-01-01')"))
        session.execute(text("INSERT INTO jobs (id, sweep_id, task, model, hardware_class, params, status, attempts, "
                             "max_attempts, model_kind, created_at) VALUES (1, 1, 'fill-mask', 'tiny:bert', 'cpu', "
                             "'{}', 'done', 1, 3, 'task-specific', '2026-01-01')"))
        session.execute(text("INSERT INTO runs (id, job_id, dataset, repetition, n_queries, batch_size, warmup, "
                             "status) VALUES (1, 1, 'builtin:texts', 0, 10, 4, 0, 'done')"))
    command.upgrade(alembic_config(url), "head")
    with session_factory(url)() as session:
        assert session.execute(text("SELECT count(*) FROM runs")).scalar() == 1  # no cascade on the rebuild
        assert session.execute(text("SELECT batch_size, cell_key FROM jobs")).one() == (4, "")
        assert session.execute(text("SELECT count(*) FROM v_runs")).scalar() == 1
    command.downgrade(alembic_config(url), "0010")
    with session_factory(url)() as session:
        assert session.execute(text("SELECT count(*) FROM runs")).scalar() == 1
