"""Served cells in reports: energy per output token against the load, and the knee between energy and latency.

Reads v_serving_cells (migration 0020) through db.results.views. Two charts for the HTML report (energy per
output token against concurrency, one line per model and engine; energy per output token against p99
inter-token latency with its Pareto front; the markup is templates/serving.html.j2) and a table for
`wattsweep report`.
"""

from __future__ import annotations

from typing import Any

from scheduler.report.charts import PALETTE, Line, Point, scatter_chart
from scheduler.report.html_parts import fmt, svg, table
from scheduler.report.ratings import pareto_front


def load_of(cell: dict[str, Any]) -> str:
    if cell.get("concurrency") is not None:
        return f"{cell['concurrency']} in flight"
    return f"{fmt(cell.get('request_rate'))} req/s"


def label(cell: dict[str, Any]) -> str:
    return f"{cell['model']} ({cell['engine']}) at {load_of(cell)}"


def front(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cells no other cell beats on both p99 inter-token latency and energy per output token."""
    keys = pareto_front((c.get("itl_p99_s"), c.get("kwh_per_output_token"), i) for i, c in enumerate(cells))
    return [cells[i] for i in keys]


def excluded(cell: dict[str, Any]) -> str:
    """The cell's runs with no GPU reading (gpu-energy-zero): in no figure, so named beside the runs counted."""
    return f" ({cell['excluded_runs']} excluded)" if cell.get("excluded_runs") else ""


def serving_section(cells: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The served cells' charts and table for templates/serving.html.j2; None without served cells."""
    if not cells:
        return None
    series = sorted({(c["model"], c["engine"]) for c in cells})
    colors = {key: PALETTE[i % len(PALETTE)] for i, key in enumerate(series)}
    legend = [(f"{model} ({engine})", colors[(model, engine)]) for model, engine in series]
    closed = [c for c in cells if c.get("concurrency") is not None]
    points = [Point(c["concurrency"], colors[(c["model"], c["engine"])],
                    f"{label(c)}: {fmt(c['kwh_per_output_token'])} kWh per output token", y=c["kwh_per_output_token"])
              for c in closed]
    lines = []
    for key in series:
        curve = sorted((c["concurrency"], c["kwh_per_output_token"]) for c in closed
                       if (c["model"], c["engine"]) == key and c["kwh_per_output_token"])
        lines.append(Line(tuple(curve), colors[key], tooltip=f"{key[0]} ({key[1]})"))
    best = front(cells)
    knee = [Point(c["itl_p99_s"], colors[(c["model"], c["engine"])],
                  f"{label(c)}: p99 ITL {fmt(c['itl_p99_s'])} s, {fmt(c['kwh_per_output_token'])} kWh per token",
                  y=c["kwh_per_output_token"]) for c in cells]
    front_line = Line(tuple((c["itl_p99_s"], c["kwh_per_output_token"]) for c in best), "#111111", dashed=True,
                      rings=True, tooltip="Pareto front")
    rows = [[c["model"], c["engine"] or "", load_of(c), fmt(c["kwh_per_output_token"]), fmt(c["kwh_per_request"]),
             fmt(c["itl_p99_s"]), fmt(c["ttft_p50_s"]), fmt(c["throughput_output_tokens_per_s"]),
             fmt(c["steady_share"]), f"{c['steady_runs']} of {c['runs']}{excluded(c)}",
             "yes" if any(c is b for b in best) else ""] for c in cells]
    by_load = scatter_chart(points, title="Energy per output token against concurrency (steady part of each run)",
                            x_label="requests in flight (log scale)", y_label="kWh per output token (log)",
                            legend=legend, lines=lines) if closed else None
    knee_chart = scatter_chart(knee, title="Energy per output token against p99 inter-token latency "
                                           "(ringed, dashed: the Pareto front)",
                               x_label="p99 inter-token latency, s (log scale)",
                               y_label="kWh per output token (log)", legend=legend, lines=[front_line])
    return {"by_load": svg(by_load) if by_load else None, "front": svg(knee_chart),
            "table": table(["model", "engine", "load", "kWh / output token", "kWh / request", "p99 ITL s",
                            "p50 TTFT s", "output tokens/s", "steady share", "steady runs", "on the front"], rows,
                           {3, 4, 5, 6, 7, 8})}


def print_serving(cells: list[dict[str, Any]], console) -> None:
    """The served cells under `wattsweep report`'s tables."""
    if not cells:
        return
    from rich.table import Table

    best = front(cells)
    grid = Table(title="Served cells: steady-state energy per output token by load")
    for name in ("model", "engine", "load", "kWh/token", "kWh/request", "p99 ITL s", "p50 TTFT s", "tokens/s",
                 "steady", "front"):
        grid.add_column(name, justify="left" if name in ("model", "engine", "load") else "right")
    for c in cells:
        grid.add_row(c["model"], c["engine"] or "", load_of(c), fmt(c["kwh_per_output_token"]),
                     fmt(c["kwh_per_request"]), fmt(c["itl_p99_s"]), fmt(c["ttft_p50_s"]),
                     fmt(c["throughput_output_tokens_per_s"]), f"{c['steady_runs']}/{c['runs']}{excluded(c)}",
                     "*" if any(c is b for b in best) else "")
    console.print(grid)
