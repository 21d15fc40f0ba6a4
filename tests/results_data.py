"""Seeding finished sweeps with chosen figures, for view, report, export and compare tests (and bench/reports.py).

`seed_sweep` writes a sweep whose query windows have exactly the kWh per
1,000 queries given, so that tests can compare the views with aggregates
computed by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.orm import Session

from db.models import Job, Measurement, Run, Sweep, Worker

INTENSITY_G_PER_KWH = 300.0


@dataclass
class SeedModel:
    task: str
    model: str
    kwh_per_1k: list[float]  # one query window per value, each of `queries` queries
    kind: str = "task-specific"
    num_parameters: int | None = None
    datasets: list[str] = field(default_factory=lambda: ["builtin:texts"])
    idle_share: float | None = 0.1  # idle energy as a share of the window's energy; None: no baseline
    load_kwh: float | None = 0.0005
    pending_runs: int = 0  # runs not measured yet
    batch_size: int = 1  # the cell's batch size (a sweep axis when models repeat with several)
    cell_key: str = ""
    latency_p95_s: float | None = None  # stored on every query window (p50 = 0.8 x p95)


def ensure_worker(session: Session, worker_id: str = "gpu0@node1", hardware_class: str = "a100") -> str:
    if session.get(Worker, worker_id) is None:
        session.add(Worker(id=worker_id, hostname=worker_id.split("@")[-1], device="cuda:0",
                           hardware_class=hardware_class, inventory={
                               "cpu_model": "Xeon Gold 6338", "cpu_count": 64, "ram_total_gb": 512.0,
                               "os": "Linux-6.1", "python": "3.11.7",
                               "versions": {"torch": "2.4.1", "transformers": "4.46.0", "codecarbon": "3.3.2"},
                               "gpu": {"name": "NVIDIA A100-SXM4-80GB", "memory_gb": 80, "driver": "550.54",
                                       "cuda": "12.4"}}))
        session.flush()
    return worker_id


def seed_sweep(session: Session, *, name: str, models: list[SeedModel], hardware_class: str = "a100",
               worker_id: str = "gpu0@node1", queries: int = 1000, cpu_method: str = "rapl",
               gpu_method: str = "nvml-energy-counter", mode: str = "local",
               spec_extra: dict | None = None) -> int:
    """Insert a finished sweep; returns its id. Bulk inserts, so 10,000 runs take a second or so."""
    ensure_worker(session, worker_id, hardware_class)
    sweep = Sweep(name=name, spec={"name": name} | (spec_extra or {}), hardware_class=hardware_class, mode=mode,
                  grid_intensity_g_per_kwh=INTENSITY_G_PER_KWH)
    session.add(sweep)
    session.flush()
    if not models:
        return sweep.id
    job_ids = session.scalars(insert(Job).returning(Job.id, sort_by_parameter_order=True), [
        dict(sweep_id=sweep.id, task=m.task, model=m.model, hardware_class=hardware_class, params={},
             status="done", attempts=1, max_attempts=3, num_parameters=m.num_parameters, model_kind=m.kind,
             batch_size=m.batch_size, cell_key=m.cell_key)
        for m in models
    ]).all()
    start = datetime(2026, 11, 1, tzinfo=UTC)
    run_rows, values = [], []
    for job_id, m in zip(job_ids, models, strict=True):
        for i, x in enumerate(m.kwh_per_1k):
            run_rows.append(dict(job_id=job_id, dataset=m.datasets[i % len(m.datasets)],
                                 repetition=i // len(m.datasets), n_queries=queries, batch_size=1, warmup=0,
                                 status="done", worker_id=worker_id, finished_at=start + timedelta(minutes=i)))
            values.append((job_id, x, m.idle_share, m.latency_p95_s))
        for k in range(m.pending_runs):
            run_rows.append(dict(job_id=job_id, dataset="pending", repetition=k, n_queries=queries, batch_size=1,
                                 warmup=0, status="pending"))
    run_ids = session.scalars(insert(Run).returning(Run.id, sort_by_parameter_order=True), run_rows).all()
    done_ids = [run_id for run_id, row in zip(run_ids, run_rows, strict=True) if row["status"] == "done"]
    rows = [_window(job_id, run_id, "query", x * queries / 1000, idle_share, worker_id, cpu_method, gpu_method,
                    queries, start) | {"latency_p95_s": p95, "latency_p50_s": 0.8 * p95 if p95 else None}
            for run_id, (job_id, x, idle_share, p95) in zip(done_ids, values, strict=True)]
    rows += [_window(job_id, None, "load", m.load_kwh, None, worker_id, cpu_method, gpu_method, None, start)
             for job_id, m in zip(job_ids, models, strict=True) if m.load_kwh is not None]
    if rows:
        session.execute(insert(Measurement), rows)
    return sweep.id


def _window(job_id, run_id, phase, energy, idle_share, worker_id, cpu_method, gpu_method, queries, start) -> dict:
    return dict(
        job_id=job_id, run_id=run_id, phase=phase, worker_id=worker_id, hostname="node1", started_at=start,
        duration_s=10.0, energy_kwh=energy, cpu_energy_kwh=energy * 0.2, gpu_energy_kwh=energy * 0.7,
        ram_energy_kwh=energy * 0.1, emissions_kg=energy * INTENSITY_G_PER_KWH / 1000, cpu_model="Xeon Gold 6338",
        cpu_count=64, gpu_model="NVIDIA A100-SXM4-80GB", gpu_count=1, ram_total_gb=512.0, cpu_method=cpu_method,
        gpu_method=gpu_method, ram_method="codecarbon-dimm-estimate", tracking_mode="machine",
        codecarbon_version="3.3.2", carbon_intensity_g_per_kwh=INTENSITY_G_PER_KWH,
        carbon_intensity_source="explicit", n_queries=queries, batch_size=1 if queries else None,
        kwh_per_1k_queries=energy * 1000 / queries if queries else None,
        idle_energy_kwh=energy * idle_share if idle_share is not None else None,
        is_outlier=False, is_unreliable=False, latency_p50_s=None, latency_p95_s=None,
    )
