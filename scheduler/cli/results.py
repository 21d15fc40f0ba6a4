"""Result commands: report (tables, CSV, JSON, HTML), import (CodeCarbon logs), export (the flat runs view),
compare (two sweeps).

Everything reads the SQL views; the files and tables are written by scheduler.report (export, compare, render,
table); heavy imports (pyarrow) stay inside commands.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from scheduler.cli.options import (
    DatabaseOpt,
    SweepArg,
    collector_paused,
    console,
    fail,
    find_sweep_or_fail,
    open_out,
    open_sessions,
    reference_or_fail,
    safe_name,
)

app = typer.Typer()
import_app = typer.Typer(help="Import measurements made elsewhere into an imported sweep.", no_args_is_help=True)
app.add_typer(import_app, name="import")


def print_summary(sessions, sweep_id: int, out: Console | None = None, grid_intensity: float | None = None,
                   cells: bool = True) -> None:
    from scheduler.report.table import print_report, read_report

    with sessions() as session:  # read, and end the transaction before printing
        tasks, cell_rows = read_report(session, sweep_id=sweep_id, grid_intensity_g_per_kwh=grid_intensity, cells=cells)
    print_report(out or console, tasks, cell_rows, grid_intensity)


@app.command()
@collector_paused
def report(
    sweep: SweepArg = None,
    database_url: DatabaseOpt = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table | csv | json | html.")] = "table",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file (html default: "
                                             "<sweep>-report.html).")] = None,
    phone_charge_kwh: Annotated[float, typer.Option(help="kWh per smartphone charge (EPA, as in the study).")] = 0.022,
    car_g_per_km: Annotated[float, typer.Option(help="g CO2e per km, average petrol car (EPA: 393 g/mile).")] = 244.2,
    daily_queries: Annotated[int, typer.Option(help="Queries a day, for the training break-even.")] = 1_000_000,
    training_energy: Annotated[list[str] | None, typer.Option(
        "--training-energy", help="MODEL=KWH declared training energy; repeatable.")] = None,
    grid_intensity: Annotated[float | None, typer.Option(
        "--grid-intensity", help="Recompute emissions from stored energy at this g CO2e/kWh.")] = None,
    rate_against: Annotated[str | None, typer.Option(
        "--rate-against", help="Star ratings against this sweep's models, or a reference set imported with "
                         "`import aienergyscore` (default: the sweep itself).")] = None,
    rating_energy: Annotated[str, typer.Option(
        "--rating-energy", help="Stars by gpu energy (as AI Energy Score) or the headline energy.")] = "gpu",
    accounting: Annotated[str, typer.Option(
        "--accounting", help="headline (each window's own energy) or study (node-wide readings, the way Power "
                             "Hungry Processing computed its figures; table, csv or json).")] = "headline",
    level: Annotated[str, typer.Option(
        "--level", help="CSV rows: task, model, or cell (model x dataset, with 95% CI).")] = "task",
) -> None:
    """A sweep's results: per-task table (default), CSV, JSON, or a self-contained HTML report with charts."""
    from scheduler.report.render import FORMATS, LEVELS
    from scheduler.report.study import ACCOUNTING

    if accounting not in ACCOUNTING:
        fail(f"--accounting {accounting!r}: use headline or study")
    if accounting == "study" and format == "html":
        fail("--accounting study: use --format table, csv or json (the HTML report always shows the study's "
             "accounting beside the headline)")
    if level not in LEVELS:
        fail(f"--level {level!r}: use one of {', '.join(LEVELS)}")
    if level != "task" and (format != "csv" or accounting == "study"):
        fail(f"--level {level}: only with --format csv (and the headline accounting)")
    if rating_energy not in ("gpu", "headline"):
        fail(f"--rating-energy {rating_energy!r}: use gpu or headline")
    if format not in FORMATS:
        fail(f"--format {format!r}: use one of {', '.join(FORMATS)}")
    if phone_charge_kwh <= 0 or car_g_per_km <= 0 or daily_queries <= 0:
        fail("--phone-charge-kwh, --car-g-per-km and --daily-queries must be positive")
    if grid_intensity is not None and grid_intensity < 0:
        fail(f"--grid-intensity {grid_intensity:g}: give g CO2e per kWh, 0 or more")
    sessions = open_sessions(database_url)
    if rate_against is not None:
        with sessions() as session:
            reference_or_fail(session, rate_against, rating_energy)
    if accounting == "study":
        _report_study(sessions, sweep, format, out)
        return
    if format == "table":
        with sessions() as session:
            found = find_sweep_or_fail(session, sweep)

        def tables(to: Console) -> None:
            from db.results.views import model_count, model_rows
            from scheduler.report.power_limits import limits_by_job
            from scheduler.report.table import TERMINAL_ROWS

            print_summary(sessions, found.id, to, grid_intensity=grid_intensity)
            with sessions() as session:  # the stars and the power limits read the same model rows: once
                limits = limits_by_job(session, sweep_id=found.id)
                count = model_count(session, sweep_id=found.id)
                # past the table's limit the stars are only counted, and without limits no row makes a group:
                # then 10,000 models' rows are not read
                models = model_rows(session, sweep_id=found.id) if count <= TERMINAL_ROWS or limits else []
            _print_stars(sessions, found, to, rating_energy, rate_against, models, count)
            _print_serving(sessions, found, to)
            _print_power_limits(to, models, limits)

        _print_tables(found, out, tables, width=120)
        return
    from scheduler.report.data import (
        ReportOptions,
        TrainingEnergyError,
        build_report,
        parse_training_energy,
        read_level,
        read_report,
    )
    from scheduler.report.render import csv_rows, render

    try:
        options = ReportOptions(phone_charge_kwh, car_g_per_km, daily_queries, parse_training_energy(training_energy),
                                grid_intensity, rating_energy, rate_against)
    except TrainingEnergyError as error:
        fail(str(error))
    with sessions() as session:  # read, and end the transaction before the arithmetic and the rendering
        found = find_sweep_or_fail(session, sweep)
        rows = read_level(session, found, level, options) if format == "csv" else read_report(session, found, options)
    text = csv_rows(rows, level) if format == "csv" else render(build_report(rows, options), format, level)
    if format == "html" and out is None:
        out = Path(f"{safe_name(found.name)}-report.html")
    _write_text(text, out)


