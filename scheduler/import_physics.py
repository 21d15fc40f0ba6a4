"""What no CodeCarbon row can say, because no machine can do it: checked per row before anything is imported.

Why a module of its own: the reader (scheduler/importer.py) checks each cell for itself (a number, finite, in
range); a row can still be impossible as a whole: 1,000 kWh in 12.5 seconds (288 MW), energy in no time at all,
a total smaller than its components, a window that ends in the future. Such a row is a damaged file or a
mixed-up column, and imported it would become a headline figure.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# A node of 8 GPUs draws about 10 kW; one CodeCarbon tracker reads one machine. 100 kW is ten such nodes.
MAX_POWER_W = 100_000.0
COMPONENTS = ("cpu_energy", "gpu_energy", "ram_energy")
SUM_TOLERANCE = 0.01  # CodeCarbon writes energy_consumed = cpu + gpu + ram; printed values are rounded
SUM_FLOOR_KWH = 1e-9
FUTURE_SLACK = timedelta(days=1)  # clocks and zones disagree by hours, not by days


def row_problem(numbers: dict[str, float | None], ended_at: datetime | None,
                now: datetime | None = None) -> tuple[str, str] | None:
    """(column, why) for the first thing in the row that cannot have happened, or None."""
    duration = numbers.get("duration") or 0.0
    for name in ("energy_consumed", *COMPONENTS):
        energy = numbers.get(name)
        if not energy:
            continue
        if duration <= 0:
            return name, f"{energy:g} kWh in a window of {duration:g} s"
        watts = energy * 3.6e6 / duration
        if watts > MAX_POWER_W:
            return name, (f"{energy:g} kWh in {duration:g} s is {watts:,.0f} W on average; no machine one tracker "
                          f"reads draws more than {MAX_POWER_W:,.0f} W")
    for name in ("cpu_power", "gpu_power", "ram_power"):
        power = numbers.get(name)
        if power is not None and power > MAX_POWER_W:
            return name, f"{power:g} W; no machine one tracker reads draws more than {MAX_POWER_W:,.0f} W"
    parts = [numbers.get(name) for name in COMPONENTS]
    total = numbers.get("energy_consumed")
    if total is not None and all(part is not None for part in parts):
        summed = sum(parts)
        # Less than its own parts, which are never negative: impossible. (More than their sum is only odd: older
        # files and hand-made ones leave components out, so it is not refused.)
        if summed - total > max(SUM_FLOOR_KWH, SUM_TOLERANCE * summed):
            return "energy_consumed", (f"{total:g} kWh is less than cpu_energy + gpu_energy + ram_energy = "
                                       f"{summed:g} kWh")
    now = now or datetime.now(UTC)
    if ended_at is not None and ended_at > now + FUTURE_SLACK:
        return "timestamp", f"{ended_at:%Y-%m-%d %H:%M} UTC is in the future"
    return None
