"""Storing imported measurements (CodeCarbon logs) as a sweep of mode "imported". The caller owns the transaction.

An imported sweep looks like a measured one to the views: one job per
(task, model, hardware class), one done run per query window (dataset given
by the user, repetitions numbered in file order), load windows on the job.
Importing into an existing imported sweep adds to it; a file already imported
there (same SHA-256) is refused, so a repeated command cannot double a figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from db.models import Job, Measurement, Run, Sweep


class ImportRefused(ValueError):
    """The target sweep cannot take this import (not an imported sweep, or a file already imported)."""


@dataclass(frozen=True)
class ImportSummary:
    sweep_id: int
    sweep_name: str
    created: bool
    jobs: int
    query_runs: int
    load_windows: int


def import_windows(session: Session, *, sweep_name: str, task: str, hardware_class: str, dataset: str,
                   queries: int | None, windows: list[Any], sources: list[dict[str, Any]]) -> ImportSummary:
    """`windows`: objects with .model, .phase and .measurement (Measurement columns)."""
    now = datetime.now(UTC)
    sweep = session.scalars(select(Sweep).where(Sweep.name == sweep_name).order_by(Sweep.id.desc())).first()
    created = sweep is None
    if sweep is not None and sweep.mode != "imported":
        raise ImportRefused(f"sweep {sweep_name!r} was measured by wattsweep (mode {sweep.mode}); "
                            "import into a new --sweep name")
    if sweep is None:
        sweep = Sweep(name=sweep_name, hardware_class=hardware_class, mode="imported", spec={
            "name": sweep_name, "mode": "imported", "source_files": []})
        session.add(sweep)
        session.flush()
    known = {f.get("sha256") for f in sweep.spec.get("source_files", [])}
    for source in sources:
        if source["sha256"] in known:
            raise ImportRefused(f"{source['path']} was already imported into sweep {sweep_name!r}")
    sweep.spec = sweep.spec | {"source_files": sweep.spec.get("source_files", []) + sources}

    jobs = {job.model: job for job in session.scalars(
        select(Job).where(Job.sweep_id == sweep.id, Job.task == task, Job.hardware_class == hardware_class))}
    for model in dict.fromkeys(w.model for w in windows):
        if model not in jobs:
            jobs[model] = Job(sweep_id=sweep.id, task=task, model=model, hardware_class=hardware_class, params={},
                              status="done", attempts=1, max_attempts=1, started_at=now, finished_at=now)
            session.add(jobs[model])
    session.flush()
    next_repetition = dict(session.execute(
        select(Run.job_id, func.max(Run.repetition) + 1)
        .where(Run.job_id.in_([j.id for j in jobs.values()]), Run.dataset == dataset).group_by(Run.job_id)
    ).all())

    queries_windows = [w for w in windows if w.phase == "query"]
    run_rows = []
    for w in queries_windows:
        job_id = jobs[w.model].id
        repetition = next_repetition.get(job_id, 0)
        next_repetition[job_id] = repetition + 1
        run_rows.append(dict(job_id=job_id, dataset=dataset, repetition=repetition, n_queries=queries or 0,
                             batch_size=1, warmup=0, status="done", finished_at=w.measurement["ended_at"] or now))
    run_ids = session.scalars(insert(Run).returning(Run.id, sort_by_parameter_order=True), run_rows).all() \
        if run_rows else []
    measurements = [_measurement(w, jobs[w.model].id, run_id, queries, now)
                    for w, run_id in zip(queries_windows, run_ids, strict=True)]
    measurements += [_measurement(w, jobs[w.model].id, None, None, now) for w in windows if w.phase == "load"]
    if measurements:
        session.execute(insert(Measurement), measurements)
    return ImportSummary(sweep.id, sweep.name, created, len({w.model for w in windows}), len(run_rows),
                         len(windows) - len(run_rows))


def _measurement(window: Any, job_id: int, run_id: int | None, queries: int | None, now: datetime) -> dict:
    m = dict(window.measurement)
    m["started_at"] = m["started_at"] or now
    per_1k = m["energy_kwh"] * 1000 / queries if queries and run_id is not None else None
    return m | dict(job_id=job_id, run_id=run_id, phase=window.phase, worker_id=None,
                    n_queries=queries if run_id is not None else None, batch_size=None, kwh_per_1k_queries=per_1k,
                    is_outlier=False, is_unreliable=False)
