"""`wattsweep run`: a whole sweep in this process, into SQLite or Postgres (local mode)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from scheduler.cli.options import DatabaseOpt, console, errors, fail, load_spec, masked, open_sessions, settings_for
from scheduler.cli.results import print_summary

app = typer.Typer()


@app.command()
def run(
    sweep_file: Annotated[Path, typer.Argument(help="Sweep file (YAML).")],
    database_url: DatabaseOpt = None,
    hardware_class: Annotated[str | None, typer.Option(help="Override the file's hardware_class.")] = None,
) -> None:
    """Run a sweep in this process (local mode) and print its per-task summary."""
    from scheduler.plan.submit import create_sweep

    spec = load_spec(sweep_file)
    _refuse_multi_gpu(spec)
    settings = settings_for(database_url)
    sessions = open_sessions(database_url, migrate_sqlite=True)
    with sessions.begin() as session:
        sweep = create_sweep(session, spec, mode="local", hardware_class=hardware_class,
                             max_attempts=settings.max_attempts)
        sweep_id, sweep_hardware = sweep.id, sweep.hardware_class
    console.print(f"sweep [bold]{spec.name}[/bold] (id {sweep_id}) -> {masked(settings.database_url)}")
    _run_with_progress(sweep_id, sweep_hardware, sessions, settings)
    print_summary(sessions, sweep_id, cells=False)  # `wattsweep report` adds the per-model statistics
    with sessions() as session:
        from db.queue.sweeps import failed_jobs

        failed = failed_jobs(session, sweep_id=sweep_id)
        for job in failed:
            errors.print(f"[red]failed:[/red] {job.task} / {job.model}: {job.last_error}", highlight=False,
                         soft_wrap=True)
    if failed:
        fail(f"{len(failed)} job(s) failed; the rest of the sweep is stored", code=1)


def _refuse_multi_gpu(spec) -> None:
    """Local mode runs every job on this process's one device: a job needing more is refused before anything is
    written (it would otherwise wait for a worker that never comes)."""
    from scheduler.spec.gpus import model_gpus

    needs = {ref: gpus for ref, gpus in model_gpus(spec).items() if gpus > 1}
    if needs:
        ref, gpus = next(iter(needs.items()))
        more = f" (and {len(needs) - 1} more model(s))" if len(needs) > 1 else ""
        fail(f"{ref} needs {gpus} GPUs{more}, but `wattsweep run` runs on one device: submit the sweep "
             f"(`wattsweep submit`) to workers holding {gpus} GPUs (`wattsweep worker --gpus`), or run it on one "
             f"with model_gpus: {{{ref}: 1}}")


def _run_with_progress(sweep_id: int, hardware_class: str, sessions, settings) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from db.queue.sweeps import sweep_progress
    from worker.process.local import run_sweep_locally
    from worker.process.runtime import WorkerRuntime, local_worker_id

    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    from worker.process.inventory import HostIdentityError

    try:
        runtime = WorkerRuntime(worker_id=local_worker_id(), device="cpu", hardware_class=hardware_class,
                                sessions=sessions)
    except HostIdentityError as error:
        fail(str(error))
    runtime.register()
    with sessions() as session:
        total = sweep_progress(session, sweep_id=sweep_id).runs_total
    # plain text: a model name is not markup, and `tiny:llama` must not become an emoji (rich reads :llama: as one)
    columns = (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TextColumn("runs"),
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
