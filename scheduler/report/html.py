"""The HTML report: one self-contained file (inline CSS and SVG, no scripts, nothing fetched), readable offline.

Sections follow the reference study: the per-task chart (tasks by median,
log axis, one point per model), the study's Table 2, a chart per task of its
models, energy vs parameter count, multi-purpose vs task-specific models per
task, everyday equivalents, training vs inference break-even, every model's
figures, and provenance.

Each section function gathers its section's plain data (texts, tables, charts);
the markup is in templates/report.html.j2 and templates/sections.html.j2.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from scheduler.report.aies import batch_section, latency_section, output_length_section, stars_section
from scheduler.report.charts import PALETTE, Point, Row, scatter_chart, strip_chart
from scheduler.report.data import EXCLUDED_NOTE, ReportData, rows_by_task
from scheduler.report.html_parts import Block, Estimated, Table, fmt, render_template, svg, table
from scheduler.report.power_limits import power_limit_section
from scheduler.report.provenance import provenance_section
from scheduler.report.serving import serving_section

KIND_COLORS = {"task-specific": PALETTE[0], "multi-purpose": PALETTE[1]}
OTHER_COLOR = "#7F7F7F"


def count(value: float | None) -> str:
    """Large counts the way people read them: 592.6 M, 1.2 bn."""
    if value is None:
        return "–"
    for size, unit in ((1e9, " bn"), (1e6, " M"), (1e3, " k")):
        if abs(value) >= size:
            return f"{value / size:,.1f}{unit}"
    return f"{value:,.1f}"


def days(value: float) -> str:
    return f"{value:,.0f} ({value / 365:,.1f} years)" if value >= 365 else f"{value:.3g}"


def _kind_color(kind: str | None) -> str:
    return KIND_COLORS.get(kind or "", OTHER_COLOR)


def _kind_legend(models: list[dict[str, Any]]) -> list[tuple[str, str]]:
    kinds = sorted({m.get("model_kind") or "unknown" for m in models})
    return [(kind, _kind_color(kind)) for kind in kinds]


def task_chart(data: ReportData) -> Block:
    by_task = rows_by_task(data.models)
    rows = [
        Row(t["task"], [Point(m["kwh_per_1k_mean"], _kind_color(m.get("model_kind")),
                              f"{m['model']}: {fmt(m['kwh_per_1k_mean'])} kWh per 1,000 queries")
                        for m in by_task.get(t["task"], [])],
            median=t["kwh_per_1k_model_median"])
        for t in data.tasks  # sorted by the median over models (db.results.views.task_rows)
    ]
    return svg(strip_chart(rows, title="Energy per 1,000 queries by task (one point per model; bar: median)",
                           axis_label="kWh per 1,000 queries (log scale)", legend=_kind_legend(data.models)))


def model_charts(data: ReportData) -> list[Block]:
    by_task = rows_by_task(data.models)
    charts = []
    for t in data.tasks:
        models = sorted(by_task.get(t["task"], []),
                        key=lambda m: (m["kwh_per_1k_mean"] is None, m["kwh_per_1k_mean"] or 0))
        rows = [Row(m["model"], [Point(m["kwh_per_1k_mean"], _kind_color(m.get("model_kind")),
                                       f"{m['model']}: mean {fmt(m['kwh_per_1k_mean'])}, median "
                                       f"{fmt(m['kwh_per_1k_median'])}, std {fmt(m['kwh_per_1k_std_pooled'])} "
                                       f"kWh per 1,000 queries over {m['runs']} run(s)")],
                    median=m["kwh_per_1k_median"], whisker=(m["kwh_per_1k_min"], m["kwh_per_1k_max"]))
                for m in models]
        charts.append(svg(strip_chart(rows, title=f"{t['task']}: {len(rows)} model(s)",
                                      axis_label="kWh per 1,000 queries (log scale)")))
    return charts


def parameter_chart(data: ReportData) -> dict[str, Any]:
    """The chart (None: no model has a parameter count) and how many models it leaves out."""
    known = [m for m in data.models if m.get("num_parameters")]
    if not known:
        return {"chart": None, "left_out": len(data.models)}
    tasks = sorted({m["task"] for m in known})
    colors = {task: PALETTE[i % len(PALETTE)] for i, task in enumerate(tasks)}
    points = [Point(float(m["num_parameters"]), colors[m["task"]],
                    f"{m['model']} ({m['task']}): {m['num_parameters']:,} parameters, "
                    f"{fmt(m['kwh_per_1k_mean'])} kWh per 1,000 queries", y=m["kwh_per_1k_mean"])
              for m in known]
    chart = scatter_chart(points, title="Energy vs model size", x_label="parameters (log scale)",
                          y_label="kWh per 1,000 queries (log)", legend=[(t, colors[t]) for t in tasks])
    return {"chart": svg(chart), "left_out": len(data.models) - len(known)}


def table2(data: ReportData) -> Table:
    rows = [[t["task"], fmt(t["kwh_per_1k_model_mean"]), fmt(t["kwh_per_1k_model_std"]),
             fmt(t["kwh_per_1k_model_median"]), fmt(t["models"]), fmt(t["runs"])]
            for t in sorted(data.tasks, key=lambda t: t["kwh_per_1k_model_mean"] or 0)]
    return table(["task", "kWh per 1,000 queries: mean", "std", "median", "models", "runs"], rows, {1, 2, 3, 4, 5})


def _ratio(value: float | None) -> str:
    return f"{fmt(value)}×" if value is not None else "–"


def kinds_chart(data: ReportData, tasks: list[str]) -> Block:
    """One row per (task, kind) for tasks with both kinds: the models as points, the kind's median as a bar."""
    by_kind = {(k["task"], k["model_kind"]): k for k in data.model_kinds}
    rows = []
    for task in tasks:
        for kind in KIND_COLORS:
            k = by_kind[(task, kind)]
            points = [Point(m["kwh_per_1k_mean"], KIND_COLORS[kind],
                            f"{m['model']} ({kind}): {fmt(m['kwh_per_1k_mean'])} kWh per 1,000 queries")
                      for m in data.models if m["task"] == task and m.get("model_kind") == kind]
            rows.append(Row(f"{task}: {kind}", points, median=k["kwh_per_1k_model_median"],
                            whisker=(k["kwh_per_1k_model_min"], k["kwh_per_1k_model_max"])))
    return svg(strip_chart(rows, title="Multi-purpose vs task-specific models (one point per model; bar: median)",
                           axis_label="kWh per 1,000 queries (log scale)", legend=list(KIND_COLORS.items())))


