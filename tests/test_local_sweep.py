"""End to end: `wattsweep run` in a real subprocess with real CodeCarbon, into SQLite and Postgres."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db.models import Job, Measurement, Run, Sweep, Worker
from db.session import session_factory
from tests.helpers import wattsweep

TWO_TASKS = """
name: two-tasks
defaults: {queries: 4, repetitions: 2, batch_size: 2, warmup: 1}
carbon: {country_iso_code: FRA}
tasks:
  text-classification:
    models: [tiny:bert]
    datasets: [builtin:reviews]
  text-generation:
    models: [tiny:gpt2]
    datasets: [builtin:prompts]
    params: {max_new_tokens: 3}
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_task_sweep_stores_every_field(backend, tmp_path, request):
    (tmp_path / "sweep.yaml").write_text(TWO_TASKS)
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    result = wattsweep("run", "sweep.yaml", cwd=tmp_path, env_url=url)
    assert result.returncode == 0, result.stderr
    assert "text-generation" in result.stdout and "kWh per 1,000 queries" in result.stdout
    assert list(tmp_path.glob("*.csv")) == []  # CodeCarbon wrote nothing into the user's folder
    url = url or f"sqlite:///{tmp_path / 'wattsweep.db'}"

    with session_factory(url)() as session:
        sweep = session.scalars(select(Sweep)).one()
        assert (sweep.name, sweep.mode, sweep.country_iso_code) == ("two-tasks", "local", "FRA")
        jobs = session.scalars(select(Job).order_by(Job.id)).all()
        assert [(j.task, j.model, j.status, j.attempts) for j in jobs] == [
            ("text-classification", "tiny:bert", "done", 1), ("text-generation", "tiny:gpt2", "done", 1)]
        runs = session.scalars(select(Run)).all()
        assert len(runs) == 4 and {r.status for r in runs} == {"done"}
        worker = session.scalars(select(Worker)).one()
        assert worker.inventory["versions"]["codecarbon"] and worker.inventory["cpu_count"] >= 1

        loads = session.scalars(select(Measurement).where(Measurement.phase == "load")).all()
        assert len(loads) == 2 and all(m.run_id is None and m.energy_kwh > 0 for m in loads)
        queries = session.scalars(select(Measurement).where(Measurement.phase == "query")).all()
        assert len(queries) == 4
        for m in queries:
            assert m.energy_kwh > 0 and m.duration_s > 0
            assert m.energy_kwh == pytest.approx(m.cpu_energy_kwh + m.gpu_energy_kwh + m.ram_energy_kwh)
            assert m.kwh_per_1k_queries == pytest.approx(m.energy_kwh * 1000 / 4)
            assert (m.n_queries, m.batch_size, m.worker_id) == (4, 2, worker.id)
            assert m.cpu_method == "cpu-load-estimate"  # no RAPL on CI machines: an estimate, and said so
            assert (m.gpu_method, m.gpu_energy_kwh, m.gpu_count) == ("none", 0.0, 0)
            assert m.ram_method == "codecarbon-dimm-estimate"
            assert (m.tracking_mode, m.country_iso_code, m.carbon_intensity_source) == ("machine", "FRA", "country mix")
            assert m.emissions_kg == pytest.approx(m.energy_kwh * m.carbon_intensity_g_per_kwh / 1000)
            assert 10 < m.carbon_intensity_g_per_kwh < 200  # France's grid mix, not Canada's by accident
            assert m.codecarbon_version and m.cpu_model and m.cpu_count and m.ram_total_gb
            assert m.input_tokens > 0
        generation = [m for m in queries if m.job_id == jobs[1].id]
        assert {m.output_tokens for m in generation} == {4 * 3}

    report = wattsweep("report", "--grid-intensity", "56", cwd=tmp_path, env_url=url)
    assert report.returncode == 0 and "text-classification" in report.stdout
    assert "95% confidence interval" in report.stdout and "recomputed at 56 g/kWh" in report.stdout
    assert "tiny:gpt2" in report.stdout and "builtin:prompts" in report.stdout
    status = wattsweep("status", "two-tasks", cwd=tmp_path, env_url=url)
    assert "runs: 4 done, 0 failed, 0 pending, 4 total" in status.stdout
