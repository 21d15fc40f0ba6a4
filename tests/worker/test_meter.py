"""The meter on this CPU-only host: real CodeCarbon, no RAPL, no GPU."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from worker.meter import Meter, MeterError, window_flags


@pytest.fixture(scope="module")
def meter():
    meter = Meter(country_iso_code="FRA", measure_power_secs=0.5)
    yield meter
    meter.close()


def test_cpu_only_host_provenance_says_estimated(meter):
    with meter.window("query") as window:
        time.sleep(1.2)
    r = window.reading
    assert r.cpu_method in ("cpu-load-estimate", "constant")  # no RAPL here: an estimate, and it says so
    assert (r.gpu_method, r.gpu_energy_kwh) == ("none", 0.0)
    assert r.ram_method == "codecarbon-dimm-estimate"
    assert r.energy_kwh > 0 and r.duration_s == pytest.approx(1.2, abs=0.3)
    assert r.ended_at > r.started_at
    assert (r.country_iso_code, r.carbon_intensity_source) == ("FRA", "country mix")
    assert r.power_samples == 2 and not r.is_unreliable


def test_window_shorter_than_two_samples_is_flagged(meter):
    with meter.window("query") as window:
        time.sleep(0.1)
    assert window.reading.is_unreliable and window.reading.flags == "short-window"


def test_an_exception_inside_a_window_leaves_the_meter_usable(meter):
    with pytest.raises(ZeroDivisionError), meter.window("query"):
        raise ZeroDivisionError
    with meter.window("query") as window:
        time.sleep(1.1)
    assert window.reading.energy_kwh > 0


def test_counter_that_went_backwards_is_flagged():
    data = SimpleNamespace(cpu_energy=-1e-6, gpu_energy=0.0, ram_energy=1e-6)
    assert window_flags(data, power_samples=5) == ["cpu-counter-backwards"]
    assert window_flags(SimpleNamespace(cpu_energy=1e-6, gpu_energy=0.0, ram_energy=1e-6), 1) == ["short-window"]


def test_carbon_setting_is_required_never_a_silent_default():
    with pytest.raises(MeterError, match="exactly one of"):
        Meter()
    with pytest.raises(MeterError, match="exactly one of"):
        Meter(country_iso_code="USA", grid_intensity_g_per_kwh=100)


def test_explicit_grid_intensity_is_used(meter):
    explicit = Meter(grid_intensity_g_per_kwh=56.0)
    try:
        with explicit.window("query") as window:
            time.sleep(0.6)
        assert window.reading.carbon_intensity_g_per_kwh == pytest.approx(56.0)
        assert window.reading.carbon_intensity_source == "explicit"
    finally:
        explicit.close()