def kinds_section(data: ReportData) -> dict[str, Any]:
    """The study's second finding: per task, zero-shot multi-purpose models beside task-specific ones."""
    present = sorted({k["model_kind"] for k in data.model_kinds if k["model_kind"] in KIND_COLORS})
    if len(present) < 2:
        return {"only": present[0] if present else "task-specific"}
    rows = [[c["task"], fmt(c["task_specific_models"]), fmt(c["task_specific_kwh_per_1k_median"]),
             fmt(c["multi_purpose_models"]), fmt(c["multi_purpose_kwh_per_1k_median"]), _ratio(c["ratio"])]
            for c in data.kind_comparison]
    section = {"only": None, "both": 0, "table": table(
        ["task", "task-specific models", "their median kWh per 1,000 queries", "multi-purpose models",
         "their median kWh per 1,000 queries", "multi-purpose / task-specific"], rows, {1, 2, 3, 4, 5})}
    both = [c for c in data.kind_comparison if c["ratio"] is not None]
    if both:
        low, high = min(c["ratio"] for c in both), max(c["ratio"] for c in both)
        section.update(both=len(both), spread=_ratio(low) if low == high else f"{_ratio(low)} to {_ratio(high)}",
                       chart=kinds_chart(data, [c["task"] for c in both]))
    return section


def equivalents_section(data: ReportData) -> dict[str, Any]:
    o = data.options
    rows = [[e["task"], fmt(e["kwh_per_1k"]), fmt(e["phone_charges_per_1k"]), fmt(e["g_co2e_per_1k"]),
             fmt(e["car_km_per_1k"])] for e in data.equivalents]
    total = (data.progress.get("query_energy_kwh_total") or 0) + (data.progress.get("load_energy_kwh_total") or 0)
    return {"table": table(["task", "kWh per 1,000 queries", "smartphone charges", "g CO2e per 1,000 queries",
                            "km by petrol car"], rows, {1, 2, 3, 4}),
            "phone_charge_kwh": f"{o.phone_charge_kwh:g}", "car_g_per_km": f"{o.car_g_per_km:.1f}",
            "total_kwh": fmt(total), "total_charges": fmt(total / o.phone_charge_kwh)}


def break_even_section(data: ReportData) -> dict[str, Any]:
    """The break-even table (None: no declared training energy), and the declared models this sweep lacks."""
    unmatched = data.sweep.get("training_energy_unmatched") or []
    section: dict[str, Any] = {"unmatched": ", ".join(unmatched), "table": None}
    if data.break_even:
        rows = [[r["task"], r["model"], fmt(r["training_kwh"], 6), fmt(r["kwh_per_query"]),
                 count(r["inferences_to_match_training"]), days(r["days_at_daily_queries"])] for r in data.break_even]
        section["table"] = table(["task", "model", "training kWh", "kWh per query", "queries to match training",
                                  f"days at {data.options.daily_queries:,} queries a day"], rows, {2, 3, 4, 5})
    return section


RELIABILITY = "outliers / unreliable / excluded"


def _reliability(row: dict[str, Any]) -> str:
    """Windows flagged as outliers and as unreliable (both in the figures), and excluded (no GPU reading)."""
    return _counts(row["outlier_runs"], row["unreliable_runs"], row["excluded_runs"])


