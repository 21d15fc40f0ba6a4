"""Cells measured under a power limit (the `power_limit_w` axis): energy per query and latency against the limit.

The limit asked for is read from jobs.power_limit_w and the limit NVML read back from the windows
(measurements.power_limit_read_w, migration 0027); the figures are the model summary's (v_model_summary rows,
one per cell). One group per (task, model, the cell's other axes) with at least one limited cell, its cells in
order of the limit ("as found" first: the GPU's own limit). kWh per 1,000 queries is Wh per query.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Job, Measurement
from scheduler.report.html_parts import cells_by_other_axes, fmt, table

HEADERS = ["task", "model", "other axes", "limit W", "read back W", "Wh / query", "GPU Wh / query", "p50 latency s",
           "p95 latency s", "queries/s"]


def limits_by_job(session: Session, *, sweep_id: int) -> dict[int, tuple[float | None, float | None]]:
    """job id -> (limit asked for, mean limit read back over its query windows), for the sweep's limited jobs.

    A sweep with no limited job shows no limits (power_limit_groups): its windows are not read at all, which a
    million-run sweep's report would otherwise do for nothing."""
    if session.scalar(select(func.count()).where(Job.sweep_id == sweep_id, Job.power_limit_w.is_not(None))) == 0:
        return {}
    read_back = (select(Measurement.job_id, func.avg(Measurement.power_limit_read_w).label("read_w"))
                 .join(Job, Job.id == Measurement.job_id)  # this sweep's windows only, not every sweep's
                 .where(Job.sweep_id == sweep_id, Measurement.phase == "query").group_by(Measurement.job_id)
                 .subquery())
    rows = session.execute(select(Job.id, Job.power_limit_w, read_back.c.read_w)
                           .outerjoin(read_back, read_back.c.job_id == Job.id)
                           .where(Job.sweep_id == sweep_id))
    return {job_id: (limit, read_w) for job_id, limit, read_w in rows}


def power_limit_groups(models: list[dict[str, Any]],
                       limits: dict[int, tuple[float | None, float | None]]) -> list[dict[str, Any]]:
    """Per (task, model, other axes) with a limited cell: each cell's limit, energy per query and latency."""
    found = []
    if not any(limit is not None for limit, _ in limits.values()):
        return found  # no limited cell, no group (below: every group would be skipped)
    for (task, model, rest), cells in cells_by_other_axes(models, "power_limit_w"):
        points = []
        for cell in cells:
            limit_w, read_w = limits.get(cell["job_id"], (None, None))
            points.append({"power_limit_w": limit_w, "power_limit_read_w": read_w,
                           "wh_per_query": cell.get("kwh_per_1k_mean"),
                           "gpu_wh_per_query": cell.get("gpu_kwh_per_1k_mean"),
                           "latency_p50_s": cell.get("latency_p50_s_mean"),
                           "latency_p95_s": cell.get("latency_p95_s_mean"),
                           "throughput_queries_per_s": cell.get("throughput_queries_per_s_mean")})
        if all(p["power_limit_w"] is None for p in points):
            continue
        points.sort(key=lambda p: (p["power_limit_w"] is not None, p["power_limit_w"] or 0.0))
        found.append({"task": task, "model": model, "other_axes": rest, "points": points})
    return found


def _rows(groups: list[dict[str, Any]]) -> list[list[str]]:
    return [[g["task"], g["model"], g["other_axes"],
             "as found" if p["power_limit_w"] is None else fmt(p["power_limit_w"]), fmt(p["power_limit_read_w"]),
             fmt(p["wh_per_query"]), fmt(p["gpu_wh_per_query"]), fmt(p["latency_p50_s"]), fmt(p["latency_p95_s"]),
             fmt(p["throughput_queries_per_s"])] for g in groups for p in g["points"]]


def power_limit_section(groups: list[dict[str, Any]]):
    """The HTML report's table (templates/power_limits.html.j2); None without limited cells."""
    return table(HEADERS, _rows(groups), set(range(3, len(HEADERS)))) if groups else None


def print_power_limits(groups: list[dict[str, Any]], console) -> None:
    """The limited cells under `wattsweep report`'s tables."""
    if not groups:
        return
    from rich.table import Table

    grid = Table(title="Power limits: energy per query and latency against the GPUs' limit")
    for i, name in enumerate(HEADERS):
        grid.add_column(name, justify="left" if i < 3 else "right")
    for row in _rows(groups):
        grid.add_row(*row)
    console.print(grid)
