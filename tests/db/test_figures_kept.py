"""The summary tables (0032: job_figures, cell_figures, job_setups) are kept in step with the windows by triggers,
and the views that read them give exactly what their 0031 versions computed from every window.

A random sweep is written through every writer (bulk inserts as seeding does, a worker's unit store and load
window, `wattsweep import`, attribution's share updates, outlier verdicts, runs that stop being done, a window with
no GPU reading, a deleted sweep), and after each step every column of every summary view is compared with the
0031 version of that view, created beside it as a temporary view over the same windows. A writer that bypassed
the triggers would leave a table behind and fail the comparison at its step.

Floats agree to 1e-12 relative: a stored per-job sum is the same SQL over the same windows, but the database may
add them in another order (a plan over one job's rows against one over every window, or Postgres' parallel
workers), and a sweep's total is now the sum of its jobs' sums. Everything else is equal.
"""

from __future__ import annotations

import math
import random
import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, delete, insert, select, text, update
from sqlalchemy.pool import NullPool

from bench import scale
from db.models import IdleBaseline, Job, Measurement, Run, Sweep, Worker
from db.results.stats import reflag_cells
from db.results.views import PROVENANCE_COLUMNS, provenance_rows
from db.session import session_factory
from migrations.views import definition
from scheduler.plan.submit import create_sweep
from scheduler.spec.reading import parse_sweep
from tests.helpers import import_codecarbon_v2
from tests.results_data import SeedModel, _window, seed_sweep

# view -> the columns that identify a row
VIEWS = {
    "v_model_summary": ("job_id",),
    "v_cell_summary": ("job_id", "dataset"),
    "v_task_summary": ("sweep_id", "task"),
    "v_hardware_summary": ("hardware_class", "task"),
    "v_sweep_progress": ("sweep_id",),
    "v_model_kind_summary": ("sweep_id", "task", "model_kind"),
}
TASKS = ("text-classification", "text-generation", "image-generation")


def _same(a, b) -> bool:
    if isinstance(a, float | Decimal) and isinstance(b, float | Decimal):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-18)
    return a == b


def _old_view(name: str, dialect: str) -> str:
    sql = definition(name, "0031", dialect).replace(f"CREATE VIEW {name} ", f"CREATE TEMP VIEW old_{name} ", 1)
    return sql.replace("FROM v_model_summary", "FROM old_v_model_summary")  # v_model_kind_summary's source


def assert_views_match(url: str, step: str) -> dict[str, int]:
    """Every summary view against its 0031 version, row by row and column by column; rows per view."""
    engine = create_engine(url, poolclass=NullPool)
    counts = {}
    with engine.connect() as connection:
        dialect = connection.dialect.name
        for name in VIEWS:
            connection.execute(text(_old_view(name, dialect)))
        for name, keys in VIEWS.items():
            order = ", ".join(keys)
            new = [dict(r._mapping) for r in connection.execute(text(f"SELECT * FROM {name} ORDER BY {order}"))]
            old = [dict(r._mapping) for r in connection.execute(text(f"SELECT * FROM old_{name} ORDER BY {order}"))]
            assert [tuple(r[k] for k in keys) for r in new] == [tuple(r[k] for k in keys) for r in old], (step, name)
            for n, o in zip(new, old, strict=True):
                assert list(n) == list(o), (step, name)
                differ = {c: (n[c], o[c]) for c in n if not _same(n[c], o[c])}
                assert not differ, f"{step}: {name} {tuple(n[k] for k in keys)}: {differ}"
            counts[name] = len(new)
        sweeps = connection.execute(text("SELECT id FROM sweeps")).scalars().all()
        connection.rollback()
    engine.dispose()
    with session_factory(url)() as session:
        for sweep_id in sweeps:
            assert provenance_rows(session, sweep_id=sweep_id) == _provenance_from_v_runs(session, sweep_id), step
    return counts


def _provenance_from_v_runs(session, sweep_id: int) -> list[dict]:
    """What provenance_rows means: v_runs' query windows grouped by set-up."""
    keys = ", ".join(PROVENANCE_COLUMNS)
    rows = session.execute(text(
        f"SELECT {keys}, count(*) AS runs, min(carbon_intensity_g_per_kwh) AS intensity_min, "
        f"max(carbon_intensity_g_per_kwh) AS intensity_max FROM v_runs "
        f"WHERE sweep_id = :s AND measurement_id IS NOT NULL GROUP BY {keys} ORDER BY runs DESC, {keys}"),
        {"s": sweep_id})
    return [dict(r._mapping) for r in rows]


def _random_models(rng: random.Random, prefix: str, n: int) -> list[SeedModel]:
    models = []
    for i in range(n):
        datasets = rng.sample(["a", "b", "c"], rng.randint(1, 3)) if i % 3 else ["a"]
        values = [rng.uniform(0.001, 0.2) for _ in range(rng.randint(1, 4) * len(datasets) if i % 3 else 8)]
        if not i % 3:
            values[0] *= 40  # an outlier for the verdicts to find
        models.append(SeedModel(
            rng.choice(TASKS), f"hub:org/{prefix}{i}", values, kind=rng.choice(["task-specific", "multi-purpose"]),
            datasets=datasets, idle_share=rng.choice([None, 0.1, 0.3]), load_kwh=rng.choice([None, 0.0005, 0.002]),
            pending_runs=rng.randint(0, 2), latency_p95_s=rng.choice([None, 0.1, 0.7]),
            cell_key=rng.choice(["", "batch_size=4"])))
    return models