def _print_power_limits(to: Console, models: list, limits: dict) -> None:
    from scheduler.report.power_limits import power_limit_groups, print_power_limits

    print_power_limits(power_limit_groups(models, limits), to)


def _print_serving(sessions, found, to: Console) -> None:
    from db.results.views import serving_cell_rows
    from scheduler.report.serving import print_serving

    with sessions() as session:
        print_serving(serving_cell_rows(session, sweep_id=found.id), to)


def _print_tables(found, out: Path | None, tables, width: int) -> None:
    """The sweep's title and `tables(console)` on the terminal, or in `out` as plain text."""
    title = f"sweep [bold]{found.name}[/bold] (id {found.id}, {found.hardware_class}, {found.mode})"
    if out is None:
        console.print(title)
        tables(console)
        return
    with open_out(out) as handle:
        file_console = Console(file=handle, width=width, no_color=True)
        file_console.print(title)
        tables(file_console)
    console.print(f"wrote {out}")


def _write_text(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    with open_out(out) as handle:
        handle.write(text)
    console.print(f"wrote {out} ({out.stat().st_size:,} bytes)")


def _report_study(sessions, sweep: str | None, format: str, out: Path | None) -> None:
    """`--accounting study`: the study's arithmetic over the node-wide readings (scheduler.report.study)."""
    from scheduler.report.study import print_study, study_document, to_csv, to_json

    with sessions() as session:
        found = find_sweep_or_fail(session, sweep)
        document = study_document(session, sweep_id=found.id)
    info = {"id": found.id, "name": found.name, "mode": found.mode, "hardware_class": found.hardware_class}
    if format == "table":
        _print_tables(found, out, lambda to: print_study(to, document), width=140)
        return
    _write_text(to_csv(document) if format == "csv" else to_json(document, info), out)


def _print_stars(sessions, found, out: Console, energy: str, rate_against: str | None, models: list,
                 count: int) -> None:
    """The stars of the `count` model rows (`models`: those rows, read only where the table lists them)."""
    from scheduler.report.data import ReportOptions, read_reference, star_ratings
    from scheduler.report.table import TERMINAL_ROWS, print_ratings, too_many_ratings

    if count > TERMINAL_ROWS:  # a rating per model row, too many to list: say so without rating them
        too_many_ratings(out, count)
        return
    options = ReportOptions(rating_energy=energy, rate_against=rate_against)
    with sessions() as session:  # the stars need the models' rows only, not the whole report's
        reference, reference_name = read_reference(session, found, options, models)
    print_ratings(out, *star_ratings(found, models, reference, reference_name, options))


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

    from db.results.imports import ImportRefused, import_windows
    from scheduler.importer import ImportFileError, hardware_class_of, options_problem, read_files
    from worker.contract.tasks import TASKS

    if problem := options_problem(sweep=sweep, dataset=dataset, hardware_class=hardware_class):
        fail(f"{problem} (nothing imported)")

    if task not in TASKS:
        close = difflib.get_close_matches(task, sorted(TASKS), n=3)
        fail(f"--task {task!r}: unknown task" + (f"; did you mean {', '.join(close)}?" if close else
                                                 f"; allowed are {', '.join(sorted(TASKS))}"))
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
    sessions = open_sessions(database_url, migrate_sqlite=True)
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
    if summary.query_runs:
        console.print("[dim]imported windows have only CodeCarbon's node-wide readings: reports show them as they "
                      "are (energy_basis node-wide), with nothing attributed between processes[/dim]")
    if queries is None and summary.query_runs:
        console.print("[yellow]note:[/yellow] without --queries, energy per 1,000 queries cannot be computed; "
                      "totals are stored")


@import_app.command("aienergyscore")
def import_aienergyscore(
    files: Annotated[list[Path], typer.Argument(help="The leaderboard's per-task CSV files (e.g. "
                                                     "text_generation.csv: model, total_gpu_energy, class).")],
    task: Annotated[str | None, typer.Option(help="The task of every file (default: each file's name).")] = None,
    name: Annotated[str, typer.Option("--name", help="The reference set's name, for --rate-against.")]
    = "aienergyscore",
    database_url: DatabaseOpt = None,
) -> None:
    """Import AI Energy Score's published results as a reference set, in one transaction: a bad file imports
    nothing. `report --rate-against NAME` then gives the stars the leaderboard would."""
    from db.queue.sweeps import SweepNotFound, find_sweep
    from db.results.references import store_reference
    from scheduler.report.aies_reference import ReferenceFileError, read_reference, source_of

    if not name.strip() or len(name) > 200:
        fail("--name: give a name of 1 to 200 characters (nothing imported)")
    rows = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            fail(f"{path}: cannot read it ({getattr(error, 'strerror', None) or error}) (nothing imported)")
        try:
            parsed = read_reference(path, text, task)
        except ReferenceFileError as error:
            fail(f"{error} (nothing imported)")
        rows += [{"task": r.task, "model": r.model, "size_class": r.size_class, "gpu_kwh_per_1k": r.gpu_kwh_per_1k,
                  "published_stars": r.published_stars, "source": source_of(path, text)} for r in parsed]
    sessions = open_sessions(database_url, migrate_sqlite=True)
    with sessions.begin() as session:
        try:
            find_sweep(session, ref=name)
            fail(f"--name {name}: a sweep has that name; give the reference set another (nothing imported)")
        except SweepNotFound:
            pass
        stored = store_reference(session, name=name, rows=rows)
    tasks = sorted({row["task"] for row in rows})
    console.print(f"reference set [bold]{name}[/bold]: {stored} model(s) on {', '.join(tasks)}; rate a sweep "
                  f"against it with `wattsweep report SWEEP --rate-against {name}`", highlight=False)


@app.command()
@collector_paused
def export(
    sweep: SweepArg = None,
    format: Annotated[str, typer.Option("--format", "-f", help="csv | parquet | aienergyscore (a submission for "
                                        "one --model).")] = "csv",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File (default: <sweep>-<view>.<format>); for "
                                             "aienergyscore a folder (<model>-<task>-aienergyscore).")] = None,
    view: Annotated[str, typer.Option("--view", help="runs (v_runs) | serving (v_serving: served runs' figures).")]
    = "runs",
    model: Annotated[str | None, typer.Option("--model", help="aienergyscore: the model, as in the sweep.")] = None,
    task: Annotated[str | None, typer.Option("--task", help="aienergyscore: the task, where the model has several.")]
    = None,
    cell: Annotated[str | None, typer.Option("--cell", help="aienergyscore: the cell, where there are several.")]
    = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Export the flat runs view (one row per run, with its measurement and worker) of a sweep, its served runs'
    figures (`--view serving`: tokens, latencies, the steady part, energy per output token), or one model's
    AI Energy Score submission (benchmark_report.json, GPU_ENERGY_WH.txt)."""
    from db.results.views import run_rows, serving_rows
    from scheduler.report.export import ExportFileError, write_runs_csv, write_runs_parquet

    if format not in ("csv", "parquet", "aienergyscore"):
        fail(f"--format {format!r}: use csv, parquet or aienergyscore")
    if view not in ("runs", "serving"):
        fail(f"--view {view!r}: use runs or serving")
    if format != "aienergyscore" and (model or task or cell):
        fail("--model, --task and --cell go with --format aienergyscore")
    if format == "aienergyscore" and not model:
        fail("--format aienergyscore: name the model with --model (a submission is one model's)")
    sessions = open_sessions(database_url)
    if format == "aienergyscore":
        from scheduler.cli.submission import export_submission

        export_submission(sessions, sweep, model, task, cell, out)
        return
    with sessions() as session:
        found = find_sweep_or_fail(session, sweep)
        out = out or Path(f"{safe_name(found.name)}-{view}.{format}")
        batches = (run_rows if view == "runs" else serving_rows)(session, sweep_id=found.id)
        name = "v_runs" if view == "runs" else "v_serving"
        if format == "parquet":
            try:
                rows = write_runs_parquet(out, batches, name)
            except ExportFileError as error:
                fail(str(error))
        else:
            with open_out(out) as handle:
                rows = write_runs_csv(handle, batches, name)
    console.print(f"wrote {out}: {rows:,} run(s) of sweep {found.name} ({out.stat().st_size:,} bytes)")


@app.command()
def compare(
    sweep_a: Annotated[str, typer.Argument(help="Baseline sweep (id or name).")],
    sweep_b: Annotated[str, typer.Argument(help="Sweep compared with it.")],
    format: Annotated[str, typer.Option("--format", "-f", help="table | csv | json.")] = "table",
    database_url: DatabaseOpt = None,
) -> None:
    """Energy of the same (task, model) in two sweeps: kWh per 1,000 queries and the ratio B / A."""
    from db.results.views import compare_rows, unmatched_models
    from scheduler.report.compare import compare_json, print_compare_table, write_compare_csv

    if format not in ("table", "csv", "json"):
        fail(f"--format {format!r}: use table, csv or json")
    sessions = open_sessions(database_url)
    with sessions() as session:
        a, b = find_sweep_or_fail(session, sweep_a), find_sweep_or_fail(session, sweep_b)
        rows = compare_rows(session, sweep_a=a.id, sweep_b=b.id)
        only_a, only_b = unmatched_models(session, sweep_a=a.id, sweep_b=b.id)
    if format == "csv":
        write_compare_csv(sys.stdout, rows)
    elif format == "json":
        sys.stdout.write(compare_json(a, b, rows, only_a, only_b))
    else:
        print_compare_table(console, a, b, rows, only_a, only_b)
    if not rows:
        fail(f"no (task, model) was measured in both {a.name} and {b.name}", code=1)
