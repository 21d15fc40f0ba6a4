"""`wattsweep compare`'s output: the same (task, model) in two sweeps, as a table, CSV or JSON.

The rows (kWh per 1,000 queries in A and in B, and the ratio B / A) come from
db.results.views.compare_rows; what is computed here is the summary: the
geometric mean of the ratios per task and overall (ratios multiply, so their
mean is geometric).
"""

from __future__ import annotations

import math
from typing import IO, Any

from rich.console import Console

Row = dict[str, Any]


def geometric_mean(values: list[float]) -> float | None:
    """Of the positive values (None and zero ratios are left out); None when none is left."""
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def write_compare_csv(handle: IO[str], rows: list[Row]) -> None:
    import csv

    writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["task", "model", "ratio"],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def compare_json(a, b, rows: list[Row], only_a: int, only_b: int) -> str:
    import json

    from scheduler.report.data import HEADLINE

    return json.dumps({"a": {"id": a.id, "name": a.name}, "b": {"id": b.id, "name": b.name},
                       "energy": HEADLINE, "pairs": rows, "only_in_a": only_a, "only_in_b": only_b},
                      indent=2) + "\n"


def print_compare_table(out: Console, a, b, rows: list[Row], only_a: int, only_b: int) -> None:
    from rich.table import Table

    def g3(value):
        return f"{value:.3g}" if value is not None else "-"

    table = Table(title=f"kWh per 1,000 queries: B = {b.name} ({b.hardware_class}) vs A = {a.name} "
                        f"({a.hardware_class})")
    for header in ("task", "model", "A", "B", "B / A"):
        table.add_column(header, justify="left" if header in ("task", "model") else "right")
    for r in rows:
        model = f"{r['model']} [{r['cell_key']}]" if r.get("cell_key") else r["model"]
        table.add_row(r["task"], model, g3(r["kwh_per_1k_a"]), g3(r["kwh_per_1k_b"]), g3(r["ratio"]))
    for task in sorted({r["task"] for r in rows}):
        mean = geometric_mean([r["ratio"] for r in rows if r["task"] == task])
        table.add_row(f"[bold]{task}[/bold]", "[dim]geometric mean[/dim]", "", "", f"[bold]{g3(mean)}[/bold]")
    out.print(table)
    overall = geometric_mean([r["ratio"] for r in rows])
    out.print(f"{len(rows)} pair(s); geometric mean of B / A: {g3(overall)}; only in A: {only_a}, "
              f"only in B: {only_b}")
    node_wide = sum(r["node_wide_runs"] or 0 for r in rows)
    out.print("[dim]headline energy: each window's own (pinned GPU + attributed CPU and RAM)"
              + (f"; {node_wide} run(s) have only node-wide readings (imported or older rows)" if node_wide
                 else "") + "[/dim]")
