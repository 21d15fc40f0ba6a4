"""The energy of a window, as the views compute it: node-wide until 0014, the headline since.

Node-wide (0007): CodeCarbon's reading of the whole node, `m.energy_kwh`, net of the node's idle.

Headline (0014): the window's own energy, its pinned GPU plus its attributed share of the host's CPU and RAM.
A window with neither attributed column (imported CodeCarbon logs, rows stored before attribution, a worker
without host identity) has only its node-wide reading, and its headline is that; a window whose attributed
columns are only partly set uses the node-wide reading for the missing component. Emissions follow the
headline at the window's own intensity; idle is attributed the same way as the energy. db.results.stats
computes the same headline in Python.
"""

from __future__ import annotations

PER_1K = "* 1000.0 / NULLIF(m.n_queries, 0)"

# Node-wide (0007 to 0013).
NODE_NET_KWH = "(m.energy_kwh - m.idle_energy_kwh)"
NODE_NET_PER_1K = f"({NODE_NET_KWH} * 1000.0 / NULLIF(m.n_queries, 0))"
NODE_G_PER_1K = "(m.emissions_kg * 1000000.0 / NULLIF(m.n_queries, 0))"
# The latest load window of each job (a retried job loads its model again).
NODE_LATEST_LOAD = """(SELECT job_id, energy_kwh, duration_s FROM measurements
    WHERE id IN (SELECT max(id) FROM measurements WHERE phase = 'load' GROUP BY job_id))"""

# Headline (0014 on).
NOT_ATTRIBUTED = "(m.cpu_energy_attributed_kwh IS NULL AND m.ram_energy_attributed_kwh IS NULL)"
CPU_KWH = "COALESCE(m.cpu_energy_attributed_kwh, m.cpu_energy_kwh)"
RAM_KWH = "COALESCE(m.ram_energy_attributed_kwh, m.ram_energy_kwh)"
HEADLINE_KWH = f"(CASE WHEN {NOT_ATTRIBUTED} THEN m.energy_kwh ELSE m.gpu_energy_kwh + {CPU_KWH} + {RAM_KWH} END)"
BASIS = f"(CASE WHEN {NOT_ATTRIBUTED} THEN 'node-wide' ELSE 'attributed' END)"
EMISSIONS_KG = (f"(CASE WHEN m.energy_kwh > 0 THEN m.emissions_kg * {HEADLINE_KWH} / m.energy_kwh "
                "ELSE m.emissions_kg END)")
_CPU_SHARE = "COALESCE(m.cpu_energy_attributed_kwh / NULLIF(m.cpu_energy_kwh, 0), 1.0)"
_RAM_SHARE = "COALESCE(m.ram_energy_attributed_kwh / NULLIF(m.ram_energy_kwh, 0), 1.0)"
# Needs BASELINE. A sharded run's sum row whose shards used several baselines has none: its attributed idle is
# unknown (NULL), its node-wide idle is the shards' sum.
IDLE_KWH = (f"(CASE WHEN m.idle_energy_kwh IS NULL THEN NULL WHEN {NOT_ATTRIBUTED} THEN m.idle_energy_kwh "
            f"WHEN b.id IS NULL THEN NULL ELSE (b.gpu_power_w + b.cpu_power_w * {_CPU_SHARE} "
            f"+ b.ram_power_w * {_RAM_SHARE}) * m.duration_s / 3600000.0 END)")
NET_KWH = f"({HEADLINE_KWH} - {IDLE_KWH})"
BASELINE = "LEFT JOIN idle_baselines b ON b.id = m.baseline_id"
LATEST_LOAD = f"""(SELECT m.job_id AS job_id, {HEADLINE_KWH} AS energy_kwh, m.duration_s AS duration_s
    FROM measurements m
    WHERE m.id IN (SELECT max(id) FROM measurements WHERE phase = 'load' GROUP BY job_id))"""
