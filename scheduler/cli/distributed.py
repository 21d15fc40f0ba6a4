"""Distributed-mode commands: submit, worker, reconcile, cancel, retry.

Heavy imports stay inside the commands; the scheduler side never imports torch.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated

import typer

from scheduler.cli.options import (
    BrokerOpt,
    DatabaseOpt,
    celery_for,
    console,
    fail,
    find_sweep_or_fail,
    load_spec,
    masked,
    open_sessions,
    settings_with_broker,
)

app = typer.Typer()
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@app.command()
def submit(
    sweep_file: Annotated[Path, typer.Argument(help="Sweep file (YAML).")],
    hardware_class: Annotated[str | None, typer.Option(help="Override the file's hardware_class (= queue).")] = None,
    new: Annotated[bool, typer.Option("--new", help="Submit even while a sweep of this name is unfinished "
                                                    "(a second sweep: everything is measured again).")] = False,
    database_url: DatabaseOpt = None,
    broker_url: BrokerOpt = None,
) -> None:
    """Write a sweep's jobs to the database and send one message per job to its hardware class's queue."""
    from scheduler.dispatch import NotSent, SweepUnfinished, submit_sweep

    spec = load_spec(sweep_file)
    from worker.contract.celery_app import queue_name_problem

    if problem := queue_name_problem(hardware_class or spec.hardware_class):
        fail(f"--hardware-class: {problem}")
    settings = settings_with_broker(database_url, broker_url)
    sessions = open_sessions(settings.database_url)
    try:
        done = submit_sweep(sessions, spec, app=celery_for(settings), hardware_class=hardware_class,
                            max_attempts=settings.max_attempts, new=new)
    except SweepUnfinished as error:
        fail(str(error))
    except NotSent as error:  # stored: not bad input, but the user must act (exit 1)
        fail(str(error), code=1)
    queues = ", ".join(f"{count} to queue [bold]{queue}[/bold]" for queue, count in done.queues.items())
    console.print(f"sweep [bold]{spec.name}[/bold] (id {done.sweep_id}): {done.jobs} jobs, {done.runs} runs; "
                  f"{done.sent} messages sent ({queues or 'none'}) at {masked(settings.broker_url)}")
    console.print(f"start workers with: wattsweep worker --gpu N --queue {done.hardware_class}"
                  + "".join(f"; for {queue}, workers holding {queue.rsplit('-x', 1)[1]} GPUs (--gpus)"
                            for queue in done.queues if queue != done.hardware_class))


@app.command()
def worker(
    queue: Annotated[str, typer.Option(help="Queue to consume = the hardware class this worker's numbers belong to.")],
    gpu: Annotated[int | None, typer.Option(help="Physical GPU index (as nvidia-smi numbers it) this worker owns.")]
    = None,
    gpus: Annotated[str | None, typer.Option(
        help="A group of GPUs this worker owns, e.g. 0,1,2,3 (instead of --gpu): it takes the jobs that need that "
             "many GPUs (queue CLASS-xN).")] = None,
    device: Annotated[str | None, typer.Option(help="'cpu' for a CPU worker (instead of --gpu).")] = None,
    name: Annotated[str | None, typer.Option(
        help="Worker name NAME@HOST; default gpuN@host, gpu0-3@host for a group, or cpu<pid>@host.")] = None,
    split_when_drained: Annotated[bool, typer.Option(
        "--split-when-drained",
        help="With --gpus: once no job needing the group's size has work left while one-GPU jobs wait, the group "
             "stops and its GPUs go on as one-GPU workers (--gpu N each, named gpuN@host), until SIGTERM. N-GPU "
             "jobs submitted later stay queued for the next group worker.")] = False,
    exit_when_drained: Annotated[bool, typer.Option("--exit-when-drained", hidden=True)] = False,  # its child
    database_url: DatabaseOpt = None,
    broker_url: BrokerOpt = None,
    loglevel: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING.")] = "INFO",
) -> None:
    """Run jobs from one queue on pinned devices (one worker per GPU, or per group of GPUs), until SIGTERM."""
    from worker.process.celery_worker import WorkerOptions, WorkerStartError, serve

    if loglevel.upper() not in LOG_LEVELS:
        fail(f"--loglevel {loglevel[:40]!r}: unknown level; allowed are {', '.join(LOG_LEVELS)}")
    if database_url:  # the worker reads its settings once, from the environment
        os.environ["WATTSWEEP_DATABASE_URL"] = database_url
    if broker_url:
        os.environ["WATTSWEEP_BROKER_URL"] = broker_url
    if split_when_drained or exit_when_drained:
        from worker.process.supervisor import SplitError, group_to_split

        try:
            group = group_to_split(gpus, gpu, device)
        except SplitError as error:
            fail(str(error))
        if split_when_drained:
            _supervise_split(group, queue, name, loglevel.upper())
    try:
        code = serve(WorkerOptions(queue=queue, gpu=gpu, gpus=gpus, device=device, name=name,
                                   loglevel=loglevel.upper(), exit_when_drained=exit_when_drained))
    except WorkerStartError as error:
        fail(str(error))
    raise typer.Exit(code)


def _supervise_split(group: list[int], queue: str, name: str | None, loglevel: str) -> None:
    """This process supervises: the group worker as a child, then one child per GPU (worker.process.supervisor)."""
    import logging

    from worker.contract.celery_app import queue_name_problem
    from worker.process.supervisor import group_and_singles, supervise

    if problem := queue_name_problem(queue):  # one line here, not one per child
        fail(f"--queue: {problem}")
    logging.basicConfig(level=loglevel, format="[%(asctime)s %(levelname)s %(name)s] %(message)s")
    group_argv, singles = group_and_singles(["--queue", queue, "--loglevel", loglevel], [str(i) for i in group])
    if name:  # the group's own name; its one-GPU workers take the one-GPU form's (gpuN@host)
        group_argv += ["--name", name]
    raise typer.Exit(supervise(group_argv, singles))


@app.command()
def reconcile(
    watch: Annotated[bool, typer.Option("--watch", help="Keep reconciling every --interval seconds.")] = False,
    interval: Annotated[float | None, typer.Option(help="Seconds between passes with --watch.")] = None,
    database_url: DatabaseOpt = None,
    broker_url: BrokerOpt = None,
) -> None:
    """Send again the jobs the broker lost and those whose worker died (Postgres decides what is left)."""
    from scheduler.dispatch import Reconciled, reconcile_once
    from scheduler.dispatch import watch as watch_loop
    from worker.contract.broker import redis_client

    if interval is not None and not (math.isfinite(interval) and 0.1 <= interval <= 86400):
        fail(f"--interval {interval:g}: seconds between passes, from 0.1 to 86400")  # 0 or nan: a busy loop
    settings = settings_with_broker(database_url, broker_url)
    sessions = open_sessions(settings.database_url)
    celery, redis = celery_for(settings), redis_client(settings.broker_url)
    options = dict(app=celery, redis=redis, lease_timeout_s=settings.lease_timeout_s,
                   grace_s=settings.dispatch_grace_s)

    def report(result: Reconciled) -> None:
        if result.resent or not watch:
            console.print(f"reconcile: {result.checked} to check, {len(result.resent_queued)} lost job(s) and "
                          f"{len(result.resent_stale)} stale lease(s) sent again", highlight=False)

    if not watch:
        report(reconcile_once(sessions, **options))
        return
    console.print(f"reconciling every {interval or settings.reconcile_interval_s:g} s (Ctrl+C to stop)")
    watch_loop(sessions, interval_s=interval or settings.reconcile_interval_s, on_pass=report,
               session_limits_s=(settings.session_idle_limit_s, settings.session_statement_limit_s), **options)


@app.command()
def cancel(sweep: Annotated[str, typer.Argument(help="Sweep id or name.")], database_url: DatabaseOpt = None) -> None:
    """Cancel a sweep: queued jobs will not run; running ones stop at their next run boundary."""
    from scheduler.dispatch import cancel as cancel_jobs

    sessions = open_sessions(database_url)
    with sessions() as session:
        found = find_sweep_or_fail(session, sweep)
    stopped = cancel_jobs(sessions, sweep_id=found.id)
    console.print(f"sweep {found.name} (id {found.id}) cancelled: {stopped} unfinished job(s) stopped; "
                  "stored runs are kept")


@app.command()
def retry(
    sweep: Annotated[str, typer.Argument(help="Sweep id or name.")],
    failed: Annotated[bool, typer.Option("--failed", help="Retry the failed jobs (required).")] = False,
    database_url: DatabaseOpt = None,
    broker_url: BrokerOpt = None,
) -> None:
    """Give a sweep's failed jobs fresh attempts and send them again."""
    from scheduler.dispatch import retry_failed

    if not failed:
        fail("say what to retry: `wattsweep retry SWEEP --failed`")
    settings = settings_with_broker(database_url, broker_url)
    sessions = open_sessions(settings.database_url)
    with sessions() as session:
        found = find_sweep_or_fail(session, sweep)
    if found.mode != "distributed":
        fail(f"sweep {found.name} (id {found.id}) ran locally: run it again with `wattsweep run`")
    if found.cancelled:
        fail(f"sweep {found.name} (id {found.id}) is cancelled")
    sent = retry_failed(sessions, app=celery_for(settings), sweep_id=found.id)
    console.print(f"sweep {found.name} (id {found.id}): {sent} failed job(s) sent again")

