"""Attribution arithmetic: sum(dE_host / k) over a window's samples conserves the host's energy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from db.models import Measurement
from db.results.attribution import Concurrency, share
from db.results.store import record_load, record_run
from tests.factories import make_reading
from tests.helpers import sweep_with_claimed_job
from worker.workloads.base import WorkDone

T0 = datetime(2026, 1, 1, tzinfo=UTC)
J = 3.6e6  # J per kWh


def series(start_s: float, end_s: float, power_w, step_s: float = 1.0) -> list[tuple[float, float, float]]:
    """Samples (end offset, CPU kWh, RAM kWh) every `step_s` of a window over [start_s, end_s]; RAM = CPU / 10."""
    out, t = [], start_s
    while t < end_s - 1e-9:
        right = min(t + step_s, end_s)
        energy_j = _integral(power_w, t, right)
        out.append((right - start_s, energy_j / J, energy_j / J / 10))
        t = right
    return out


def _integral(power_w, left: float, right: float, parts: int = 200) -> float:
    width = (right - left) / parts
    return sum(power_w(left + (i + 0.5) * width) for i in range(parts)) * width


def test_the_issues_example_attributes_what_the_host_drew():
    # A = [0, 100], B = [50, 150]; the host draws 100 W with one window open and 300 W with both.
    def power_w(t: float) -> float:
        return 300.0 if 50 <= t < 100 else 100.0

    concurrency = Concurrency([(0, 100), (50, 150)])
    a = share(0, series(0, 100, power_w), concurrency)
    b = share(50, series(50, 150, power_w), concurrency)
    assert a.cpu_kwh * J == pytest.approx(12_500) and b.cpu_kwh * J == pytest.approx(12_500)
    assert (a.cpu_kwh + b.cpu_kwh) * J == pytest.approx(25_000)  # what the host drew; the old rule gave 30 kJ
    assert (a.ram_kwh + b.ram_kwh) * J == pytest.approx(2_500)
    assert a.most == b.most == 2


def test_concurrency_counts_windows_and_touching_is_not_overlapping():
    k = Concurrency([(0, 10), (10, 20), (4, 6), (4, 6)])
    assert k.mean_inverse(0, 4) == pytest.approx(1.0) and k.mean_inverse(4, 6) == pytest.approx(1 / 3)
    assert k.mean_inverse(0, 10) == pytest.approx((8 + 2 / 3) / 10)
    assert k.most(0, 10) == 3 and k.most(10, 20) == 1 and k.most(6, 10) == 1
    assert k.mean_inverse(9, 11) == pytest.approx(1.0)  # one window ends as the other starts


def test_a_window_without_samples_is_one_interval():
    # Old rows: energy spread evenly, which is the time-average of 1/k (the rule before samples).
    concurrency = Concurrency([(0, 10), (5, 20)])
    attributed = share(0, [(10.0, 10 / J, 2 / J)], concurrency)
    assert attributed.cpu_kwh * J == pytest.approx(7.5) and attributed.ram_kwh * J == pytest.approx(1.5)


def test_the_stored_total_is_what_is_shared_the_samples_say_when():
    # Samples rounded to 6 digits sum to a hair less than the stored reading: a window alone keeps all of it.
    alone = Concurrency([(0, 3)])
    samples = [(1.0, 1.00000049 / J, 0.1 / J), (2.0, 2.0 / J, 0.1 / J), (3.0, 3.0 / J, 0.1 / J)]
    assert share(0, samples, alone, totals=(6.0000005 / J, 0.3 / J)).cpu_kwh * J == pytest.approx(6.0000005, rel=1e-12)
    # Shared for its last second only: the third sample's half goes, by the samples' weights.
    shared = Concurrency([(0, 3), (2, 5)])
    attributed = share(0, samples, shared, totals=(12 / J, 0.6 / J))
    assert attributed.cpu_kwh * J == pytest.approx(12 * (3 + 1.5) / 6.0000005)
    assert attributed.ram_kwh * J == pytest.approx(0.6 * 2.5 / 3)
    nothing = [(1.0, 0.0, 0.0), (3.0, 0.0, 0.0)]  # nothing read in the samples: spread evenly over time
    assert share(0, nothing, shared, totals=(3 / J, 0.0)).cpu_kwh * J == pytest.approx(3 * (2 + 0.5) / 3)


windows_st = st.lists(st.tuples(st.integers(0, 60), st.integers(1, 40)), min_size=1, max_size=8)
power_st = st.lists(st.floats(5.0, 400.0), min_size=100, max_size=100)


@settings(max_examples=60, deadline=None)
@given(windows=windows_st, powers=power_st)
def test_attributed_energy_adds_up_to_the_host_energy_over_the_union(windows, powers):
    """Any overlap pattern and any host power (constant per second): the shares sum to the energy drawn while any
    window was open, and no window gets more than it read."""
    def power_w(t: float) -> float:
        return powers[int(t)]

    spans = [(start, start + length) for start, length in windows]
    concurrency = Concurrency(spans)
    shares = [share(s, series(s, e, power_w), concurrency) for s, e in spans]
    covered = [t for t in range(100) if any(s <= t < e for s, e in spans)]
    host_j = sum(powers[t] for t in covered)
    assert sum(s.cpu_kwh for s in shares) * J == pytest.approx(host_j, rel=1e-9)
    for (s, e), attributed in zip(spans, shares, strict=True):
        assert attributed.cpu_kwh * J <= _integral(power_w, s, e, parts=(e - s)) * (1 + 1e-9)


def test_samples_on_different_clocks_conserve_within_a_sample():
    # Two workers' samplers tick at their own instants (0.37 s apart); power steps when the second window opens.
    def power_w(t: float) -> float:
        return 250.0 if 3.2 <= t < 9.7 else 80.0

    concurrency = Concurrency([(0.0, 9.7), (3.2, 14.0)])
    a = share(0.0, series(0.0, 9.7, power_w, step_s=0.5), concurrency)
    b = share(3.2, series(3.2, 14.0, power_w, step_s=0.5), concurrency)
    host_j = _integral(power_w, 0.0, 14.0, parts=14_000)
    assert (a.cpu_kwh + b.cpu_kwh) * J == pytest.approx(host_j, rel=0.02)


def _with_samples(start_s: float, end_s: float, power_w: float) -> dict:
    reading = make_reading(1.0, duration_s=end_s - start_s, started_at=T0 + timedelta(seconds=start_s))
    samples = series(0.0, end_s - start_s, lambda t: power_w)
    host_samples = {"t_s": [t for t, _, _ in samples], "cpu_j": [c * J for _, c, _ in samples],
                    "ram_j": [r * J for _, _, r in samples]}
    total = sum(c for _, c, _ in samples)
    return {"reading": make_reading(total * 1.1, duration_s=end_s - start_s, started_at=reading.started_at,
                                    cpu_energy_kwh=total, ram_energy_kwh=total / 10, host_samples=host_samples)}


def test_stored_windows_are_attributed_again_when_an_overlapping_one_arrives(sessions):
    """The database path: samples stored with the window, earlier windows revised, the sum is the host's."""
    _, job_id, run_ids = sweep_with_claimed_job(sessions, 2, workers=("w1@host", "w2@host"))
    with sessions.begin() as session:  # w1: 0-10 s at 100 W, alone so far
        record_run(session, run_id=run_ids[0], worker_id="w1@host", units=WorkDone(queries=10),
                   **_with_samples(0, 10, 100.0))
    with sessions() as session:
        alone = session.scalars(select(Measurement)).one()
        assert alone.cpu_energy_attributed_kwh * J == pytest.approx(1000.0)
        # exactly its own reading: times are taken from a local origin, not as epoch floats (2e-7 s resolution)
        assert alone.cpu_energy_attributed_kwh == pytest.approx(alone.cpu_energy_kwh, rel=1e-12)
        assert alone.ram_energy_attributed_kwh == pytest.approx(alone.ram_energy_kwh, rel=1e-12)
        assert len(alone.host_samples["t_s"]) == 10
    with sessions.begin() as session:  # w2: 5-15 s; the host drew 100 W throughout
        record_load(session, job_id=job_id, worker_id="w2@host", **_with_samples(5, 15, 100.0))
    with sessions() as session:
        first, second = session.scalars(select(Measurement).order_by(Measurement.started_at)).all()
        assert first.cpu_energy_attributed_kwh * J == pytest.approx(750.0)  # 500 J alone + 500 J / 2
        assert second.cpu_energy_attributed_kwh * J == pytest.approx(750.0)
        assert (first.cpu_energy_attributed_kwh + second.cpu_energy_attributed_kwh) * J == pytest.approx(1500.0)
        assert (first.ram_energy_attributed_kwh + second.ram_energy_attributed_kwh) * J == pytest.approx(150.0)
        assert first.max_concurrent_windows == second.max_concurrent_windows == 2
