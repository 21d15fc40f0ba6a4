"""Test data builders shared across test modules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from worker.measure.meter import Reading


def make_reading(energy_kwh: float = 2e-6, duration_s: float = 1.0, started_at: datetime | None = None,
                 **overrides) -> Reading:
    """A plausible CPU-host reading: half CPU, half RAM, explicit grid intensity of 100 g/kWh."""
    started_at = started_at or datetime.now(UTC)
    fields = dict(
        started_at=started_at, ended_at=started_at + timedelta(seconds=duration_s), duration_s=duration_s,
        energy_kwh=energy_kwh, cpu_energy_kwh=energy_kwh / 2, gpu_energy_kwh=0.0, ram_energy_kwh=energy_kwh / 2,
        emissions_kg=energy_kwh * 0.1, cpu_power_w=5.0, gpu_power_w=0.0, ram_power_w=3.0, cpu_utilization_pct=50.0,
        gpu_utilization_pct=None, ram_utilization_pct=10.0, cpu_model="cpu", cpu_count=2, gpu_model=None,
        gpu_count=0, ram_total_gb=24.0, cpu_method="cpu-load-estimate", gpu_method="none",
        ram_method="codecarbon-dimm-estimate", tracking_mode="machine", codecarbon_version="3",
        country_iso_code=None, region=None, carbon_intensity_g_per_kwh=100.0, carbon_intensity_source="explicit",
        is_unreliable=duration_s < 2, flags="short-window" if duration_s < 2 else None,
    )
    return Reading(**(fields | overrides))
