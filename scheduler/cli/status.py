"""Watching a sweep: `status` (its jobs and runs) and `workers` (who is alive, on what, doing what)."""

from __future__ import annotations

from typing import Annotated

import typer

from scheduler.cli.options import (
    DatabaseOpt,
    SweepArg,
    collector_paused,
    console,
    find_sweep_or_fail,
    open_sessions,
    settings_for,
)

app = typer.Typer()


@app.command()
def status(
    sweep: SweepArg = None,
    database_url: DatabaseOpt = None,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh every 2 s until the sweep finishes.")] = False,
) -> None:
    """Jobs and runs of a sweep: done, running (on which worker), queued, failed, and an ETA."""
    # one look ends the process: the cycle collector paused, as for a report; watching keeps it on
    (_status if watch else collector_paused(_status))(sweep, database_url, watch)


def _status(sweep: str | None, database_url: str | None, watch: bool) -> None:
    from scheduler.report.live_view import status_lines

    sessions = open_sessions(database_url)
    settings = settings_for(database_url)
    with sessions() as session:
        found = find_sweep_or_fail(session, sweep)
        lines = status_lines(session, found, stall_after_s=settings.stall_timeout_s,
                             alive_within_s=settings.lease_timeout_s)
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
    from db.queue.sweeps import sweep_progress
    from scheduler.report.live_view import status_lines

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


@app.command()
def workers(
    all_: Annotated[bool, typer.Option("--all", help="Also list workers whose heartbeat stopped.")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Workers: host, device, hardware, current job, last heartbeat."""
    from scheduler.report.live_view import workers_table

    settings = settings_for(database_url)
    sessions = open_sessions(database_url)
    with sessions() as session:
        console.print(workers_table(session, alive_within_s=settings.lease_timeout_s, include_gone=all_))