@lru_cache(maxsize=256)  # nearly every row of a big sweep's two largest tables says 0 / 0 / 0: written once
def _counts(outliers: int | None, unreliable: int | None, excluded: int | None) -> str:
    return f"{fmt(outliers)} / {fmt(unreliable)} / {fmt(excluded)}"


def models_table(data: ReportData) -> Table:
    rows = [[m["task"], m["model"], m.get("model_kind") or "–", fmt(m["num_parameters"]),
             fmt(m["runs"]), fmt(m["kwh_per_1k_mean"]), fmt(m["kwh_per_1k_median"]), fmt(m["kwh_per_1k_std_pooled"]),
             fmt(m["net_kwh_per_1k_mean"]), fmt(m["g_co2e_per_1k_mean"]), fmt(m["load_energy_kwh"]),
             Estimated(m["estimated_components"]),
             _reliability(m)] for m in data.models]
    return table(["task", "model", "kind", "parameters", "runs", "kWh/1k mean", "median", "std", "net of idle",
                  "g CO2e/1k", "load kWh", "estimated", RELIABILITY], rows, {3, 4, 5, 6, 7, 8, 9, 10})


def cells_table(data: ReportData) -> Table:
    """The repetitions of each (model, dataset): n, mean, std, 95% CI (exact Student t), CV."""
    rows = [[c["task"], f"{c['model']} [{c['cell_key']}]" if c["cell_key"] else c["model"],
             c["dataset"], fmt(c["runs"]), fmt(c["kwh_per_1k_mean"]), fmt(c["kwh_per_1k_std"]),
             f"{fmt(c['kwh_per_1k_ci95_low'])} – {fmt(c['kwh_per_1k_ci95_high'])}"
             if c["kwh_per_1k_ci95_low"] is not None else "–",
             f"{100 * c['kwh_per_1k_cv']:.1f}%" if c["kwh_per_1k_cv"] is not None else "–",
             _reliability(c)] for c in data.cells]
    return table(["task", "model", "dataset", "runs", "kWh/1k mean", "std", "95% CI", "CV", RELIABILITY],
                 rows, {3, 4, 5, 6, 7})


def study_section(data: ReportData) -> dict[str, Any]:
    """The study's accounting (node-wide readings) beside the headline and the study's published Table 2."""
    from scheduler.report.study import DEFINITION, DIFFERENCES, STUDY_TABLE2_KWH_PER_1K

    rows = []
    for t in sorted(data.tasks, key=lambda t: t["node_kwh_per_1k_model_mean"] or 0):
        published = STUDY_TABLE2_KWH_PER_1K.get(t["task"], (None, None))
        rows.append([t["task"], fmt(t["kwh_per_1k_model_mean"]), fmt(t["node_kwh_per_1k_model_mean"]),
                     fmt(t["node_kwh_per_1k_model_std"]), fmt(published[0]), fmt(published[1])])
    return {"table": table(["task", "headline: mean over models", "study's way: mean", "std",
                            "study's Table 2: mean", "std"], rows, {1, 2, 3, 4, 5}),
            "definition": DEFINITION, "differences": "; ".join(DIFFERENCES)}


def render(data: ReportData) -> str:
    s, p = data.sweep, data.progress
    done = f"{fmt(p.get('runs_done'))} of {fmt(p.get('runs_total'))} runs done"
    if p.get("runs_failed"):
        done += f", {fmt(p['runs_failed'])} failed"
    page: dict[str, Any] = {
        "title": f"wattsweep report: {s['name']}", "sweep_id": s["id"], "mode": s["mode"],
        "hardware_class": s["hardware_class"], "created": str(s["created_at"])[:19], "done": done,
        "generated": f"{data.generated_at:%Y-%m-%d %H:%M %Z}", "empty": data.empty,
        "provenance": provenance_section(data),
    }
    if not data.empty:
        total = (p.get("query_energy_kwh_total") or 0) + (p.get("load_energy_kwh_total") or 0)
        energy = data.energy or {}
        page.update(
            kpis=[(fmt(len(data.tasks)), "tasks"), (fmt(len({m["model"] for m in data.models})), "models"),
                  (fmt(p.get("runs_done")), "runs measured"), (fmt(total), "kWh in total"),
                  (fmt(total / data.options.phone_charge_kwh), "smartphone charges")],
            energy_note=f"Energy is {energy.get('definition', 'the headline')}."
                        + (f" {energy['note']}." if energy.get("note") else "")
                        + (f" {EXCLUDED_NOTE.format(runs=energy['excluded_runs'])}." if energy.get("excluded_runs")
                           else ""),
            task_chart=task_chart(data), table2=table2(data), model_charts=model_charts(data),
            parameters=parameter_chart(data), stars=stars_section(data), batch=batch_section(data),
            latency=latency_section(data), output_length=output_length_section(data), kinds=kinds_section(data),
            equivalents=equivalents_section(data), break_even=break_even_section(data),
            models=models_table(data), cells=cells_table(data), study=study_section(data),
            serving=serving_section(data.serving), power_limits=power_limit_section(data.power_limits),
        )
    return render_template("report.html.j2", **page)
