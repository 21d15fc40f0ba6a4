"""The `wattsweep` command line. Heavy imports happen inside commands, so `--help` is fast."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(help="Measure the energy and carbon cost of AI inference across a task x model matrix.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")

console = Console(width=None if sys.stdout.isatty() else 160)  # piped output keeps whole table rows
errors = Console(stderr=True)

SweepArg = Annotated[str | None, typer.Argument(help="Sweep id or name (default: the latest sweep).")]
DatabaseOpt = Annotated[
    str | None, typer.Option("--database-url", envvar="WATTSWEEP_DATABASE_URL", show_envvar=True,
                             help="SQLAlchemy URL; default sqlite:///wattsweep.db.")
]


def fail(message: str, code: int = 2) -> NoReturn:
    message = "; ".join(line.strip() for line in str(message).splitlines() if line.strip())  # one line, always
    errors.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _settings(database_url: str | None):
    from db.settings import Settings, get_settings

    return Settings(database_url=database_url) if database_url else get_settings()


def _sessions(database_url: str | None, *, migrate_sqlite: bool = False):
    """A session factory for a database whose schema is in place."""
    from db.migrate import is_up_to_date, upgrade
    from db.session import DatabaseUnavailable, session_factory

    url = _settings(database_url).database_url
    try:
        if not is_up_to_date(url):
            if migrate_sqlite and url.startswith("sqlite"):
                upgrade(url)  # a new local results file: create the schema
            else:
                fail("the database has no wattsweep schema, or an older one: run `wattsweep db upgrade`")
    except DatabaseUnavailable as error:
        fail(str(error))
    return session_factory(url)


@app.command()
def run(
    sweep_file: Annotated[Path, typer.Argument(help="Sweep file (YAML).")],
    database_url: DatabaseOpt = None,
    hardware_class: Annotated[str | None, typer.Option(help="Override the file's hardware_class.")] = None,
) -> None:
    """Run a sweep in this process (local mode) and print its per-task summary."""
    from scheduler.spec import SpecError, load_sweep
    from scheduler.submit import create_sweep

    try:
        spec = load_sweep(sweep_file)
    except SpecError as error:
        fail(str(error))
    settings = _settings(database_url)
    sessions = _sessions(database_url, migrate_sqlite=True)
    with sessions.begin() as session:
        sweep = create_sweep(session, spec, mode="local", hardware_class=hardware_class,
                             max_attempts=settings.max_attempts)
        sweep_id, sweep_hardware = sweep.id, sweep.hardware_class
    console.print(f"sweep [bold]{spec.name}[/bold] (id {sweep_id}) -> {_masked(settings.database_url)}")
    _run_with_progress(sweep_id, sweep_hardware, sessions, settings)
    _print_summary(sessions, sweep_id, cells=False)  # `wattsweep report` adds the per-model statistics
    with sessions() as session:
        from db.sweeps import failed_jobs

        failed = failed_jobs(session, sweep_id=sweep_id)
        for job in failed:
            errors.print(f"[red]failed:[/red] {job.task} / {job.model}: {job.last_error}", highlight=False,
                         soft_wrap=True)
    if failed:
        fail(f"{len(failed)} job(s) failed; the rest of the sweep is stored", code=1)


def _run_with_progress(sweep_id: int, hardware_class: str, sessions, settings) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from db.sweeps import sweep_progress
    from worker.local import run_sweep_locally
    from worker.runtime import WorkerRuntime, local_worker_id

    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    runtime = WorkerRuntime(worker_id=local_worker_id(), device="cpu", hardware_class=hardware_class,
                            sessions=sessions, measure_power_secs=settings.measure_power_secs)
    runtime.register()
    with sessions() as session:
        total = sweep_progress(session, sweep_id=sweep_id).runs_total
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("runs"),
               TimeRemainingColumn())
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            bar = progress.add_task("starting", total=total)

            def on_event(event) -> None:
                label = f"{event.task} / {event.model}"
                if event.kind == "loaded":
                    progress.update(bar, description=f"{label}: measuring")
                elif event.kind == "run":
                    progress.advance(bar)
                elif event.kind == "finished":
                    with sessions() as session:
                        p = sweep_progress(session, sweep_id=sweep_id)
                    progress.update(bar, completed=p.runs_done + p.runs_failed,
                                    description=f"{label}: {event.detail.split(':')[0]}")

            run_sweep_locally(sweep_id, runtime, on_event)
    finally:
        runtime.close()


def _print_summary(sessions, sweep_id: int, out: Console | None = None, grid_intensity: float | None = None,
                   cells: bool = True) -> None:
    from scheduler.report_table import print_report

    with sessions() as session:
        print_report(out or console, session, sweep_id=sweep_id, grid_intensity_g_per_kwh=grid_intensity, cells=cells)


def _masked(url: str) -> str:
    from db.settings import mask_url

    return mask_url(url)


def _find(session, sweep: str | None):
    from db.sweeps import SweepNotFound, find_sweep

    try:
        return find_sweep(session, ref=sweep)
    except SweepNotFound as error:
        fail(str(error))


@app.command()
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
) -> None:
    """A sweep's results: per-task table (default), CSV, JSON, or a self-contained HTML report with charts."""
    from scheduler.report import FORMATS

    if format not in FORMATS:
        fail(f"--format {format!r}: use one of {', '.join(FORMATS)}")
    if phone_charge_kwh <= 0 or car_g_per_km <= 0 or daily_queries <= 0:
        fail("--phone-charge-kwh, --car-g-per-km and --daily-queries must be positive")
    if grid_intensity is not None and grid_intensity < 0:
        fail(f"--grid-intensity {grid_intensity:g}: give g CO2e per kWh, 0 or more")
    sessions = _sessions(database_url)
    if format == "table":
        with sessions() as session:
            found = _find(session, sweep)
        title = f"sweep [bold]{found.name}[/bold] (id {found.id}, {found.hardware_class}, {found.mode})"
        if out is None:
            console.print(title)
            _print_summary(sessions, found.id, grid_intensity=grid_intensity)
            return
        with _open_out(out) as handle:
            file_console = Console(file=handle, width=120, no_color=True)
            file_console.print(title)
            _print_summary(sessions, found.id, file_console, grid_intensity=grid_intensity)
        console.print(f"wrote {out}")
        return
    from scheduler.report import render
    from scheduler.report_data import ReportOptions, TrainingEnergyError, gather, parse_training_energy

    try:
        options = ReportOptions(phone_charge_kwh, car_g_per_km, daily_queries, parse_training_energy(training_energy),
                                grid_intensity)
    except TrainingEnergyError as error:
        fail(str(error))
    with sessions() as session:
        found = _find(session, sweep)
        text = render(gather(session, found, options), format)
    if format == "html" and out is None:
        out = Path(f"{_safe_name(found.name)}-report.html")
    if out is None:
        sys.stdout.write(text)
        return
    with _open_out(out) as handle:
        handle.write(text)
    console.print(f"wrote {out} ({out.stat().st_size:,} bytes)")


