"""The headline energy (own GPU + attributed CPU and RAM) in stored rows and every view; per-cell statistics
(v_cell_summary) against scipy's Student t, on SQLite and Postgres."""

from __future__ import annotations

import math
import statistics
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from db.models import Measurement
from db.results.stats import cell_stats, headline_kwh
from db.results.store import record_run
from db.results.views import cell_rows, model_rows, progress_row, task_rows
from tests.factories import make_reading
from tests.helpers import T0, sweep_with_claimed_job
from tests.results_data import INTENSITY_G_PER_KWH, SeedModel, seed_sweep
from worker.workloads.base import WorkDone


def test_stored_figure_is_the_headline_and_follows_attribution(sessions):
    """Two workers of one host overlap for half of each window: each window's CPU and RAM count 3/4, and the
    first window's stored figure is revised when the second arrives."""
    sweep_id, _, run_ids = sweep_with_claimed_job(sessions, 2, workers=("w1@host", "w2@host"))
    for run_id, worker, offset in ((run_ids[0], "w1@host", 0), (run_ids[1], "w2@host", 5)):
        with sessions.begin() as session:
            reading = make_reading(1e-5, duration_s=10, started_at=T0 + timedelta(seconds=offset),
                                   gpu_energy_kwh=2e-6, cpu_energy_kwh=5e-6, ram_energy_kwh=3e-6)
            record_run(session, run_id=run_id, worker_id=worker, reading=reading, units=WorkDone(queries=10))
    expected = (2e-6 + 0.75 * 8e-6) * 1000 / 10
    with sessions() as session:
        windows = session.scalars(select(Measurement).order_by(Measurement.run_id)).all()
        assert [m.kwh_per_1k_queries for m in windows] == [pytest.approx(expected)] * 2
        assert [headline_kwh(m) * 100 for m in windows] == [pytest.approx(expected)] * 2
        runs = session.execute(text(
            "SELECT energy_kwh, cpu_energy_kwh, gpu_energy_kwh, kwh_per_1k_queries, energy_basis, node_energy_kwh, "
            "node_cpu_energy_kwh, node_kwh_per_1k_queries, emissions_kg, node_emissions_kg, max_concurrent_windows "
            "FROM v_runs WHERE sweep_id = :s ORDER BY run_id"), {"s": sweep_id}).all()
        (task,) = task_rows(session, sweep_id=sweep_id)
        (model,) = model_rows(session, sweep_id=sweep_id)
        progress = progress_row(session, sweep_id=sweep_id)
    for row in runs:
        assert row[0] == pytest.approx(expected / 100) and row[1] == pytest.approx(0.75 * 5e-6)
        assert row[2] == pytest.approx(2e-6) and row[3] == pytest.approx(expected) and row[4] == "attributed"
        assert (row[5], row[6], row[7]) == (pytest.approx(1e-5), pytest.approx(5e-6), pytest.approx(1e-5 * 100))
        assert row[8] == pytest.approx(row[0] * 0.1) and row[9] == pytest.approx(1e-6) and row[10] == 2
    assert task["kwh_per_1k_mean"] == pytest.approx(expected) and task["node_kwh_per_1k_mean"] == pytest.approx(1e-3)
    assert task["energy_kwh_total"] == pytest.approx(2 * expected / 100) and task["node_wide_runs"] == 0
    assert model["kwh_per_1k_median"] == pytest.approx(expected)
    assert model["node_energy_kwh_total"] == pytest.approx(2e-5)
    assert progress["query_energy_kwh_total"] == pytest.approx(2 * expected / 100)
    assert progress["node_query_energy_kwh_total"] == pytest.approx(2e-5)


