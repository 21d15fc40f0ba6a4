"""The terminal report: per-task summary and per-cell repetition statistics, as rich tables.

Both read SQL (the v_task_summary view, and db.results.stats for confidence intervals);
emissions can be recomputed for any grid intensity from the stored energy.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from db.results.stats import CellStats, cell_stats
from db.results.views import cell_count, task_rows

# Rows a terminal table shows: rich lays out every row (10,000 cells took 40-50 s), and no one reads that many in a
# terminal; above it, a line names the format that lists them all.
TERMINAL_ROWS = 1000


def _too_many(out: Console, rows: int, what: str, where: str) -> bool:
    if rows <= TERMINAL_ROWS:
        return False
    out.print(f"{rows:,} {what}: more than a terminal table shows ({TERMINAL_ROWS:,}); {where} lists them all")
    return True


def _g3(value: float | None) -> str:
    return f"{value:.3g}" if value is not None else "-"


def _table(title: str, headers: list[str], text_columns: set[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for header in headers:
        text = header in text_columns
        table.add_column(header, justify="left" if text else "right", no_wrap=text)
    return table


def read_report(session: Session, *, sweep_id: int, grid_intensity_g_per_kwh: float | None = None,
                cells: bool = True) -> tuple[list[dict], list[CellStats] | int | None]:
    """What the tables show: the per-task rows and (with `cells`) the per-cell statistics, or only how many cells
    there are where that is more than a terminal table shows (a 10,000-cell sweep's statistics cost 0.3 s to
    count them). Read before printing, so that the caller's transaction ends before the tables are rendered."""
    tasks = task_rows(session, sweep_id=sweep_id)
    if not cells:
        return tasks, None
    count = cell_count(session, sweep_id=sweep_id)
    if count > TERMINAL_ROWS:
        return tasks, count
    return tasks, cell_stats(session, sweep_id=sweep_id, grid_intensity_g_per_kwh=grid_intensity_g_per_kwh)


def print_report(out: Console, tasks: list[dict], cells: list[CellStats] | int | None,
                 grid_intensity_g_per_kwh: float | None = None) -> bool:
    """Print the tables from read_report's rows; False when the sweep has no measurements yet."""
    tasks = sorted(tasks, key=lambda r: (r["kwh_per_1k_mean"] is None, r["kwh_per_1k_mean"] or 0.0, r["task"]))
    tasks = [t for t in tasks if t["runs"]]
    if not tasks:
        out.print("no measurements stored for this sweep yet")
        return False
    intensity = grid_intensity_g_per_kwh
    table = _table("kWh per 1,000 queries by task (mean over runs; std pooled over models and datasets)",
                   ["task", "models", "runs", "kWh/1k", "std pooled", "net of idle", "g CO2e/1k", "estimated"],
                   {"task", "estimated"})
    for t in tasks:
        grams = t["kwh_per_1k_mean"] * intensity if intensity is not None else t["g_co2e_per_1k_mean"]
        table.add_row(t["task"], str(t["models"]), str(t["runs"]), _g3(t["kwh_per_1k_mean"]),
                      _g3(t["kwh_per_1k_std_pooled"]), _g3(t["net_kwh_per_1k_mean"]), _g3(grams),
                      t["estimated_components"])
    out.print(table)
    if cells is not None and not _too_many(out, cells if isinstance(cells, int) else len(cells),
                                           "cells (model x dataset)",
                                           "`wattsweep report SWEEP --format csv --level cell`"):
        table = _table("Repetitions per model and dataset: mean, std, 95% confidence interval (Student t), CV",
                       ["task", "model", "dataset", "runs", "kWh/1k", "std", "95% CI", "CV", "net of idle",
                        "g CO2e/1k", "flags"], {"task", "model", "dataset", "flags"})
        for c in cells:
            s = c.kwh_per_1k
            ci = f"{s.ci95_low:.3g} – {s.ci95_high:.3g}" if s.ci95_low is not None else "-"
            cv = f"{100 * s.cv:.1f}%" if s.cv is not None else "-"
            flags = ", ".join(f for f in (f"{c.outliers} outlier(s)" if c.outliers else "",
                                          f"{c.unreliable} unreliable" if c.unreliable else "") if f) or ""
            flags = ", ".join(f for f in (flags, f"{c.node_wide_runs} node-wide" if c.node_wide_runs else "",
                                          f"{c.excluded} excluded" if c.excluded else "") if f)
            table.add_row(c.task, c.model, c.dataset, str(s.n), _g3(s.mean), _g3(s.std), ci, cv,
                          _g3(c.net_kwh_per_1k_mean), _g3(c.g_co2e_per_1k_mean), flags)
        out.print(table)
    from scheduler.report.data import EXCLUDED_NOTE, HEADLINE, NODE_WIDE_NOTE

    note = f"energy: {HEADLINE}"
    runs, node_wide = sum(t["runs"] for t in tasks), sum(t["node_wide_runs"] or 0 for t in tasks)
    if node_wide:
        note += "; " + NODE_WIDE_NOTE.format(runs=node_wide, total=runs)
    excluded = sum(t["excluded_runs"] or 0 for t in tasks)
    if excluded:
        note += "; " + EXCLUDED_NOTE.format(runs=excluded)
    note += "; estimated: components CodeCarbon modelled rather than measured on this host (RAM always is)"
    if intensity is not None:
        note += f"; g CO2e recomputed at {intensity:g} g/kWh"
    out.print(f"[dim]{note}[/dim]")
    return True


def star_text(stars: int | None) -> str:
    return "★" * stars + "☆" * (5 - stars) if stars is not None else "unrated (size unknown)"


def too_many_ratings(out: Console, count: int) -> bool:
    """Whether `count` rated cells are more than a terminal table shows (then a line says where they are)."""
    return _too_many(out, count, "rated cells", "`wattsweep report SWEEP --format json` (ratings)")


def print_ratings(out: Console, ratings: list[dict], rating: dict) -> None:
    """The AI Energy Score stars per cell, with the energy they rate by and the reference set beside them."""
    if not ratings or too_many_ratings(out, len(ratings)):
        return
    table = _table(f"AI Energy Score rating: {rating['energy_label']}; reference: {rating['reference']}",
                   ["task", "model", "class", "Wh/1k rated", "stars", "band of reference (Wh/1k)"],
                   {"task", "model", "class", "stars"})
    for r in ratings:
        band = (f"{1000 * r['band_low_kwh_per_1k']:.3g} – {1000 * r['band_high_kwh_per_1k']:.3g}"
                if r["band_low_kwh_per_1k"] is not None else "-")
        model = f"{r['model']} [{r['cell_key']}]" if r["cell_key"] else r["model"]
        table.add_row(r["task"], model, r["size_class"] or "-", _g3(r["wh_per_1k"]), star_text(r["stars"]), band)
    out.print(table)
    out.print(f"[dim]stars rate {rating['energy_label']}: {rating['rule']}[/dim]")
