"""A sharded run's row: the sum of its shards' windows, kept in step with them.

A run measured as K shards has K `shard` windows (each with its own
provenance) and one `query` row that is their sum: energies, emissions,
durations and work units add up, powers are energy over duration,
utilisations are duration-weighted, per-query figures are query-weighted,
latency quantiles are the query-weighted mean of the shards' (an
approximation: a union's quantiles are not in its parts; shards are
consecutive queries of one distribution), flags are the union. That row has
no host (hostname, host_id) and `shards = K`: it is a sum, never a window,
and attribution must not count it beside its shards.

Below db.results.store (which calls `refresh_sums` after every window store), so that
the two need not import each other.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from sqlalchemy import Boolean, DateTime, Float, Integer, select
from sqlalchemy.orm import Session

from db.models import Measurement, Shard

SHARD_PHASE = {"query": "shard", "prefill": "shard-pre"}
_NOT_SUMMED = {"id", "job_id", "run_id", "phase", "shard_id", "shards", "worker_id", "hostname", "baseline_id",
               "is_outlier", "flags", "batch_size", "kwh_per_1k_queries", "carbon_intensity_g_per_kwh"}
_NO_HOST = {"hostname", "host_id", "worker_id", "host_samples"}  # a sum belongs to no one host or worker


def shard_windows(session: Session, *, run_id: int, phase: str) -> list[Measurement]:
    """The stored shard windows of a run for `phase` (query or prefill)."""
    return list(session.scalars(
        select(Measurement).join(Shard, Shard.id == Measurement.shard_id)
        .where(Shard.run_id == run_id, Measurement.phase == SHARD_PHASE[phase])))


def refresh_sums(session: Session) -> None:
    """Recompute the stored sums of runs whose shard windows this transaction changed.

    Attribution revises a stored window's share when a window that overlaps it
    arrives later; a run's sum row must follow. Called at the end of every
    window store (db.results.store._add_windows).
    """
    changed = {(m.shard_id, m.phase) for m in session.dirty
               if isinstance(m, Measurement) and m.phase in SHARD_PHASE.values() and m.shard_id is not None}
    if not changed:
        return
    runs = dict(session.execute(select(Shard.id, Shard.run_id).where(Shard.id.in_({s for s, _ in changed}))).all())
    for run_id, shard_phase in {(runs[s], p) for s, p in changed if s in runs}:
        phase = next(name for name, value in SHARD_PHASE.items() if value == shard_phase)
        total = session.scalars(select(Measurement).where(Measurement.run_id == run_id, Measurement.phase == phase,
                                                          Measurement.shards.is_not(None))).one_or_none()
        if total is None:
            continue
        fresh = sum_windows(shard_windows(session, run_id=run_id, phase=phase), job_id=total.job_id,
                            run_id=run_id, phase=phase)
        for column in Measurement.__table__.columns:
            if column.key not in ("id", "is_outlier"):
                setattr(total, column.key, getattr(fresh, column.key))



def sum_windows(windows: list[Measurement], *, job_id: int, run_id: int, phase: str) -> Measurement:
    """A run's row from its shards' windows (see the module docstring for how each column combines)."""
    windows = sorted(windows, key=lambda w: w.shard_id or 0)
    total = Measurement(job_id=job_id, run_id=run_id, phase=phase, shards=len(windows))
    duration = sum(w.duration_s or 0.0 for w in windows)
    queries = sum(w.n_queries or 0 for w in windows)
    for column in Measurement.__table__.columns:
        name = column.key
        if name in _NOT_SUMMED or name in _NO_HOST:
            continue
        values = [getattr(w, name) for w in windows]
        if isinstance(column.type, DateTime):  # SQLite hands back naive UTC; new windows are aware
            values = [v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v for v in values]
        known = [v for v in values if v is not None]
        if isinstance(column.type, DateTime):
            value = (min(known) if name.startswith("started") else max(known)) if known else None
        elif isinstance(column.type, Boolean):
            value = any(known)
        elif name.endswith("_pct"):
            weighted = [(v, w.duration_s or 0.0) for v, w in zip(values, windows, strict=True) if v is not None]
            value = sum(v * d for v, d in weighted) / duration if weighted and duration else None
        elif name.endswith("_w"):
            value = None  # set below from energy and duration
        elif name.startswith("max_"):
            value = max(known) if known else None
        elif "_p50" in name or "_p95" in name:  # quantiles of a union are not in the parts: query-weighted mean
            weighted = [(v, w.n_queries or 0) for v, w in zip(values, windows, strict=True) if v is not None]
            count = sum(n for _, n in weighted)
            value = sum(v * n for v, n in weighted) / count if weighted and count else None
        elif name == "throughput_queries_per_s":
            value = queries / duration if duration else None
        elif isinstance(column.type, (Float, Integer)) and _additive(name):
            value = sum(known) if len(known) == len(values) else None
        else:
            value = known[0] if known and all(v == known[0] for v in known) else _mixed(column, known)
        setattr(total, name, value)
    for component in ("cpu", "gpu", "ram"):
        energy = getattr(total, f"{component}_energy_kwh", None)
        setattr(total, f"{component}_power_w", energy * 3.6e6 / duration if energy is not None and duration else None)
    total.batch_size = windows[0].batch_size
    total.baseline_id = windows[0].baseline_id if all(w.baseline_id == windows[0].baseline_id for w in windows) \
        else None
    per_1k = [(w.kwh_per_1k_queries, w.n_queries or 0) for w in windows]
    total.kwh_per_1k_queries = (sum(v * n for v, n in per_1k) / queries
                                if queries and all(v is not None for v, _ in per_1k) else None)
    total.carbon_intensity_g_per_kwh = (total.emissions_kg * 1000 / total.energy_kwh
                                        if total.energy_kwh and total.emissions_kg is not None else None)
    flags = sorted({flag for w in windows for flag in (w.flags or "").split(",") if flag})
    total.flags = ",".join(flags) or None
    total.is_outlier = False
    total.worker_id = windows[-1].worker_id if all(w.worker_id == windows[-1].worker_id for w in windows) else None
    return total


def _additive(name: str) -> bool:
    return name.endswith(("_kwh", "_kg", "_tokens")) or name in (
        "duration_s", "audio_s", "images", "n_queries", "power_samples")


def _mixed(column, known: list) -> Any:
    """A column whose shards disagree (e.g. two GPU models): NULL where allowed, else every value, joined."""
    if column.nullable:
        return None
    return ",".join(sorted({str(v) for v in known}))[: getattr(column.type, "length", None) or 10_000]