def _safe_name(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "sweep"


def _open_out(path: Path):
    try:
        return open(path, "w", encoding="utf-8", newline="")
    except OSError as error:
        fail(f"cannot write {path}: {error.strerror}")


@app.command()
def status(
    sweep: SweepArg = None,
    database_url: DatabaseOpt = None,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh every 2 s until the sweep finishes.")] = False,
) -> None:
    """Jobs and runs of a sweep: done, running (on which worker), queued, failed, and an ETA."""
    from scheduler.live_view import status_lines

    sessions = _sessions(database_url)
    with sessions() as session:
        found = _find(session, sweep)
        lines = status_lines(session, found)
    if not watch:
        for line in lines:
            console.print(line, highlight=False)
        return
    _watch_status(sessions, found.id)


def _watch_status(sessions, sweep_id: int) -> None:
    import time

    from rich.live import Live
    from rich.text import Text

    from db.models import Sweep
    from db.sweeps import sweep_progress
    from scheduler.live_view import status_lines

    def render():
        with sessions() as session:
            sweep = session.get(Sweep, sweep_id)
            finished = sweep.cancelled or sweep_progress(session, sweep_id=sweep_id).finished
            return Text.from_markup("\n".join(status_lines(session, sweep))), finished

    view, finished = render()
    with Live(view, console=console, auto_refresh=False) as live:
        while not finished:
            time.sleep(2)
            view, finished = render()
            live.update(view, refresh=True)


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseOpt = None) -> None:
    """Apply the committed schema migrations to the database."""
    from db.migrate import upgrade
    from db.session import DatabaseUnavailable

    url = _settings(database_url).database_url
    try:
        upgrade(url)
    except DatabaseUnavailable as error:
        fail(str(error))
    console.print(f"schema up to date at {_masked(url)}")


# Command modules register themselves on `app`: distributed mode (submit, worker, workers, reconcile, ...),
# study (plan, pull), results (import, export, compare).
from scheduler import (  # noqa: E402
    cli_distributed,  # noqa: F401
    cli_results,  # noqa: F401
    cli_study,  # noqa: F401
)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        errors.print("interrupted: the runs finished so far are stored")
        sys.exit(130)
