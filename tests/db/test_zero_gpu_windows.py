"""A window with no GPU reading (`gpu-energy-zero`) is kept out of every headline figure (issue 18, defect 8).

The same sweep with and without one such window among good ones: every summary view and `report --format json`
give the same figures; only `excluded_runs` says it was there.
"""

from __future__ import annotations

import json
import math

from sqlalchemy import delete, insert, select, text, update

from db.models import Job, Measurement, Run, ServingRun
from tests.helpers import wattsweep_cli
from tests.results_data import SeedModel, seed_sweep

SWEEP_VIEWS = ("v_model_summary", "v_model_kind_summary", "v_task_summary", "v_cell_summary", "v_sweep_progress",
               "v_serving_cells")
ALL_SWEEPS_VIEWS = ("v_hardware_summary",)  # the database holds this one sweep
COUNTS = {"excluded_runs"}  # where the excluded window shows


def _seed(session) -> tuple[int, int]:
    """A sweep of good windows (two served), and one more run of the first cell whose window has no GPU reading:
    (sweep id, that window's id)."""
    sweep_id = seed_sweep(session, name="zero", models=[
        SeedModel("text-classification", "hub:org/small", [0.002, 0.0024, 0.0021, 0.0023, 0.0022, 0.0025],
                  datasets=["a", "b"], latency_p95_s=0.05),
        SeedModel("text-classification", "hub:org/large", [0.09, 0.1], kind="multi-purpose", latency_p95_s=1.5),
        SeedModel("text-generation", "hub:org/chat", [0.3, 0.32, 0.31], latency_p95_s=0.7),
    ])
    session.execute(update(Measurement).where(Measurement.id % 2 == 0).values(  # some attributed headlines too
        cpu_energy_attributed_kwh=Measurement.cpu_energy_kwh / 2, ram_energy_attributed_kwh=Measurement.ram_energy_kwh))
    job_id, chat = session.scalars(select(Job.id).where(Job.sweep_id == sweep_id).order_by(Job.id)).all()[0::2]
    good = session.scalars(select(Measurement).where(Measurement.job_id == job_id, Measurement.phase == "query")
                           .order_by(Measurement.id)).first()
    run_id = session.scalars(insert(Run).returning(Run.id), [dict(
        job_id=job_id, dataset="a", repetition=9, n_queries=1000, batch_size=1, warmup=0, status="done",
        worker_id=good.worker_id, finished_at=good.started_at)]).one()
    columns = {c.key: getattr(good, c.key) for c in Measurement.__table__.columns if c.key != "id"}
    # What the meter stores when the GPU had no energy counter and no power reading: GPU energy 0, flagged.
    zero = Measurement(**columns | dict(run_id=run_id, gpu_energy_kwh=0.0, energy_kwh=good.energy_kwh * 0.3,
                                        cpu_energy_attributed_kwh=None, ram_energy_attributed_kwh=None,
                                        kwh_per_1k_queries=good.energy_kwh * 0.3, gpu_method="power-sampling",
                                        flags="gpu-counter-coarse,gpu-energy-zero", is_unreliable=True))
    session.add(zero)
    session.flush()
    served = session.scalars(select(Measurement).where(Measurement.job_id.in_([job_id, chat]),
                                                       Measurement.phase == "query")).all()
    for window in served:  # each query window of two jobs is a served run, the excluded one too
        window.shard_id = window.id
        session.add(ServingRun(job_id=window.job_id, run_id=window.run_id, shard_id=window.id, concurrency=4,
                               requests=20, output_tokens=2000, steady_duration_s=8.0,
                               steady_gpu_energy_kwh=window.gpu_energy_kwh * 0.8,
                               steady_cpu_energy_kwh=window.cpu_energy_kwh * 0.8,
                               steady_ram_energy_kwh=window.ram_energy_kwh * 0.8, steady_output_tokens=1600.0,
                               steady_requests=16.0, itl_p99_s=0.02 + window.id / 1000, ttft_p50_s=0.1))
    return sweep_id, zero.id


