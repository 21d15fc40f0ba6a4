"""Measurement quality arithmetic: statistics, outliers, baseline subtraction, shared-energy attribution."""

from __future__ import annotations

import math
import statistics
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from db.models import Measurement
from db.results.stats import cell_stats, outlier_flags, spread, t_quantile_975
from db.results.store import record_load, record_run
from db.session import session_factory
from tests.factories import make_reading
from tests.helpers import T0, sweep_with_claimed_job
from worker.measure.baseline import store_baseline
from worker.workloads.base import WorkDone

# scipy.stats.t.ppf(0.975, df), scipy 1.16: the reference values (beyond df 30 the old table used 1.96).
T975_REFERENCE = {1: 12.706204736174694, 2: 4.302652729749462, 3: 3.1824463052837078, 4: 2.7764451051977934,
                  30: 2.0422724563012378, 31: 2.039513446396408, 39: 2.022690920036761, 100: 1.9839715185235518,
                  1000: 1.9623390808264083}


def test_spread_matches_hand_computed_values():
    values = [1.0, 2.0, 3.0, 4.0]
    s = spread(len(values), sum(values), sum(v * v for v in values))
    assert s.mean == 2.5
    assert s.std == pytest.approx(statistics.stdev(values))  # 1.2910
    half = T975_REFERENCE[3] * statistics.stdev(values) / 2
    assert (s.ci95_low, s.ci95_high) == (pytest.approx(2.5 - half), pytest.approx(2.5 + half))
    assert s.cv == pytest.approx(statistics.stdev(values) / 2.5)
    assert spread(1, 5.0, 25.0).std is None


def test_t_quantile_is_scipys_for_any_df():
    for df, reference in T975_REFERENCE.items():
        assert t_quantile_975(df) == pytest.approx(reference, rel=1e-12)


def test_mad_flags_need_five_runs_and_survive_ties():
    assert outlier_flags([1.0, 1.0, 9.0]) == [False] * 3  # n = 3: never (a third of normal cells would be)
    assert outlier_flags([1.0, 1.1, 0.9, 9.0]) == [False] * 4
    assert outlier_flags([1.0, 1.1, 0.9, 1.05, 9.0]) == [False] * 4 + [True]
    # More than half equal: the MAD is 0, the mean absolute deviation stands in, the odd one is still flagged.
    assert outlier_flags([2.0, 2.0, 2.0, 2.0, 2.0, 9.0]) == [False] * 5 + [True]
    assert outlier_flags([2.0] * 6) == [False] * 6
    # Normal data: 3.5 small-sample-corrected MADs flag far fewer cells than 3 raw MADs did (seeded draw).
    import random

    rng = random.Random(7)
    cells = [[rng.gauss(1.0, 0.05) for _ in range(10)] for _ in range(400)]
    flagged = sum(any(outlier_flags(c)) for c in cells) / len(cells)
    assert flagged < 0.15  # 3 raw MADs: about 20% at n = 10


def test_outliers_flagged_not_dropped_and_cell_stats(sessions):
    energies = [1.0e-6, 1.1e-6, 0.9e-6, 1.05e-6, 5.0e-6]  # the last is far beyond 3 scaled MADs
    sweep_id, _, run_ids = sweep_with_claimed_job(sessions, len(energies))
    for i, (run_id, energy) in enumerate(zip(run_ids, energies, strict=True)):
        with sessions.begin() as session:
            reading = make_reading(energy, duration_s=3, started_at=T0 + timedelta(seconds=10 * i))
            record_run(session, run_id=run_id, worker_id="w1@host", reading=reading, units=WorkDone(queries=10))
    with sessions() as session:
        flags = session.scalars(select(Measurement.is_outlier).order_by(Measurement.run_id)).all()
        assert flags == [False, False, False, False, True]
        (cell,) = cell_stats(session, sweep_id=sweep_id)
        per_1k = [e * 1000 / 10 for e in energies]
        assert cell.kwh_per_1k.n == 5 and cell.outliers == 1
        assert cell.kwh_per_1k.mean == pytest.approx(statistics.mean(per_1k))
        assert cell.kwh_per_1k.std == pytest.approx(statistics.stdev(per_1k))
        assert cell.estimated_components == "cpu, ram"
        assert cell.g_co2e_per_1k_mean == pytest.approx(statistics.mean(per_1k) * 100)  # sweep intensity
        (recomputed,) = cell_stats(session, sweep_id=sweep_id, grid_intensity_g_per_kwh=56)
        assert recomputed.g_co2e_per_1k_mean == pytest.approx(statistics.mean(per_1k) * 56)


