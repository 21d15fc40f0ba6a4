"""Issue 18, defects 3 and 12: the export carries every stored provenance column, torch's float32 numerics too."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from db.models import Job, Measurement
from db.results.provenance import record_provenance
from db.results.views import VIEW_COLUMNS

# Measurement columns that are not provenance: keys, internals, and what v_runs shows under another name.
NOT_PROVENANCE = {"id", "phase", "shard_id", "run_id", "job_id", "host_samples", "power_samples",
                  "cpu_power_w", "gpu_power_w", "ram_power_w",  # energy over duration: the energies are exported
                  "cpu_energy_attributed_kwh", "ram_energy_attributed_kwh",  # the headline cpu/ram_energy_kwh
                  "idle_cpu_energy_kwh", "idle_gpu_energy_kwh", "idle_ram_energy_kwh"}  # idle_energy_kwh


def test_every_stored_measurement_column_is_in_the_export():
    exported = set(VIEW_COLUMNS["v_runs"])
    stored = {c.name for c in Measurement.__table__.columns} - NOT_PROVENANCE
    assert stored - exported == set()
    assert {"pue", "float32_matmul_precision", "tf32_matmul", "tf32_cudnn"} <= exported


def test_the_jobs_float32_numerics_are_recorded_and_exported(tmp_path):
    from db.migrate import upgrade
    from db.results.views import run_rows
    from db.session import session_factory
    from scheduler.plan.submit import create_sweep
    from scheduler.report.export import write_runs_csv
    from scheduler.spec.reading import parse_sweep
    from worker.models.loaded_model import float32_numerics

    url = f"sqlite:///{tmp_path / 'w.db'}"
    upgrade(url)
    sessions = session_factory(url)
    spec = parse_sweep({"name": "n", "defaults": {"queries": 1, "repetitions": 1},
                        "carbon": {"grid_intensity_g_per_kwh": 100},
                        "tasks": {"fill-mask": {"models": ["tiny:bert"], "datasets": ["builtin:texts"]}}})
    with sessions.begin() as session:
        sweep_id = create_sweep(session, spec, mode="local").id
        job_id = session.scalar(select(Job.id).where(Job.sweep_id == sweep_id))
        numerics = float32_numerics()
        assert numerics["float32_matmul_precision"] in ("highest", "high", "medium")
        record_provenance(session, job_id=job_id, provenance={**numerics, "tf32_matmul": False})
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job.float32_matmul_precision == numerics["float32_matmul_precision"]
        assert job.tf32_matmul is False  # TF32 off is stored, not left NULL
        out = io.StringIO()
        write_runs_csv(out, run_rows(session, sweep_id=sweep_id))
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows and rows[0]["float32_matmul_precision"] == numerics["float32_matmul_precision"]
    assert "pue" in rows[0] and "tf32_cudnn" in rows[0]