def _stored_for_real(sessions) -> int:
    """A small sweep stored as a worker stores it (db.queue.staffing, db.results.store, db.queue.unit_store)."""
    now = datetime.now(UTC)
    with sessions.begin() as session:
        if session.get(Worker, "gpu0@bench") is None:
            session.add(Worker(id="gpu0@bench", hostname="bench", host_id="bench", device="cuda:0",
                               hardware_class="bench", inventory={"versions": {"torch": "2.4.1"}}, started_at=now,
                               heartbeat_at=now))
            session.flush()
            session.add(IdleBaseline(id=scale.BASELINE_ID, worker_id="gpu0@bench", hostname="bench", measured_at=now,
                                     duration_s=20, cpu_power_w=60, gpu_power_w=55, ram_power_w=20,
                                     cpu_method="rapl", gpu_method="nvml-energy-counter",
                                     ram_method="codecarbon-dimm-estimate"))
        spec = parse_sweep(scale.spec_data("real", 2, repetitions=2) | {"name": "real"})
        sweep_id = create_sweep(session, spec, mode="distributed").id
    scale.measure_for_real(sessions, sweep_id)
    return sweep_id


def test_the_views_read_from_kept_figures_equal_their_0031_versions(database_url, tmp_path):
    rng = random.Random(22)
    sessions = session_factory(database_url)
    with sessions.begin() as session:
        sweep_id = seed_sweep(session, name="random", models=_random_models(rng, "m", 14))
        other = seed_sweep(session, name="other", models=_random_models(rng, "o", 4), hardware_class="h100",
                           worker_id="gpu1@node2")
    assert_views_match(database_url, "seeded")

    with sessions.begin() as session:  # attribution revises shares; a window with no GPU reading; unreliable ones
        session.execute(update(Measurement).where(Measurement.id % 3 == 0).values(
            cpu_energy_attributed_kwh=Measurement.cpu_energy_kwh / 3,
            ram_energy_attributed_kwh=Measurement.ram_energy_kwh / 2))
        session.execute(update(Measurement).where(Measurement.id % 11 == 5, Measurement.phase == "query").values(
            gpu_energy_kwh=0.0, flags="gpu-counter-coarse,gpu-energy-zero", is_unreliable=True))
        session.execute(update(Measurement).where(Measurement.id % 13 == 1).values(is_unreliable=True))
        reflag_cells(session, job_ids=session.scalars(select(Job.id)).all())  # outlier verdicts, as stored
    counts = assert_views_match(database_url, "attributed and flagged")
    with sessions() as session:
        flagged = session.execute(text(
            "SELECT sum(outlier_runs), sum(excluded_runs), sum(unreliable_runs), sum(node_wide_runs) "
            "FROM v_model_summary")).one()
    assert all(flagged), flagged  # every kind of window is there to be counted

    with sessions.begin() as session:  # runs that stop being done, and one moved back
        runs = session.scalars(select(Run.id).where(Run.status == "done").order_by(Run.id)).all()
        session.execute(update(Run).where(Run.id.in_(runs[::5])).values(status="failed"))
        session.execute(update(Run).where(Run.id == runs[0]).values(status="done"))
    assert_views_match(database_url, "runs failed")

    real = _stored_for_real(sessions)
    import_codecarbon_v2(database_url, tmp_path)
    counts = assert_views_match(database_url, "stored for real and imported")
    assert counts["v_model_summary"] >= 14 + 4 + 20 + 1 and counts["v_cell_summary"] > counts["v_model_summary"]

    with sessions.begin() as session:  # one window deleted, and a whole sweep (cascading to its windows)
        session.execute(delete(Measurement).where(Measurement.id == session.scalars(
            select(Measurement.id).where(Measurement.phase == "query").order_by(Measurement.id)).first()))
        session.execute(delete(Sweep).where(Sweep.id == other))
    assert assert_views_match(database_url, "deleted")["v_sweep_progress"] == 3
    with sessions() as session:
        assert session.execute(text("SELECT count(*) FROM job_figures WHERE job_id NOT IN (SELECT id FROM jobs)")
                               ).scalar() == 0
        assert {sweep_id, real} <= set(session.scalars(select(Job.sweep_id)).all())


def _window_row(job_id: int, run_id: int, energy: float) -> dict:
    return _window(job_id, run_id, "query", energy, None, "gpu0@node1", "rapl", "nvml-energy-counter", 1000,
                   datetime.now(UTC))


