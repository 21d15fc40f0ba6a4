"""Storing measurements and the per-task summary read by reports."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from db.models import IdleBaseline, Measurement, Run, Worker
from db.results.attribution import attribute_shared_energy
from db.results.stats import reflag_cells, set_headline
from db.results.sums import refresh_sums


def record_load(
    session: Session, *, job_id: int, worker_id: str, reading: Any, baseline_id: int | None = None
) -> Measurement:
    """Store the `load` window of one job attempt; last in the caller's transaction (see `_add_windows`)."""
    window = _new_window(session, reading, job_id=job_id, run_id=None, phase="load", worker_id=worker_id,
                         baseline_id=baseline_id)
    _add_windows(session, [window])
    return window


def record_run(
    session: Session,
    *,
    run_id: int,
    worker_id: str,
    reading: Any,
    units: Any,
    baseline_id: int | None = None,
    prefill: Any | None = None,
    shard_id: int | None = None,
    prefill_units: Any | None = None,
) -> bool:
    """Mark the run done and store its `query` measurement (and `prefill`, if measured), last in the caller's
    transaction (see `_add_windows`). `shard_id`: the unit that measured the whole run (a sharded run's shards
    are stored by db.queue.unit_store).

    Returns False (and stores nothing) when the run was already done: a
    redelivered job never stores a run twice.
    """
    run = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status != "done")
        .values(status="done", worker_id=worker_id, error=None, finished_at=datetime.now(UTC))
        .returning(Run.job_id, Run.dataset, Run.batch_size)
    ).one_or_none()
    if run is None:
        return False
    readings = {"query": reading} | ({"prefill": prefill} if prefill is not None else {})
    per_phase = phase_units(units, prefill_units)
    windows = [
        with_flags(_new_window(session, window, job_id=run.job_id, run_id=run_id, phase=phase, worker_id=worker_id,
                               baseline_id=baseline_id, shard_id=shard_id,  # kWh per 1,000: `_add_windows`
                               **work_columns(per_phase[phase], run.batch_size)), unit_flags(per_phase[phase]))
        for phase, window in readings.items()
    ]
    # Latency is the query window's: timed around each batch inside it (worker.workloads._shared.BatchTimer).
    latency = units.latency_figures() if hasattr(units, "latency_figures") else {}
    for name, value in latency.items():
        setattr(windows[0], name, value)
    windows[0].throughput_queries_per_s = units.queries / reading.duration_s if reading.duration_s > 0 else None
    _add_windows(session, windows, new_cells={(run.job_id, run.dataset): windows[0]})
    return True


def phase_units(units: Any, prefill_units: Any | None) -> dict[str, Any]:
    """The units each window of a run processed. A prefill window ran the same prompts for one new token each:
    its own units, never the query window's output tokens (decode = query - prefill then has queries x
    (max_new_tokens - 1) tokens). Without counted prefill units (a caller that measured none), they are derived."""
    if prefill_units is None:
        prefill_units = replace(units, output_tokens=units.queries if units.output_tokens is not None else None,
                                expected_output_tokens=None) if is_dataclass(units) else units
    return {"query": units, "prefill": prefill_units}


def work_columns(units: Any, batch_size: int | None) -> dict[str, Any]:
    """A window's work-unit columns."""
    return dict(n_queries=units.queries, batch_size=batch_size, input_tokens=units.input_tokens,
                output_tokens=units.output_tokens, images=units.images, audio_s=getattr(units, "audio_s", None))


def unit_flags(units: Any) -> tuple[str, ...]:
    """What the units say is wrong with a window (worker.workloads.base.WorkDone.flags: `length-mismatch`)."""
    return tuple(getattr(units, "flags", ()) or ())


def with_flags(window: Measurement, flags: tuple[str, ...]) -> Measurement:
    """`window` with `flags` added to the meter's; a flagged window is unreliable."""
    if flags:
        window.flags = ",".join(sorted({*(window.flags or "").split(","), *flags} - {""}))
        window.is_unreliable = True
    return window


def _new_window(session: Session, reading: Any, *, worker_id: str, baseline_id: int | None, **fields) -> Measurement:
    """One window with its host and idle energy, not yet added."""
    worker = session.get(Worker, worker_id)  # from the session's identity map after the first window
    baseline = session.get(IdleBaseline, baseline_id) if baseline_id is not None else None
    idle = {f"idle_{c}_energy_kwh": getattr(baseline, f"{c}_power_w") * reading.duration_s / 3.6e6
            for c in ("cpu", "gpu", "ram")} if baseline else {}  # each component's, node-wide
    return Measurement(
        worker_id=worker_id,
        hostname=worker.hostname if worker else None,
        host_id=(worker.host_id or worker.hostname) if worker else None,
        baseline_id=baseline_id,
        idle_energy_kwh=sum(idle.values()) if baseline else None,
        **idle,
        **fields,
        **asdict(reading),
    )


def _add_windows(session: Session, windows: list[Measurement],
                 new_cells: dict[tuple[int, str], Measurement] | None = None) -> None:
    """Attribute shared energy, set headlines, then add. Last before commit: on Postgres it holds the host's lock
    until then.

    A window's kWh per 1,000 queries is its headline energy (db.results.stats.headline_kwh), known only once attribution
    has run. Attribution may revise stored windows: their headlines follow, a sharded run's sum row follows its
    shards' (db.results.sums.refresh_sums), and the outlier flags of every cell whose figures moved are set again.
    `new_cells`: the new query window of each (job, dataset) cell, flagged with its cell.
    """
    attribute_shared_energy(session, windows=windows)
    revised = [m for m in session.dirty if isinstance(m, Measurement)]
    for window in [*windows, *revised]:
        set_headline(window)
    refresh_sums(session)
    session.add_all(windows)
    moved = {m.job_id for m in session.dirty if isinstance(m, Measurement) and m.phase == "query"
             and m.run_id is not None and session.is_modified(m)}
    if new_cells or moved:
        reflag_cells(session, job_ids={*moved, *(job for job, _ in new_cells or {})}, new=new_cells)