def test_baseline_subtraction(sessions):
    sweep_id, _, run_ids = sweep_with_claimed_job(sessions, 1)
    with sessions.begin() as session:  # idle: 10 s at 36 W in all = 1e-4 kWh
        idle = make_reading(1e-4, duration_s=10, started_at=T0, cpu_energy_kwh=5e-5, ram_energy_kwh=5e-5)
        baseline = store_baseline(session, worker_id="w1@host", hostname="host", reading=idle)
        assert (baseline.cpu_power_w, baseline.ram_power_w, baseline.gpu_power_w) == (18.0, 18.0, 0.0)
        reading = make_reading(3e-4, duration_s=20, started_at=T0 + timedelta(seconds=30))
        record_run(session, run_id=run_ids[0], worker_id="w1@host", reading=reading, units=WorkDone(queries=10),
                   baseline_id=baseline.id)
    with sessions() as session:
        stored = session.scalars(select(Measurement)).one()
        assert stored.idle_energy_kwh == pytest.approx(36 * 20 / 3.6e6)  # 2e-4 kWh
        (cell,) = cell_stats(session, sweep_id=sweep_id)
        assert cell.net_kwh_per_1k_mean == pytest.approx((3e-4 - 2e-4) * 1000 / 10)
        assert cell.kwh_per_1k.mean == pytest.approx(3e-4 * 1000 / 10)


def test_overlapping_windows_on_one_host_never_sum_above_the_host(sessions):
    sweep_id, job_id, run_ids = sweep_with_claimed_job(sessions, 2, workers=("w1@host", "w2@host"))
    # w1's query window 0-10 s; w2's load window 5-15 s on the same host; each read the whole machine.
    with sessions.begin() as session:
        record_run(session, run_id=run_ids[0], worker_id="w1@host", units=WorkDone(queries=10),
                   reading=make_reading(1e-5, duration_s=10, started_at=T0))
    with sessions.begin() as session:
        record_load(session, job_id=job_id, worker_id="w2@host",
                    reading=make_reading(1e-5, duration_s=10, started_at=T0 + timedelta(seconds=5)))
    with sessions() as session:
        first, second = session.scalars(select(Measurement).order_by(Measurement.started_at)).all()
        for m in (first, second):
            assert m.max_concurrent_windows == 2
            assert m.cpu_energy_attributed_kwh == pytest.approx(m.cpu_energy_kwh * 0.75)
            assert m.ram_energy_attributed_kwh == pytest.approx(m.ram_energy_kwh * 0.75)
        # Host CPU power is 5e-6 kWh / 10 s; over the 15 s union the host used 7.5e-6 kWh of CPU.
        host_cpu = 5e-6 / 10 * 15
        total = first.cpu_energy_attributed_kwh + second.cpu_energy_attributed_kwh
        assert total == pytest.approx(host_cpu)
        assert first.cpu_energy_kwh + second.cpu_energy_kwh > host_cpu  # what summing raw readings would claim
        assert math.isclose(first.gpu_energy_kwh, 0.0)


def test_windows_stored_at_the_same_instant_still_see_each_other(postgres_url):
    """Two workers of one host store overlapping windows in concurrent transactions: the host lock makes the
    second wait for the first, so neither misses the other and nothing is counted twice."""
    sessions = session_factory(postgres_url)
    _, job_id, run_ids = sweep_with_claimed_job(sessions, 1, workers=("w1@host", "w2@host"))
    first = sessions()
    first.begin()
    record_run(first, run_id=run_ids[0], worker_id="w1@host", units=WorkDone(queries=10),
               reading=make_reading(1e-5, duration_s=10, started_at=T0))
    first.flush()  # stored but not committed while the other worker writes

    def second_worker() -> None:
        with sessions.begin() as session:
            record_load(session, job_id=job_id, worker_id="w2@host",
                        reading=make_reading(1e-5, duration_s=10, started_at=T0))

    writer = threading.Thread(target=second_worker)
    writer.start()
    writer.join(timeout=1)
    assert writer.is_alive()  # waiting on the host lock, not reading a snapshot without the first window
    first.commit()
    first.close()
    writer.join(timeout=30)
    with sessions() as session:
        windows = session.scalars(select(Measurement)).all()
        assert [m.max_concurrent_windows for m in windows] == [2, 2]
        assert sum(m.cpu_energy_attributed_kwh for m in windows) == pytest.approx(windows[0].cpu_energy_kwh)
