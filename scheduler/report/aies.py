"""Report sections for what AI Energy Score and ML.ENERGY show: stars, energy against batch size, energy
against p95 latency with the Pareto front, and output lengths where they vary (reasoning).

Each function renders one section of the HTML report from a ReportData (the
numbers come from v_model_summary rows and scheduler.report.ratings); charts are
inline SVG like the rest of the report.
"""

from __future__ import annotations

from html import escape
from typing import Any

from scheduler.report.charts import PALETTE, Line, Point, scatter_chart
from scheduler.report.data import ReportData, cell_label
from scheduler.report.html_parts import fmt, table

STAR_CSS = ".stars{color:#d69e00;letter-spacing:1px;font-size:1.05rem}.stars .off{color:#c9c9c9}"


def star_html(stars: int | None) -> str:
    if stars is None:
        return '<span class="note">unrated (size unknown)</span>'
    return (f'<span class="stars" title="{stars} of 5 stars">{"★" * stars}'
            f'<span class="off">{"★" * (5 - stars)}</span></span>')


def stars_section(data: ReportData) -> str:
    r = data.rating
    if not data.ratings:
        return '<p class="note">No measured cells to rate.</p>'
    rows = [[escape(x["task"]), escape(x["model"]) + (f" <code>{escape(x['cell_key'])}</code>" if x["cell_key"]
                                                     else ""),
             escape(x["size_class"] or "–"), fmt(x["wh_per_1k"]), star_html(x["stars"]),
             f"{fmt(_wh(x['band_low_kwh_per_1k']))} – {fmt(_wh(x['band_high_kwh_per_1k']))}",
             fmt(x["reference_models"])] for x in data.ratings]
    return (f'<p>Stars rate <b>{escape(r["energy_label"])}</b> against <b>{escape(r["reference"])}</b>.</p>'
            + table(["task", "model", "size class", "Wh per 1,000 queries", "stars", "reference range (Wh/1k)",
                     "reference cells"], rows, {3, 5, 6})
            + f'<p class="note">The AI Energy Score rule: {escape(r["rule"])}. <code>--rating-energy headline</code> '
              "rates by the whole figure instead; <code>--rate-against SWEEP</code> rates against another sweep, "
              "e.g. an imported one. <code>wattsweep label</code> draws one cell's label.</p>")


def _wh(kwh: float | None) -> float | None:
    return kwh * 1000 if kwh is not None else None


def batch_section(data: ReportData) -> str:
    """Energy per 1,000 queries against batch size, one line per model (and per value of its other axes)."""
    if not data.batch_curves:
        return ('<p class="note">This sweep measured each model at one batch size. Give a list '
                "(<code>batch_size: [1, 8, 64]</code>) to see how batching moves energy per query.</p>")
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
    rows = [[escape(c["task"]), escape(c["model"]), escape(c["other_axes"] or "–"),
             ", ".join(f"{p['batch_size']}: {fmt(p['kwh_per_1k'])}" for p in c["points"]),
             _ratio(c["points"][0]["kwh_per_1k"], c["points"][-1]["kwh_per_1k"])] for c in data.batch_curves]
    return (scatter_chart(points, title="Energy vs batch size", x_label="batch size (log scale)",
                          y_label="kWh per 1,000 queries (log)", legend=legend[:20], lines=lines)
            + table(["task", "model", "other axes", "kWh per 1,000 queries by batch size",
                     "smallest / largest batch"], rows, {4}))


def _ratio(first: float | None, last: float | None) -> str:
    return f"{first / last:.3g}×" if first and last else "–"


def latency_section(data: ReportData) -> str:
    """Energy against p95 latency per cell, per task's colour, with each task's Pareto front dashed and ringed."""
    cells = [m for m in data.models if m.get("latency_p95_s_mean") and m.get("kwh_per_1k_mean")]
    if not cells:
        return '<p class="note">No latency is stored for this sweep\'s runs (measured before wattsweep timed ' \
               "batches, or imported).</p>"
    tasks = sorted({m["task"] for m in cells})
    colors = {task: PALETTE[i % len(PALETTE)] for i, task in enumerate(tasks)}
    points = [Point(m["latency_p95_s_mean"], colors[m["task"]],
                    f"{cell_label(m)} ({m['task']}): p95 {fmt(m['latency_p95_s_mean'])} s, "
                    f"{fmt(m['kwh_per_1k_mean'])} kWh per 1,000 queries", y=m["kwh_per_1k_mean"]) for m in cells]
    by_label = {(m["task"], cell_label(m)): m for m in cells}
    lines, rows = [], []
    for front in data.pareto:
        members = [by_label[(front["task"], key)] for key in front["front"] if (front["task"], key) in by_label]
        vertices = tuple((m["latency_p95_s_mean"], m["kwh_per_1k_mean"]) for m in members)
        lines.append(Line(vertices, "#111111", dashed=True, rings=True, tooltip=f"{front['task']}: Pareto front"))
        rows += [[escape(front["task"]), escape(cell_label(m)), fmt(m["latency_p95_s_mean"]),
                  fmt(m["latency_p50_s_mean"]), fmt(m.get("throughput_queries_per_s_mean")),
                  fmt(m.get("ttft_p50_s_mean")), fmt(m["kwh_per_1k_mean"])] for m in members]
    return (scatter_chart(points, title="Energy vs p95 latency (ringed, dashed: the Pareto front of each task)",
                          x_label="p95 time per query, s (log scale)", y_label="kWh per 1,000 queries (log)",
                          legend=[(t, colors[t]) for t in tasks], lines=lines)
            + "<h3>On the Pareto front</h3>"
            + table(["task", "cell", "p95 s", "p50 s", "queries/s", "p50 time to first token s",
                     "kWh per 1,000 queries"], rows, {2, 3, 4, 5, 6})
            + '<p class="note">A cell is on the front when no other cell of its task is both faster (p95 time per '
              "query, each query timed as its batch) and cheaper (energy per 1,000 queries): the cheapest "
              "configuration meeting a latency target is on it.</p>")


def output_length_section(data: ReportData) -> str:
    """Where output lengths vary (reasoning): tokens per query, mean / p50 / p95, and energy per token."""
    rows = [m for m in data.models if m.get("output_tokens_p50_mean") is not None]
    if not rows:
        return ""
    body = [[escape(m["task"]), escape(cell_label(m)), fmt(m.get("output_tokens_per_query_mean")),
             fmt(m["output_tokens_p50_mean"]), fmt(m["output_tokens_p95_mean"]),
             fmt(_per_query(m)), fmt(_per_token_wh(m))] for m in rows]
    return ("<h2>Output lengths (reasoning)</h2>"
            + table(["task", "cell", "tokens per query: mean", "p50", "p95", "Wh per query", "Wh per generated token"],
                    body, {2, 3, 4, 5, 6})
            + '<p class="note">Models stop when they are done (<code>fixed_length: false</code>), so energy per '
              "query and per generated token are the headline figures here; p50 and p95 are per run, averaged "
              "over runs.</p>")


def _per_query(m: dict[str, Any]) -> float | None:
    return m["kwh_per_1k_mean"] if m.get("kwh_per_1k_mean") is not None else None  # kWh/1k = Wh per query


def _per_token_wh(m: dict[str, Any]) -> float | None:
    return m["kwh_per_output_token"] * 1000 if m.get("kwh_per_output_token") is not None else None
