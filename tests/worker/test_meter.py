"""The meter on this CPU-only host: real CodeCarbon, no RAPL, no GPU (the simulated node's GPUs: test_meter_gpu)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from worker.measure.meter import Meter, MeterError, window_flags


@pytest.fixture(scope="module")
def meter():
    meter = Meter(country_iso_code="FRA", gpu_ids=[])
    yield meter
    meter.close()


def test_cpu_only_host_provenance_says_estimated(meter):
    with meter.window("query") as window:
        time.sleep(2.1)
    r = window.reading
    assert r.cpu_method in ("cpu-load-estimate", "constant")  # no RAPL here: an estimate, and it says so
    assert (r.gpu_method, r.gpu_energy_kwh, r.gpu_count, r.gpu_model, r.gpu_uuid) == ("none", 0.0, 0, None, None)
    assert r.ram_method == "codecarbon-dimm-estimate"
    assert r.energy_kwh > 0 and r.duration_s == pytest.approx(2.1, abs=0.3)
    assert r.ended_at > r.started_at
    assert (r.country_iso_code, r.carbon_intensity_source, r.pue) == ("FRA", "country mix", 1.0)
    # Powers are the window's energy over its duration, not CodeCarbon's averages since the tracker was made.
    assert r.cpu_power_w == pytest.approx(r.cpu_energy_kwh * 3.6e6 / r.duration_s)
    assert r.ram_power_w == pytest.approx(r.ram_energy_kwh * 3.6e6 / r.duration_s)
    assert r.cpu_tdp_w and r.cpu_power_w <= r.cpu_tdp_w * 1.01  # the TDP the estimate used is stored
    # This VM's "AMD EPYC" is not in CodeCarbon's table: its TDP is the generic fallback, and the window says so.
    assert "cpu-generic-tdp" in (r.flags or "") and not r.is_unreliable
    assert r.gpu_temperature_start_c is None and r.gpu_throttle_end is None  # no GPU: no device state


def test_window_shorter_than_two_load_samples_is_flagged(meter):
    with meter.window("query") as window:
        time.sleep(0.1)
    assert window.reading.is_unreliable and window.reading.flags.split(",")[0] == "short-window"


def test_an_exception_inside_a_window_leaves_the_meter_usable(meter):
    with pytest.raises(ZeroDivisionError), meter.window("query"):
        raise ZeroDivisionError
    with meter.window("query") as window:
        time.sleep(0.2)
    assert window.reading.energy_kwh > 0 and window.reading.duration_s < 0.5


def test_a_failed_window_end_does_not_leak_into_the_next_window():
    """end_window raising before CodeCarbon's stop_task (here: the device synchronisation) used to leave its task
    open; the next start_task was refused, and the next window reported energy counted from the failed start."""
    calls = {"n": 0}

    def synchronize():
        calls["n"] += 1
        if calls["n"] == 2:  # the first window's end
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

    meter = Meter(grid_intensity_g_per_kwh=100.0, gpu_ids=[], synchronize=synchronize)
    try:
        meter.begin_window("query")
        time.sleep(1.0)
        with pytest.raises(RuntimeError, match="illegal memory access"):
            meter.end_window("query")
        assert meter._tracker.active_task is None  # closed all the same
        with meter.window("query") as window:
            time.sleep(0.3)
        r = window.reading
        # Its own span: at least its sleep (CodeCarbon's clock is read outside it), and far from the 1.3 s it
        # would last with the failed window's second counted too, however long a loaded machine takes.
        assert 0.3 <= r.duration_s < 0.9
        assert r.cpu_energy_kwh * 3.6e6 <= 1.2 * r.cpu_tdp_w * r.duration_s
        assert "previous-window-open" not in (r.flags or "")
        # A window begun while one is still open (a caller that never ended it) starts clean, and says so.
        meter.begin_window("query")
        time.sleep(0.5)
        meter.begin_window("query")
        time.sleep(0.2)
        late = meter.end_window("query")
        assert late.duration_s < 0.45 and "previous-window-open" in late.flags and late.is_unreliable
    finally:
        meter.close()


def test_codecarbon_settings_outside_the_project_change_nothing(tmp_path, monkeypatch):
    """CODECARBON_* variables and .codecarbon.config files (home and working directory) are not read."""
    monkeypatch.setenv("CODECARBON_PUE", "1.5")
    monkeypatch.setenv("CODECARBON_FORCE_CPU_POWER", "500")
    monkeypatch.setenv("CODECARBON_COUNTRY_ISO_CODE", "USA")
    monkeypatch.setenv("CODECARBON_TRACKING_MODE", "process")
    (tmp_path / ".codecarbon.config").write_text("[codecarbon]\npue = 2.0\nforce_ram_power = 300\n"
                                                 "cloud_provider = gcp\ncloud_region = us-east1\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    meter = Meter(country_iso_code="FRA", gpu_ids=[])
    try:
        held = meter._tracker.held_settings()
        assert (held["pue"], held["force_cpu_power"], held["force_ram_power"]) == (1.0, None, None)
        with meter.window("query") as window:
            time.sleep(0.3)
        r = window.reading
        assert (r.pue, r.country_iso_code, r.tracking_mode, r.ram_method) == \
            (1.0, "FRA", "machine", "codecarbon-dimm-estimate")
        assert r.energy_kwh == pytest.approx(r.cpu_energy_kwh + r.gpu_energy_kwh + r.ram_energy_kwh)
        assert r.cpu_power_w < 100 and r.ram_power_w < 100  # not the 500 W and 300 W planted above
    finally:
        meter.close()
    declared = Meter(grid_intensity_g_per_kwh=100.0, gpu_ids=[], pue=1.2)  # a PUE the sweep declares applies
    try:
        with declared.window("query") as window:
            time.sleep(0.2)
        assert window.reading.pue == 1.2
    finally:
        declared.close()


def test_codecarbon_warnings_in_a_window_become_its_flags():
    meter = Meter(country_iso_code="GER", gpu_ids=[])  # a code the spec refuses; the meter keeps what CodeCarbon says
    try:
        with meter.window("query") as window:
            time.sleep(0.2)
        r = window.reading
        assert "carbon-world-average" in r.flags.split(",")
        assert "using world average" in r.codecarbon_warnings
        assert r.carbon_intensity_g_per_kwh == pytest.approx(475, rel=0.01)
    finally:
        meter.close()


def test_flags_follow_the_counters_real_limits():
    def data(duration_s, cpu=1e-6, gpu=1e-6):
        return SimpleNamespace(duration=duration_s, cpu_energy=cpu, gpu_energy=gpu, ram_energy=1e-6)

    counter = dict(cpu_method="rapl", gpu_method="nvml-energy-counter")
    assert window_flags(data(0.3), **counter) == ["short-window", "gpu-counter-coarse"]  # < 5 updates of 100 ms
    assert window_flags(data(5.0), **counter) == ["gpu-counter-coarse"]  # +-100 ms at each end: over 2%
    assert window_flags(data(10.0), **counter) == []
    assert window_flags(data(1.5), cpu_method="cpu-load-estimate") == ["short-window"]  # one load sample a second


def test_the_host_is_sampled_through_the_window_and_the_samples_add_up(meter):
    """No RAPL here, so no wrap: one reading a second at most, and the series sums to CodeCarbon's own figures."""
    with meter.window("query") as window:
        time.sleep(2.5)
    r = window.reading
    samples = r.host_samples
    assert len(samples["t_s"]) >= 3 and samples["t_s"] == sorted(samples["t_s"])
    gaps = [b - a for a, b in zip([0.0, *samples["t_s"]], samples["t_s"], strict=False)]
    assert max(gaps) <= 1.2
    assert sum(samples["cpu_j"]) == pytest.approx(r.cpu_energy_kwh * 3.6e6, rel=1e-4)
    assert sum(samples["ram_j"]) == pytest.approx(r.ram_energy_kwh * 3.6e6, rel=1e-4)


def test_carbon_setting_is_required_never_a_silent_default():
    with pytest.raises(MeterError, match="exactly one of"):
        Meter()
    with pytest.raises(MeterError, match="exactly one of"):
        Meter(country_iso_code="USA", grid_intensity_g_per_kwh=100)
    with pytest.raises(MeterError, match="PUE is between 1.0 and 3.0"):
        Meter(grid_intensity_g_per_kwh=100, pue=0.5)


def test_explicit_grid_intensity_is_used():
    explicit = Meter(grid_intensity_g_per_kwh=56.0, gpu_ids=[])
    try:
        with explicit.window("query") as window:
            time.sleep(0.3)
        assert window.reading.carbon_intensity_g_per_kwh == pytest.approx(56.0)
        assert window.reading.carbon_intensity_source == "explicit"
    finally:
        explicit.close()