def _views(session, sweep_id: int) -> dict[str, list[dict]]:
    rows = {view: session.execute(text(f"SELECT * FROM {view} WHERE sweep_id = :s"), {"s": sweep_id}).mappings()
            for view in SWEEP_VIEWS}
    rows |= {view: session.execute(text(f"SELECT * FROM {view}")).mappings() for view in ALL_SWEEPS_VIEWS}
    return {view: sorted((dict(row) for row in result), key=repr) for view, result in rows.items()}


def _report(url: str) -> dict:
    result = wattsweep_cli(url, "report", "zero", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    del document["generated_at"], document["provenance"]  # provenance counts every window's set-up, this one's too
    return document


def _without_counts(value, counts: list):
    """`value` with the COUNTS keys taken out (their values appended to `counts`), floats rounded to 12 digits."""
    if isinstance(value, dict):
        counts.extend(value[key] for key in COUNTS & value.keys())
        return {k: _without_counts(v, counts) for k, v in value.items() if k not in COUNTS}
    if isinstance(value, list):
        return [_without_counts(v, counts) for v in value]
    if isinstance(value, float) and math.isfinite(value) and value:
        return float(f"{value:.12e}")  # a different summation order may move the last bits
    return value


def test_a_window_without_gpu_reading_changes_no_headline_figure(sessions, database_url, tmp_path):
    with sessions.begin() as session:
        sweep_id, zero_id = _seed(session)
    with sessions() as session:
        with_zero = _views(session, sweep_id)
    report_with = _report(database_url)
    table = wattsweep_cli(database_url, "report", "zero").output
    assert "1 excluded" in table and "1 run(s) excluded" in " ".join(table.split())
    assert wattsweep_cli(database_url, "report", "zero", "-f", "html", "--out", str(tmp_path / "r.html")).exit_code == 0
    html = (tmp_path / "r.html").read_text()
    assert "outliers / unreliable / excluded" in html and "1 run(s) excluded" in html
    with sessions.begin() as session:
        session.execute(delete(ServingRun).where(ServingRun.shard_id == zero_id))
        session.execute(delete(Measurement).where(Measurement.id == zero_id))  # its run stays done, unmeasured
    with sessions() as session:
        without = _views(session, sweep_id)
    report_without = _report(database_url)

    counted, none = [], []
    assert _without_counts(with_zero, counted) == _without_counts(without, none)
    assert _without_counts(report_with, counted) == _without_counts(report_without, none)
    # It is counted where reliability shows: its job, cell, task, hardware and served cell, in the views and the
    # report (models, tasks, cells, serving, the energy note); nowhere without it.
    assert sorted(counted) == [0] * (len(counted) - 10) + [1] * 10 and set(none) == {0}
    small = next(row for row in with_zero["v_model_summary"] if row["model"] == "hub:org/small")
    assert (small["runs"], small["excluded_runs"], small["unreliable_runs"]) == (6, 1, 0)


def test_a_window_without_gpu_reading_is_no_outlier_and_moves_no_other_flag(sessions):
    from db.results.stats import reflag_cells

    with sessions.begin() as session:
        sweep_id, zero_id = _seed(session)
        job_id = session.get(Measurement, zero_id).job_id
        # The cell "a" of hub:org/small: three good windows, and more so that outliers are looked for (5 or more).
        good = session.scalars(select(Measurement).where(Measurement.job_id == job_id, Measurement.phase == "query",
                                                         Measurement.id != zero_id)).first()
        for repetition in (10, 11):
            run_id = session.scalars(insert(Run).returning(Run.id), [dict(
                job_id=job_id, dataset="a", repetition=repetition, n_queries=1000, batch_size=1, warmup=0,
                status="done")]).one()
            session.add(Measurement(**{c.key: getattr(good, c.key) for c in Measurement.__table__.columns
                                       if c.key not in ("id", "shard_id")} | {"run_id": run_id}))
        session.flush()
        reflag_cells(session, job_ids=[job_id])
    with sessions() as session:
        flagged = dict(session.execute(select(Measurement.id, Measurement.is_outlier).where(
            Measurement.job_id == job_id, Measurement.phase == "query")).all())
    assert not any(flagged.values())  # the excluded one is 0.3x its cell's median: an outlier, were it counted
