"""Result commands: import (CodeCarbon logs), export (the flat runs view), compare (two sweeps).

Registered on the one `wattsweep` app by scheduler.cli (`report` lives there).
Everything reads the SQL views; heavy imports (pyarrow) stay inside commands.
"""

from __future__ import annotations

import difflib
import math
import sys
from pathlib import Path
from typing import Annotated

import typer

from scheduler.cli import DatabaseOpt, SweepArg, _find, _open_out, _safe_name, _sessions, app, console, fail

import_app = typer.Typer(help="Import measurements made elsewhere into an imported sweep.", no_args_is_help=True)
app.add_typer(import_app, name="import")


@import_app.command("codecarbon")
def import_codecarbon(
    files: Annotated[list[Path], typer.Argument(help="CodeCarbon CSV files: emissions.csv or per-task files.")],
    task: Annotated[str, typer.Option(help="The task the files measured, e.g. text-classification.")],
    dataset: Annotated[str, typer.Option(help="Dataset name stored on each run.")] = "imported",
    sweep: Annotated[str | None, typer.Option(
        "--sweep", help="Imported sweep to create or add to (default: imported-<task>-<time>).")] = None,
    queries: Annotated[int | None, typer.Option(
        help="Queries per query window (needed for kWh per 1,000 queries).", min=1)] = None,
    model: Annotated[str | None, typer.Option(help="Model name for every row (default: project_name).")] = None,
    hardware_class: Annotated[str | None, typer.Option(
        help="Hardware class (default: from the files' GPU or CPU model).")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Import CodeCarbon 2.x/3.x CSV files in one transaction: a malformed file imports nothing."""
    from datetime import datetime

    from db.imports import ImportRefused, import_windows
    from scheduler.importer import ImportFileError, hardware_class_of, read_files
    from worker.workloads import WORKLOADS

    if task not in WORKLOADS:
        close = difflib.get_close_matches(task, sorted(WORKLOADS), n=3)
        fail(f"--task {task!r}: unknown task" + (f"; did you mean {', '.join(close)}?" if close else
                                                 f"; allowed are {', '.join(sorted(WORKLOADS))}"))
    try:
        parsed = read_files(files, model=model)
    except ImportFileError as error:
        fail(f"{error} (nothing imported)")
    windows = [w for f in parsed for w in f.windows]
    if not windows:
        fail("the files hold no rows (nothing imported)")
    sources = [{"path": f.path, "sha256": f.sha256, "layout": f.layout, "rows": len(f.windows), **f.software}
               for f in parsed]
    name = sweep or f"imported-{task}-{datetime.now():%Y%m%d-%H%M%S}"
    sessions = _sessions(database_url, migrate_sqlite=True)
    try:
        with sessions.begin() as session:
            summary = import_windows(session, sweep_name=name, task=task,
                                     hardware_class=hardware_class or hardware_class_of(parsed), dataset=dataset,
                                     queries=queries, windows=windows, sources=sources)
    except ImportRefused as error:
        fail(f"{error} (nothing imported)")
    verb = "created" if summary.created else "added to"
    console.print(f"{verb} sweep [bold]{summary.sweep_name}[/bold] (id {summary.sweep_id}, mode imported): "
                  f"{summary.jobs} model(s), {summary.query_runs} query run(s), {summary.load_windows} load "
                  f"window(s) from {len(parsed)} file(s)")
    if queries is None and summary.query_runs:
        console.print("[yellow]note:[/yellow] without --queries, energy per 1,000 queries cannot be computed; "
                      "totals are stored")


@app.command()
def export(
    sweep: SweepArg = None,
    format: Annotated[str, typer.Option("--format", "-f", help="csv | parquet.")] = "csv",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File (default: <sweep>-runs.<format>).")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Export the flat runs view (one row per run, with its measurement and worker) of a sweep."""
    from db.views import run_rows

    if format not in ("csv", "parquet"):
        fail(f"--format {format!r}: use csv or parquet")
    sessions = _sessions(database_url)
    with sessions() as session:
        found = _find(session, sweep)
        out = out or Path(f"{_safe_name(found.name)}-runs.{format}")
        batches = run_rows(session, sweep_id=found.id)
        rows = _write_parquet(out, batches) if format == "parquet" else _write_csv(out, batches)
    console.print(f"wrote {out}: {rows:,} run(s) of sweep {found.name} ({out.stat().st_size:,} bytes)")


def _write_csv(out: Path, batches) -> int:
    import csv

    from db.views import VIEW_COLUMNS

    rows = 0
    with _open_out(out) as handle:
        writer = csv.DictWriter(handle, fieldnames=list(VIEW_COLUMNS["v_runs"]), lineterminator="\n")
        writer.writeheader()
        for batch in batches:
            writer.writerows(batch)
            rows += len(batch)
    return rows


def _write_parquet(out: Path, batches) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sqlalchemy import BigInteger, Boolean, DateTime, Float

    from db.views import VIEW_COLUMNS

    def arrow(sql_type):
        if isinstance(sql_type, BigInteger):
            return pa.int64()
        if isinstance(sql_type, Float):
            return pa.float64()
        if isinstance(sql_type, Boolean):
            return pa.bool_()
        if isinstance(sql_type, DateTime):
            return pa.timestamp("us", tz="UTC")
        return pa.string()

    schema = pa.schema([(name, arrow(t)) for name, t in VIEW_COLUMNS["v_runs"].items()])
    rows = 0
    try:
        writer = pq.ParquetWriter(str(out), schema)
    except OSError as error:
        fail(f"cannot write {out}: {error}")
    with writer:
        for batch in batches:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            rows += len(batch)
        if rows == 0:
            writer.write_table(schema.empty_table())
    return rows


@app.command()
def compare(
    sweep_a: Annotated[str, typer.Argument(help="Baseline sweep (id or name).")],
    sweep_b: Annotated[str, typer.Argument(help="Sweep compared with it.")],
    format: Annotated[str, typer.Option("--format", "-f", help="table | csv | json.")] = "table",
    database_url: DatabaseOpt = None,
) -> None:
    """Energy of the same (task, model) in two sweeps: kWh per 1,000 queries and the ratio B / A."""
    from db.views import compare_rows, unmatched_models

    if format not in ("table", "csv", "json"):
        fail(f"--format {format!r}: use table, csv or json")
    sessions = _sessions(database_url)
    with sessions() as session:
        a, b = _find(session, sweep_a), _find(session, sweep_b)
        rows = compare_rows(session, sweep_a=a.id, sweep_b=b.id)
        only_a, only_b = unmatched_models(session, sweep_a=a.id, sweep_b=b.id)
    if format == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["task", "model", "ratio"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    elif format == "json":
        import json

        sys.stdout.write(json.dumps({"a": {"id": a.id, "name": a.name}, "b": {"id": b.id, "name": b.name},
                                     "pairs": rows, "only_in_a": only_a, "only_in_b": only_b}, indent=2) + "\n")
    else:
        _compare_table(a, b, rows, only_a, only_b)
    if not rows:
        fail(f"no (task, model) was measured in both {a.name} and {b.name}", code=1)


def _geometric_mean(values: list[float]) -> float | None:
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def _compare_table(a, b, rows, only_a: int, only_b: int) -> None:
    from rich.table import Table

    def g3(value):
        return f"{value:.3g}" if value is not None else "-"

    table = Table(title=f"kWh per 1,000 queries: B = {b.name} ({b.hardware_class}) vs A = {a.name} "
                        f"({a.hardware_class})")
    for header in ("task", "model", "A", "B", "B / A"):
        table.add_column(header, justify="left" if header in ("task", "model") else "right")
    for r in rows:
        table.add_row(r["task"], r["model"], g3(r["kwh_per_1k_a"]), g3(r["kwh_per_1k_b"]), g3(r["ratio"]))
    for task in sorted({r["task"] for r in rows}):
        mean = _geometric_mean([r["ratio"] for r in rows if r["task"] == task])
        table.add_row(f"[bold]{task}[/bold]", "[dim]geometric mean[/dim]", "", "", f"[bold]{g3(mean)}[/bold]")
    console.print(table)
    overall = _geometric_mean([r["ratio"] for r in rows])
    console.print(f"{len(rows)} pair(s); geometric mean of B / A: {g3(overall)}; only in A: {only_a}, "
                  f"only in B: {only_b}")