def test_two_writers_of_one_job_lose_no_window(postgres_url):
    """Two transactions store windows of one job at once: the second waits for the first's lock on the job's
    figures, and recomputes after it commits, so that both windows are counted (READ COMMITTED: a recompute in the
    inserting statement's snapshot would miss the other's window). The figures are refreshed at commit; the first
    writer refreshes early (SET CONSTRAINTS ... IMMEDIATE) and holds its lock until the second waits for it."""
    sessions = session_factory(postgres_url)
    with sessions.begin() as session:
        seed_sweep(session, name="two", models=[SeedModel("text-classification", "hub:org/m", [0.01],
                                                          datasets=["a"], pending_runs=2)])
        job_id = session.scalars(select(Job.id)).one()
        first, second = session.scalars(select(Run.id).where(Run.status == "pending").order_by(Run.id)).all()
    # connections of their own: the pooled ones may still carry the migration's short lock_timeout (env.py)
    engine = create_engine(postgres_url, poolclass=NullPool)
    inserted, release, errors = threading.Event(), threading.Event(), []

    def store(run_id: int, energy: float, hold: bool) -> None:
        try:
            with engine.begin() as connection:
                connection.execute(insert(Measurement), [_window_row(job_id, run_id, energy)])
                connection.execute(update(Run).where(Run.id == run_id).values(status="done"))
                if hold:
                    connection.execute(text("SET CONSTRAINTS wattsweep_figures_at_commit IMMEDIATE"))
                    inserted.set()
                    assert release.wait(60), "never released"
        except Exception as error:  # noqa: BLE001  (reported below, from the test's thread)
            errors.append(error)
            inserted.set()

    one = threading.Thread(target=store, args=(first, 0.02, True))
    one.start()
    assert inserted.wait(60), errors
    with engine.connect() as connection:
        holder = connection.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'"
        )).scalar_one()
    two = threading.Thread(target=store, args=(second, 0.03, False))
    two.start()
    with engine.connect() as connection:  # wait until the second writer is blocked by the first's lock
        for _ in range(600):
            blocked = connection.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND :holder = ANY(pg_blocking_pids(pid))"), {"holder": holder}).scalar()
            connection.rollback()  # pg_stat_activity is read once per transaction
            if blocked:
                break
            connection.execute(text("SELECT pg_sleep(0.05)"))
        assert blocked, "the second writer never waited for the first"
    release.set()
    one.join(60)
    two.join(60)
    assert not errors, errors
    with sessions() as session:
        row = session.execute(text("SELECT runs, datasets, sum_x FROM job_figures WHERE job_id = :j"),
                              {"j": job_id}).one()
    assert (row.runs, row.datasets) == (3, 2) and row.sum_x == pytest.approx(0.01 + 0.02 + 0.03)
    assert_views_match(postgres_url, "two writers")


def test_writers_touching_two_jobs_in_opposite_orders_do_not_deadlock(postgres_url):
    """A worker's store marks its run done (its job), then attribution revises co-located windows of other jobs;
    another worker's store does the same the other way round. The figures are refreshed at commit, every job in one
    call in id order, so neither transaction holds one job's lock while it waits for the other's."""
    sessions = session_factory(postgres_url)
    with sessions.begin() as session:
        seed_sweep(session, name="crossed", models=[
            SeedModel("text-classification", f"hub:org/m{i}", [0.01, 0.02], datasets=["a"], pending_runs=1)
            for i in range(2)])
        jobs = session.scalars(select(Job.id).order_by(Job.id)).all()
        pending = {job: session.scalars(select(Run.id).where(Run.job_id == job, Run.status == "pending")).one()
                   for job in jobs}
    engine = create_engine(postgres_url, poolclass=NullPool)
    both, errors = threading.Barrier(2, timeout=60), []

    def store(mine: int, other: int) -> None:
        try:
            with engine.begin() as connection:
                connection.execute(update(Run).where(Run.id == pending[mine]).values(status="done"))
                both.wait()
                connection.execute(update(Measurement).where(Measurement.job_id == other).values(
                    cpu_energy_attributed_kwh=Measurement.cpu_energy_kwh / 2))
                both.wait()
        except Exception as error:  # noqa: BLE001  (reported below, from the test's thread)
            errors.append(error)

    threads = [threading.Thread(target=store, args=pair) for pair in ((jobs[0], jobs[1]), (jobs[1], jobs[0]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert not errors, errors
    with sessions() as session:
        assert session.execute(text("SELECT sum(datasets) FROM job_figures")).scalar() == 4  # 'a' and 'pending'
    assert assert_views_match(postgres_url, "crossed writers")["v_model_summary"] == 2


def test_the_migration_fills_the_tables_from_the_windows_already_stored(database_url):
    """A database with results before 0032: the upgrade computes every job's figures from the stored windows."""
    from alembic import command

    from db.migrate import alembic_config

    command.downgrade(alembic_config(database_url), "0031")
    with session_factory(database_url).begin() as session:
        seed_sweep(session, name="before", models=_random_models(random.Random(32), "b", 6))
    command.upgrade(alembic_config(database_url), "head")
    assert assert_views_match(database_url, "backfilled")["v_model_summary"] == 6
