"""The report's power-limit table: one group per (task, model, other axes) with a limited cell, cells by limit."""

from __future__ import annotations

from scheduler.report.html_parts import Table
from scheduler.report.power_limits import power_limit_groups, power_limit_section


def cell(job_id: int, cell_key: str, kwh_per_1k: float, p95_s: float, model: str = "tiny:bert") -> dict:
    return {"job_id": job_id, "task": "fill-mask", "model": model, "cell_key": cell_key, "kwh_per_1k_mean": kwh_per_1k,
            "gpu_kwh_per_1k_mean": kwh_per_1k / 2, "latency_p50_s_mean": p95_s / 2, "latency_p95_s_mean": p95_s,
            "throughput_queries_per_s_mean": 1 / p95_s}


def test_cells_are_grouped_by_their_other_axes_and_ordered_by_limit():
    models = [cell(1, "batch_size=1 power_limit_w=450", 0.4, 0.2), cell(2, "batch_size=1 power_limit_w=300", 0.3, 0.3),
              cell(3, "batch_size=8 power_limit_w=300", 0.1, 0.9), cell(4, "", 1.0, 0.1, model="tiny:gpt2")]
    limits = {1: (450.0, 449.0), 2: (300.0, 300.0), 3: (300.0, 300.0), 4: (None, None)}
    groups = power_limit_groups(models, limits)
    assert [(g["model"], g["other_axes"]) for g in groups] == [("tiny:bert", "batch_size=1"),
                                                               ("tiny:bert", "batch_size=8")]  # gpt2: no limit
    first = groups[0]["points"]
    assert [(p["power_limit_w"], p["power_limit_read_w"], p["wh_per_query"], p["latency_p95_s"]) for p in first] == \
        [(300.0, 300.0, 0.3, 0.3), (450.0, 449.0, 0.4, 0.2)]
    section = power_limit_section(groups)
    assert isinstance(section, Table) and len(section.rows) == 3
    assert power_limit_section([]) is None


def test_a_cell_without_a_limit_beside_limited_ones_shows_as_found():
    models = [cell(1, "power_limit_w=300", 0.3, 0.3), cell(2, "power_limit_w=None", 0.5, 0.2)]
    [group] = power_limit_groups(models, {1: (300.0, 300.0), 2: (None, None)})
    assert [p["power_limit_w"] for p in group["points"]] == [None, 300.0]
    assert power_limit_section([group]).rows[0][3] == "as found"