def test_views_use_attributed_energy_and_say_where_it_is_node_wide(sessions):
    values = [0.010, 0.020, 0.030]
    with sessions.begin() as session:
        sweep_id = seed_sweep(session, name="headline", models=[SeedModel("fill-mask", "hub:org/a", values,
                                                                          idle_share=None)])
        # The first two windows were attributed half their CPU and RAM (0.2 and 0.1 of the reading); the third
        # has only its node-wide reading (like an imported log).
        session.execute(text("UPDATE measurements SET cpu_energy_attributed_kwh = cpu_energy_kwh / 2, "
                             "ram_energy_attributed_kwh = ram_energy_kwh / 2 WHERE phase = 'query' AND id IN "
                             "(SELECT id FROM measurements WHERE phase = 'query' ORDER BY id LIMIT 2)"))
    headline = [v * 0.85 for v in values[:2]] + [values[2]]  # gpu 0.7 + (0.2 + 0.1) / 2
    with sessions() as session:
        basis = session.execute(text("SELECT energy_basis FROM v_runs WHERE sweep_id = :s ORDER BY run_id"),
                                {"s": sweep_id}).scalars().all()
        (task,) = task_rows(session, sweep_id=sweep_id)
        (cell,) = cell_rows(session, sweep_id=sweep_id)
    assert basis == ["attributed", "attributed", "node-wide"]
    assert task["kwh_per_1k_mean"] == pytest.approx(statistics.mean(headline))
    assert task["kwh_per_1k_std_pooled"] == pytest.approx(statistics.stdev(headline))
    assert task["node_kwh_per_1k_model_mean"] == pytest.approx(statistics.mean(values))
    assert task["g_co2e_per_1k_mean"] == pytest.approx(statistics.mean(headline) * INTENSITY_G_PER_KWH)
    assert (task["node_wide_runs"], cell["node_wide_runs"]) == (1, 1)
    assert cell["gpu_kwh_per_1k_mean"] == pytest.approx(statistics.mean(values) * 0.7)


@pytest.mark.parametrize("n", [2, 3, 31, 40])
def test_cell_summary_confidence_intervals_match_scipy(sessions, n):
    from scipy.stats import t

    values = [0.01 * (1 + 0.1 * math.sin(i)) for i in range(n)]
    with sessions.begin() as session:
        sweep_id = seed_sweep(session, name=f"cells-{n}", models=[SeedModel("fill-mask", "hub:org/a", values)])
    with sessions() as session:
        (row,) = cell_rows(session, sweep_id=sweep_id)
        (cell,) = cell_stats(session, sweep_id=sweep_id)
    mean, std = statistics.mean(values), statistics.stdev(values)
    half = float(t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    assert row["runs"] == n and row["t_975"] == pytest.approx(float(t.ppf(0.975, n - 1)), rel=1e-7)
    assert (row["kwh_per_1k_mean"], row["kwh_per_1k_std"]) == (pytest.approx(mean), pytest.approx(std))
    assert row["kwh_per_1k_ci95_low"] == pytest.approx(mean - half, rel=1e-7)
    assert row["kwh_per_1k_ci95_high"] == pytest.approx(mean + half, rel=1e-7)
    assert row["kwh_per_1k_cv"] == pytest.approx(std / mean)
    assert cell.kwh_per_1k.ci95_low == row["kwh_per_1k_ci95_low"] and cell.kwh_per_1k.n == n



def test_plan_estimates_use_the_headline(sessions):
    from db.results.estimates import earlier_estimates

    with sessions.begin() as session:
        seed_sweep(session, name="earlier", models=[SeedModel("fill-mask", "hub:org/a", [0.010, 0.030])])
        session.execute(text("UPDATE measurements SET cpu_energy_attributed_kwh = 0, ram_energy_attributed_kwh = 0"))
    with sessions() as session:
        estimate = earlier_estimates(session, hardware_class="a100")[("fill-mask", "hub:org/a", "task-specific")]
    # 1,000 queries a window: kWh per query = GPU (0.7 of the reading) / 1000; the load window likewise.
    assert estimate.kwh_per_query == pytest.approx(0.7 * 0.020 / 1000)
    assert estimate.load_kwh == pytest.approx(0.7 * 0.0005)
