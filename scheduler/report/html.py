"""The HTML report: one self-contained file (inline CSS and SVG, no scripts, nothing fetched), readable offline.

Sections follow the reference study: the per-task chart (tasks by median,
log axis, one point per model), the study's Table 2, a chart per task of its
models, energy vs parameter count, multi-purpose vs task-specific models per
task, everyday equivalents, training vs inference break-even, every model's
figures, and provenance.
"""

from __future__ import annotations

from html import escape
from typing import Any

from scheduler.report.aies import STAR_CSS, batch_section, latency_section, output_length_section, stars_section
from scheduler.report.charts import PALETTE, Point, Row, scatter_chart, strip_chart
from scheduler.report.data import ReportData
from scheduler.report.html_parts import fmt, table
from scheduler.report.serving import serving_section

KIND_COLORS = {"task-specific": PALETTE[0], "multi-purpose": PALETTE[1]}
OTHER_COLOR = "#7F7F7F"
CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;color:#1d1d1d;
padding:0 1rem;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #ddd}
h3{font-size:1.05rem;margin-bottom:.3rem}.meta{color:#555}.note{color:#555;font-size:.9rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.88rem}
th,td{padding:.25rem .6rem;border-bottom:1px solid #e5e5e5}
th{text-align:left;background:#f6f6f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
.empty{padding:1rem;background:#fff7e0;border:1px solid #f0d890}figure{margin:1rem 0}
figcaption{color:#555;font-size:.85rem}.kpi{display:inline-block;margin:0 2rem .5rem 0}
.kpi b{display:block;font-size:1.3rem}.est{color:#a15c00}.wrap{overflow-x:auto}
"""


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


def task_chart(data: ReportData) -> str:
    by_task: dict[str, list[dict]] = {}
    for m in data.models:
        by_task.setdefault(m["task"], []).append(m)
    rows = [
        Row(t["task"], [Point(m["kwh_per_1k_mean"], _kind_color(m.get("model_kind")),
                              f"{m['model']}: {fmt(m['kwh_per_1k_mean'])} kWh per 1,000 queries")
                        for m in by_task.get(t["task"], [])],
            median=t["kwh_per_1k_model_median"])
        for t in data.tasks  # sorted by the median over models (db.results.views.task_rows)
    ]
    return strip_chart(rows, title="Energy per 1,000 queries by task (one point per model; bar: median)",
                       axis_label="kWh per 1,000 queries (log scale)", legend=_kind_legend(data.models))


def model_charts(data: ReportData) -> str:
    parts = []
    for t in data.tasks:
        models = sorted((m for m in data.models if m["task"] == t["task"]),
                        key=lambda m: (m["kwh_per_1k_mean"] is None, m["kwh_per_1k_mean"] or 0))
        rows = [Row(m["model"], [Point(m["kwh_per_1k_mean"], _kind_color(m.get("model_kind")),
                                       f"{m['model']}: mean {fmt(m['kwh_per_1k_mean'])}, median "
                                       f"{fmt(m['kwh_per_1k_median'])}, std {fmt(m['kwh_per_1k_std_pooled'])} "
                                       f"kWh per 1,000 queries over {m['runs']} run(s)")],
                    median=m["kwh_per_1k_median"], whisker=(m["kwh_per_1k_min"], m["kwh_per_1k_max"]))
                for m in models]
        parts.append(strip_chart(rows, title=f"{t['task']}: {len(rows)} model(s)",
                                 axis_label="kWh per 1,000 queries (log scale)"))
    if parts:
        parts.insert(0, '<p class="note">Dot: mean over runs; bar: median; line: lowest to highest run.</p>')
    return "".join(parts)


def parameter_chart(data: ReportData) -> str:
    known = [m for m in data.models if m.get("num_parameters")]
    if not known:
        return ('<p class="note">No parameter counts are recorded for this sweep\'s models '
                "(<code>jobs.num_parameters</code>), so energy cannot be plotted against model size.</p>")
    tasks = sorted({m["task"] for m in known})
    colors = {task: PALETTE[i % len(PALETTE)] for i, task in enumerate(tasks)}
    points = [Point(float(m["num_parameters"]), colors[m["task"]],
                    f"{m['model']} ({m['task']}): {m['num_parameters']:,} parameters, "
                    f"{fmt(m['kwh_per_1k_mean'])} kWh per 1,000 queries", y=m["kwh_per_1k_mean"])
              for m in known]
    note = (f'<p class="note">{len(data.models) - len(known)} model(s) without a known parameter count are left out.'
            "</p>" if len(known) < len(data.models) else "")
    return scatter_chart(points, title="Energy vs model size", x_label="parameters (log scale)",
                         y_label="kWh per 1,000 queries (log)", legend=[(t, colors[t]) for t in tasks]) + note


def table2(data: ReportData) -> str:
    rows = [[escape(t["task"]), fmt(t["kwh_per_1k_model_mean"]), fmt(t["kwh_per_1k_model_std"]),
             fmt(t["kwh_per_1k_model_median"]), fmt(t["models"]), fmt(t["runs"])]
            for t in sorted(data.tasks, key=lambda t: t["kwh_per_1k_model_mean"] or 0)]
    return table(["task", "kWh per 1,000 queries: mean", "std", "median", "models", "runs"], rows, {1, 2, 3, 4, 5}) + (
        '<p class="note">As in the study\'s Table 2: mean and standard deviation over the models of each task '
        "(each model is the mean of its runs). A dash: only one model.</p>")


def _ratio(value: float | None) -> str:
    return f"{fmt(value)}×" if value is not None else "–"


def kinds_chart(data: ReportData, tasks: list[str]) -> str:
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
    return strip_chart(rows, title="Multi-purpose vs task-specific models (one point per model; bar: median)",
                       axis_label="kWh per 1,000 queries (log scale)", legend=list(KIND_COLORS.items()))


def kinds_section(data: ReportData) -> str:
    """The study's second finding: per task, zero-shot multi-purpose models beside task-specific ones."""
    present = sorted({k["model_kind"] for k in data.model_kinds if k["model_kind"] in KIND_COLORS})
    if len(present) < 2:
        only = present[0] if present else "task-specific"
        return (f'<p class="note">This sweep measured only {escape(only)} models, so there is no multi-purpose vs '
                "task-specific comparison. To make one, prompt a generative model zero-shot on a task "
                "(<code>tasks.&lt;task&gt;.zero_shot.models</code> in the sweep file) beside its task-specific "
                "models.</p>")
    rows = [[escape(c["task"]), fmt(c["task_specific_models"]), fmt(c["task_specific_kwh_per_1k_median"]),
             fmt(c["multi_purpose_models"]), fmt(c["multi_purpose_kwh_per_1k_median"]), _ratio(c["ratio"])]
            for c in data.kind_comparison]
    parts = [table(["task", "task-specific models", "their median kWh per 1,000 queries", "multi-purpose models",
                    "their median kWh per 1,000 queries", "multi-purpose / task-specific"], rows, {1, 2, 3, 4, 5})]
    both = [c for c in data.kind_comparison if c["ratio"] is not None]
    if both:
        low, high = min(c["ratio"] for c in both), max(c["ratio"] for c in both)
        spread = _ratio(low) if low == high else f"{_ratio(low)} to {_ratio(high)}"
        parts.append(f'<p class="note">On the {len(both)} task(s) with both kinds, multi-purpose models used '
                     f"{spread} the energy per query of task-specific ones (medians over each kind's models, "
                     "each model the mean of its runs; SQL: <code>v_model_kind_summary</code>).</p>")
        parts.append(kinds_chart(data, [c["task"] for c in both]))
    else:
        parts.append('<p class="note">No task of this sweep has both kinds measured, so no ratio can be given.</p>')
    return "".join(parts)


def equivalents_section(data: ReportData) -> str:
    o = data.options
    rows = [[escape(e["task"]), fmt(e["kwh_per_1k"]), fmt(e["phone_charges_per_1k"]), fmt(e["g_co2e_per_1k"]),
             fmt(e["car_km_per_1k"])] for e in data.equivalents]
    total = (data.progress.get("query_energy_kwh_total") or 0) + (data.progress.get("load_energy_kwh_total") or 0)
    return (table(["task", "kWh per 1,000 queries", "smartphone charges", "g CO2e per 1,000 queries",
                   "km by petrol car"], rows, {1, 2, 3, 4})
            + f'<p class="note">One smartphone charge = {o.phone_charge_kwh:g} kWh; an average petrol car emits '
              f"{o.car_g_per_km:.1f} g CO2e per km (both configurable: <code>--phone-charge-kwh</code>, "
              f"<code>--car-g-per-km</code>). The whole sweep used {fmt(total)} kWh (queries and model loading) = "
              f"{fmt(total / o.phone_charge_kwh)} smartphone charges.</p>")


def break_even_section(data: ReportData) -> str:
    unmatched = data.sweep.get("training_energy_unmatched") or []
    note = (f'<p class="note">Declared but not in this sweep: {escape(", ".join(unmatched))}.</p>'
            if unmatched else "")
    if not data.break_even:
        return ('<p class="note">No model of this sweep has a declared training energy. Declare one with '
                "<code>--training-energy MODEL=KWH</code> (e.g. <code>bigscience/bloomz-7b1=51686</code>) or "
                "<code>training_energy_kwh: {MODEL: KWH}</code> in the sweep file.</p>" + note)
    rows = [[escape(r["task"]), escape(r["model"]), fmt(r["training_kwh"], 6), fmt(r["kwh_per_query"]),
             count(r["inferences_to_match_training"]), days(r["days_at_daily_queries"])] for r in data.break_even]
    return table(["task", "model", "training kWh", "kWh per query", "queries to match training",
                  f"days at {data.options.daily_queries:,} queries a day"], rows, {2, 3, 4, 5}) + (
        '<p class="note">Queries to match training = training energy / energy per query (this sweep\'s mean). '
        "The daily volume is configurable (<code>--daily-queries</code>).</p>") + note


def models_table(data: ReportData) -> str:
    rows = [[escape(m["task"]), escape(m["model"]), escape(m.get("model_kind") or "–"), fmt(m["num_parameters"]),
             fmt(m["runs"]), fmt(m["kwh_per_1k_mean"]), fmt(m["kwh_per_1k_median"]), fmt(m["kwh_per_1k_std_pooled"]),
             fmt(m["net_kwh_per_1k_mean"]), fmt(m["g_co2e_per_1k_mean"]), fmt(m["load_energy_kwh"]),
             f'<span class="est">{escape(m["estimated_components"])}</span>',
             fmt(m["outlier_runs"]) + " / " + fmt(m["unreliable_runs"])] for m in data.models]
    return table(["task", "model", "kind", "parameters", "runs", "kWh/1k mean", "median", "std", "net of idle",
                  "g CO2e/1k", "load kWh", "estimated", "outliers / unreliable"], rows, {3, 4, 5, 6, 7, 8, 9, 10})


def cells_table(data: ReportData) -> str:
    """The repetitions of each (model, dataset): n, mean, std, 95% CI (exact Student t), CV."""
    rows = [[escape(c["task"]), escape(f"{c['model']} [{c['cell_key']}]" if c["cell_key"] else c["model"]),
             escape(c["dataset"]), fmt(c["runs"]), fmt(c["kwh_per_1k_mean"]), fmt(c["kwh_per_1k_std"]),
             f"{fmt(c['kwh_per_1k_ci95_low'])} – {fmt(c['kwh_per_1k_ci95_high'])}"
             if c["kwh_per_1k_ci95_low"] is not None else "–",
             f"{100 * c['kwh_per_1k_cv']:.1f}%" if c["kwh_per_1k_cv"] is not None else "–",
             fmt(c["outlier_runs"]) + " / " + fmt(c["unreliable_runs"])] for c in data.cells]
    return table(["task", "model", "dataset", "runs", "kWh/1k mean", "std", "95% CI", "CV", "outliers / unreliable"],
                 rows, {3, 4, 5, 6, 7}) + (
        '<p class="note">Each run is one sample of its (model, dataset) cell; the interval uses the exact Student t '
        "quantile for n - 1 degrees of freedom. Outliers (beyond 3.5 robust standard deviations from the cell's "
        "median, from 5 runs on) are flagged and kept.</p>")


def study_section(data: ReportData) -> str:
    """The study's accounting (node-wide readings) beside the headline and the study's published Table 2."""
    from scheduler.report.study import DEFINITION, DIFFERENCES, STUDY_TABLE2_KWH_PER_1K

    rows = []
    for t in sorted(data.tasks, key=lambda t: t["node_kwh_per_1k_model_mean"] or 0):
        published = STUDY_TABLE2_KWH_PER_1K.get(t["task"], (None, None))
        rows.append([escape(t["task"]), fmt(t["kwh_per_1k_model_mean"]), fmt(t["node_kwh_per_1k_model_mean"]),
                     fmt(t["node_kwh_per_1k_model_std"]), fmt(published[0]), fmt(published[1])])
    return table(["task", "headline: mean over models", "study's way: mean", "std", "study's Table 2: mean", "std"],
                 rows, {1, 2, 3, 4, 5}) + (
        f'<p class="note">The study\'s way: {escape(DEFINITION)}. What differs and cannot be undone: '
        f"{escape('; '.join(DIFFERENCES))}. <code>wattsweep report --accounting study</code> prints this per "
        "model too.</p>")


def provenance_section(data: ReportData) -> str:
    s = data.sweep
    if s["grid_intensity_g_per_kwh"] is not None:
        carbon = f"explicit grid intensity {s['grid_intensity_g_per_kwh']:g} g CO2e/kWh"
    elif s["country_iso_code"]:
        carbon = f"grid mix of {escape(s['country_iso_code'])}" + (f" / {escape(s['region'])}" if s["region"] else "")
    else:
        carbon = "as recorded per window (see below)"
    if s.get("grid_intensity_override") is not None:
        carbon = (f"<b>recomputed at {s['grid_intensity_override']:g} g CO2e/kWh</b> from stored energy "
                  f"(measured with {carbon})")
    parts = [f"<p>Sweep mode <b>{escape(s['mode'])}</b>, hardware class <b>{escape(s['hardware_class'])}</b>, "
             f"carbon: {carbon}.</p>"]
    if s.get("source_files"):
        rows = [[f"<code>{escape(str(f.get('path')))}</code>", escape(str(f.get("layout", "–"))), fmt(f.get("rows")),
                 escape(", ".join(f.get("os") or [])), escape(", ".join(f.get("python_version") or [])),
                 escape(", ".join(f.get("codecarbon_version") or [])), escape(str(f.get("sha256", ""))[:12])]
                for f in s["source_files"] if isinstance(f, dict)]
        parts.append("<h3>Imported from CodeCarbon files</h3>" + table(
            ["file", "layout", "rows", "OS", "Python", "CodeCarbon", "SHA-256"], rows, {2}))
    if data.workers:
        rows = []
        for w in data.workers:
            inv = w["inventory"] or {}
            gpu = inv.get("gpu") or {}
            versions = inv.get("versions") or {}
            rows.append([escape(w["id"]), escape(w["device"]), fmt(inv.get("cpu_model")), fmt(inv.get("cpu_count")),
                         fmt(inv.get("ram_total_gb")), fmt(gpu.get("name")) if gpu else "–",
                         fmt(gpu.get("driver")) if gpu else "–", fmt(inv.get("os")), fmt(inv.get("python")),
                         ", ".join(f"{escape(k)} {escape(str(v))}" for k, v in versions.items() if v)])
        parts.append("<h3>Workers</h3>" + table(["worker", "device", "CPU", "cores", "RAM GB", "GPU", "driver", "OS",
                                                  "Python", "libraries"], rows, {3, 4}))
    rows = [[escape(p["worker_id"] or "–"), fmt(p["cpu_model"]), fmt(p["gpu_model"]),
             _method(p["cpu_method"], p["cpu_method"] != "rapl"),
             _method(p["gpu_method"], p["gpu_method"] not in ("none", "nvml-energy-counter")),
             _method(p["ram_method"], True), fmt(p["codecarbon_version"]), fmt(p["tracking_mode"]),
             fmt(p["torch_version"]), fmt(p["transformers_version"]),
             _intensity(p["intensity_min"], p["intensity_max"]) + f" ({fmt(p['carbon_intensity_source'])})",
             fmt(p["runs"])] for p in data.provenance]
    parts.append("<h3>How each figure was measured</h3>" + table(
        ["worker", "CPU", "GPU", "CPU energy", "GPU energy", "RAM energy", "CodeCarbon", "tracking", "torch",
         "transformers", "g CO2e/kWh", "runs"], rows, {11}))
    parts.append('<p class="note">Components in <span class="est">orange</span> were estimated, not measured: '
                 "CPU unless read from RAPL (otherwise TDP x load), GPU when power was sampled rather than read "
                 "from the NVML energy counter (or unknown, for imported files), RAM always (a model of DIMM "
                 "power). Net of idle subtracts the worker's measured idle power over each window.</p>")
    return "".join(parts)


def _intensity(low: float | None, high: float | None) -> str:
    """One figure when the windows agree (emissions / energy varies in the last digits), else the range."""
    if low is None or high is None or abs(high - low) <= 1e-6 * abs(high):
        return fmt(high, 4)
    return f"{fmt(low, 4)}–{fmt(high, 4)}"


def _method(name: str | None, estimated: bool) -> str:
    if not name:
        return "–"
    return f'<span class="est">{escape(name)} (estimated)</span>' if estimated else escape(name)


def render(data: ReportData) -> str:
    s, p = data.sweep, data.progress
    title = f"wattsweep report: {s['name']}"
    done = f"{fmt(p.get('runs_done'))} of {fmt(p.get('runs_total'))} runs done"
    if p.get("runs_failed"):
        done += f", {fmt(p['runs_failed'])} failed"
    head = (f"<h1>{escape(title)}</h1><p class=\"meta\">Sweep {s['id']}, {escape(s['mode'])}, hardware class "
            f"{escape(s['hardware_class'])}, created {escape(str(s['created_at'])[:19])}; {done}. Generated "
            f"{data.generated_at:%Y-%m-%d %H:%M %Z}.</p>")
    if data.empty:
        body = (f'<p class="empty">This sweep has no measurements yet ({done}), so there is nothing to chart. '
                "Run it (<code>wattsweep run</code>, or workers for a submitted sweep) and make the report again."
                "</p><h2>Provenance</h2>" + provenance_section(data))
    else:
        total = (p.get("query_energy_kwh_total") or 0) + (p.get("load_energy_kwh_total") or 0)
        kpis = "".join(f'<span class="kpi"><b>{v}</b>{escape(k)}</span>' for k, v in (
            ("tasks", fmt(len(data.tasks))), ("models", fmt(len({m["model"] for m in data.models}))),
            ("runs measured", fmt(p.get("runs_done"))), ("kWh in total", fmt(total)),
            ("smartphone charges", fmt(total / data.options.phone_charge_kwh))))
        energy = data.energy or {}
        note = escape(f"Energy is {energy.get('definition', 'the headline')}." + (
            f" {energy['note']}." if energy.get("note") else ""))
        body = "".join([
            f"<div>{kpis}</div>", f'<p class="note">{note}</p>',
            "<h2>Energy per task</h2>", task_chart(data),
            "<h2>Energy per task: the study's Table 2</h2>", table2(data),
            "<h2>Models within each task</h2>", model_charts(data),
            "<h2>Energy and model size</h2>", parameter_chart(data),
            "<h2>Stars (AI Energy Score rule)</h2>", stars_section(data),
            "<h2>Energy and batch size</h2>", batch_section(data),
            "<h2>Energy and latency</h2>", latency_section(data),
            serving_section(data.serving),
            output_length_section(data),
            "<h2>Multi-purpose vs task-specific models</h2>", kinds_section(data),
            "<h2>Everyday equivalents</h2>", equivalents_section(data),
            "<h2>Training vs inference</h2>", break_even_section(data),
            "<h2>All models</h2>", models_table(data),
            "<h2>Repetitions per model and dataset</h2>", cells_table(data),
            "<h2>Side by side with Power Hungry Processing</h2>", study_section(data),
            "<h2>Provenance</h2>", provenance_section(data),
        ])
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}{STAR_CSS}</style></head>'
            f"<body>{head}{body}</body></html>\n")
