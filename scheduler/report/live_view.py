"""What `wattsweep status` and `wattsweep workers` print: plain text lines built from db.queue.live queries."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.markup import escape
from rich.table import Table
from sqlalchemy.orm import Session

from db.models import Sweep
from db.queue.live import eta_s, job_status_counts, list_workers, running_jobs, sweep_started_at
from db.queue.sweeps import failed_jobs, sweep_progress
from scheduler.plan.durations import duration


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "never"
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return f"{duration((now or datetime.now(UTC)) - moment)} ago"


def status_lines(session: Session, sweep: Sweep, *, stall_after_s: float | None = None,
                 alive_within_s: float = 120.0) -> list[str]:
    """The sweep's progress: done / running (on which workers) / queued / failed, stalled units, workers that
    stopped taking work, and an ETA."""
    p = sweep_progress(session, sweep_id=sweep.id)
    cancelled = job_status_counts(session, sweep_id=sweep.id).get("cancelled", 0)
    state = " [yellow]cancelled[/yellow]" if sweep.cancelled else ""
    lines = [
        f"sweep [bold]{escape(sweep.name)}[/bold] (id {sweep.id}, {sweep.hardware_class}, {sweep.mode}){state}",
        f"jobs: {p.jobs_done} done, {p.jobs_running} running, {p.jobs_failed} failed, {p.jobs_queued} queued, "
        + (f"{cancelled} cancelled, " if cancelled else "") + f"{p.jobs_total} total",
        f"runs: {p.runs_done} done, {p.runs_failed} failed, {p.runs_pending} pending, {p.runs_total} total",
    ]
    for job in running_jobs(session, sweep_id=sweep.id, stall_after_s=stall_after_s):
        workers = sorted({unit.worker_id for unit in job.units if unit.worker_id}) or \
            ([job.worker_id] if job.worker_id else [])
        beats = [unit.heartbeat_age_s for unit in job.units if unit.heartbeat_age_s is not None]
        beat = f"heartbeat {duration(min(beats))} ago" if beats else "no unit leased now"
        lines.append(f"running: job {job.job_id} {escape(job.task)} / {escape(job.model)} on "
                     f"{escape(', '.join(workers) or '?')}: {job.runs_done}/{job.runs_total} runs, {beat}")
        for unit in job.units:
            if unit.stalled:
                idle = f"no progress for {duration(unit.progress_age_s)}" if unit.progress_age_s is not None else ""
                lines.append(f"[yellow]stalled:[/yellow] unit {unit.shard_id} (run {unit.run_id}) of job "
                             f"{job.job_id} on {escape(unit.worker_id or '?')}: {idle}")
    if not p.finished and not sweep.cancelled:
        eta = eta_s(runs_done=p.runs_done, runs_left=p.runs_pending,
                    started_at=sweep_started_at(session, sweep_id=sweep.id))
        lines.append(f"ETA: {duration(eta) if eta is not None else 'unknown until a run finishes'}")
    for job in failed_jobs(session, sweep_id=sweep.id):
        lines.append(f"[red]failed:[/red] {escape(job.task)} / {escape(job.model)}: {escape(job.last_error or '')}")
    for view in list_workers(session, alive_within_s=alive_within_s):
        if view.worker.stopped_reason and view.worker.hardware_class == sweep.hardware_class:
            lines.append(f"[red]not taking work:[/red] worker {escape(view.worker.id)}: "
                         f"{escape(view.worker.stopped_reason)}")
    return lines


def workers_table(session: Session, *, alive_within_s: float, include_gone: bool) -> Table:
    table = Table(title="workers" + ("" if include_gone else f" (heartbeat in the last {alive_within_s:g} s)"))
    for header in ("worker", "host", "device", "class", "hardware", "current job", "heartbeat", "state"):
        table.add_column(header)
    for view in list_workers(session, alive_within_s=alive_within_s, include_gone=include_gone):
        w = view.worker
        gpu = (w.inventory or {}).get("gpu")
        count = len((w.inventory or {}).get("gpus") or [gpu])  # a group of GPUs: its size
        hardware = (f"{f'{count} x ' if count > 1 else ''}{gpu['name']}, {gpu['memory_gb']:g} GB, "
                    f"driver {gpu['driver']}, CUDA {gpu['cuda']}" if gpu
                    else f"{(w.inventory or {}).get('cpu_model') or 'cpu'}")
        beat = (f"{duration(view.heartbeat_age_s)} ago" if view.heartbeat_age_s is not None else "never") + \
            ("" if view.alive else " [red](gone)[/red]")
        state = f"[red]stopped: {escape(w.stopped_reason)}[/red]" if w.stopped_reason else "serving"
        table.add_row(escape(w.id), escape(w.hostname), w.device, escape(w.hardware_class), escape(hardware),
                      escape(view.current or "-"), beat, state)
    return table
