"""Report sections for what AI Energy Score and ML.ENERGY show: stars, energy against batch size, energy
against p95 latency with the Pareto front, and output lengths where they vary (reasoning).

Each function gathers the plain data of one section of the HTML report from a
ReportData (the numbers come from v_model_summary rows and
scheduler.report.ratings), None where the section has nothing to show; the
markup is in templates/aies.html.j2, the charts are inline SVG like the rest of
the report.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from scheduler.report.charts import PALETTE, Line, Point, scatter_chart
from scheduler.report.data import ReportData, cell_label
from scheduler.report.html_parts import Stars, WithCode, fmt, svg, table


def stars_section(data: ReportData) -> dict[str, Any] | None:
    r = data.rating
    if not data.ratings:
        return None
    rows = [[x["task"], WithCode(x["model"], x["cell_key"] or None),
             x["size_class"] or "–", fmt(x["wh_per_1k"]), Stars(x["stars"]),
             _band(x["band_low_kwh_per_1k"], x["band_high_kwh_per_1k"]),
             fmt(x["reference_models"])] for x in data.ratings]
    return {"energy_label": r["energy_label"], "reference": r["reference"], "rule": r["rule"],
            "table": table(["task", "model", "size class", "Wh per 1,000 queries", "stars", "reference range (Wh/1k)",
                            "reference cells"], rows, {3, 5, 6})}


@lru_cache(maxsize=256)  # a reference range per task and size class: written once, not once per cell
def _band(low_kwh: float | None, high_kwh: float | None) -> str:
    return f"{fmt(_wh(low_kwh))} – {fmt(_wh(high_kwh))}"


def _wh(kwh: float | None) -> float | None:
    return kwh * 1000 if kwh is not None else None


def batch_section(data: ReportData) -> dict[str, Any] | None:
    """Energy per 1,000 queries against batch size, one line per model (and per value of its other axes)."""
    if not data.batch_curves:
        return None
    lines, points, legend = [], [], []
    for i, curve in enumerate(data.batch_curves):
        color = PALETTE[i % len(PALETTE)]
        name = curve["model"] + (f" [{curve['other_axes']}]" if curve["other_axes"] else "")
        vertices = tuple((float(p["batch_size"]), p["kwh_per_1k"]) for p in curve["points"])
        lines.append(Line(vertices, color, tooltip=f"{curve['task']}: {name}"))
        points += [Point(float(p["batch_size"]), color, f"{name}, batch size {p['batch_size']}: "
                         f"{fmt(p['kwh_per_1k'])} kWh per 1,000 queries, p95 {fmt(p['latency_p95_s'])} s",
                         y=p["kwh_per_1k"]) for p in curve["points"]]
        legend.append((f"{curve['task']}: {name}"[:28], color))
    rows = [[c["task"], c["model"], c["other_axes"] or "–",
             ", ".join(f"{p['batch_size']}: {fmt(p['kwh_per_1k'])}" for p in c["points"]),
             _ratio(c["points"][0]["kwh_per_1k"], c["points"][-1]["kwh_per_1k"])] for c in data.batch_curves]
    chart = scatter_chart(points, title="Energy vs batch size", x_label="batch size (log scale)",
                          y_label="kWh per 1,000 queries (log)", legend=legend[:20], lines=lines)
    return {"chart": svg(chart), "table": table(["task", "model", "other axes", "kWh per 1,000 queries by batch size",
                                                 "smallest / largest batch"], rows, {4})}


def _ratio(first: float | None, last: float | None) -> str:
    return f"{first / last:.3g}×" if first and last else "–"


def latency_section(data: ReportData) -> dict[str, Any] | None:
    """Energy against p95 latency per cell, per task's colour, with each task's Pareto front dashed and ringed."""
    cells = [m for m in data.models if m.get("latency_p95_s_mean") and m.get("kwh_per_1k_mean")]
    if not cells:
        return None
    tasks = sorted({m["task"] for m in cells})
    colors = {task: PALETTE[i % len(PALETTE)] for i, task in enumerate(tasks)}
    labels = [cell_label(m) for m in cells]
    points = [Point(m["latency_p95_s_mean"], colors[m["task"]],
                    f"{label} ({m['task']}): p95 {fmt(m['latency_p95_s_mean'])} s, "
                    f"{fmt(m['kwh_per_1k_mean'])} kWh per 1,000 queries", y=m["kwh_per_1k_mean"])
              for m, label in zip(cells, labels, strict=True)]
    by_label = {(m["task"], label): m for m, label in zip(cells, labels, strict=True)}
    lines, rows = [], []
    for front in data.pareto:
        members = [by_label[(front["task"], key)] for key in front["front"] if (front["task"], key) in by_label]
        vertices = tuple((m["latency_p95_s_mean"], m["kwh_per_1k_mean"]) for m in members)
        lines.append(Line(vertices, "#111111", dashed=True, rings=True, tooltip=f"{front['task']}: Pareto front"))
        rows += [[front["task"], cell_label(m), fmt(m["latency_p95_s_mean"]),
                  fmt(m["latency_p50_s_mean"]), fmt(m.get("throughput_queries_per_s_mean")),
                  fmt(m.get("ttft_p50_s_mean")), fmt(m["kwh_per_1k_mean"])] for m in members]
    chart = scatter_chart(points, title="Energy vs p95 latency (ringed, dashed: the Pareto front of each task)",
                          x_label="p95 time per query, s (log scale)", y_label="kWh per 1,000 queries (log)",
                          legend=[(t, colors[t]) for t in tasks], lines=lines)
    return {"chart": svg(chart), "table": table(["task", "cell", "p95 s", "p50 s", "queries/s",
                                                 "p50 time to first token s", "kWh per 1,000 queries"],
                                                rows, {2, 3, 4, 5, 6})}


def output_length_section(data: ReportData) -> dict[str, Any] | None:
    """Where output lengths vary (reasoning): tokens per query, mean / p50 / p95, and energy per token."""
    rows = [m for m in data.models if m.get("output_tokens_p50_mean") is not None]
    if not rows:
        return None
    body = [[m["task"], cell_label(m), fmt(m.get("output_tokens_per_query_mean")),
             fmt(m["output_tokens_p50_mean"]), fmt(m["output_tokens_p95_mean"]),
             fmt(_per_query(m)), fmt(_per_token_wh(m))] for m in rows]
    return {"table": table(["task", "cell", "tokens per query: mean", "p50", "p95", "Wh per query",
                            "Wh per generated token"], body, {2, 3, 4, 5, 6})}


def _per_query(m: dict[str, Any]) -> float | None:
    return m["kwh_per_1k_mean"] if m.get("kwh_per_1k_mean") is not None else None  # kWh/1k = Wh per query


def _per_token_wh(m: dict[str, Any]) -> float | None:
    return m["kwh_per_output_token"] * 1000 if m.get("kwh_per_output_token") is not None else None
