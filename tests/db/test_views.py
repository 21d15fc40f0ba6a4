"""The result views against aggregates computed by hand, on SQLite and Postgres."""

from __future__ import annotations

import statistics

import pytest
from alembic import command
from sqlalchemy import inspect, text

from db.migrate import alembic_config
from db.models import Measurement
from db.results.views import VIEW_COLUMNS, hardware_rows, model_kind_rows, model_rows, progress_row, task_rows
from tests.results_data import INTENSITY_G_PER_KWH, SeedModel, seed_sweep

A = [0.010, 0.020, 0.030, 0.060]  # model a: even count (median interpolates)
B = [0.100, 0.300, 0.200]  # model b: odd count
C = [0.001]  # another task, one run


@pytest.fixture
def seeded(sessions):
    with sessions.begin() as session:
        sweep_id = seed_sweep(session, name="views", models=[
            SeedModel("text-classification", "hub:org/a", A, num_parameters=110_000_000,
                      datasets=["builtin:reviews", "builtin:texts"], pending_runs=2),
            SeedModel("text-classification", "hub:org/b", B, kind="multi-purpose", idle_share=None),
            SeedModel("fill-mask", "hub:org/c", C, load_kwh=None),
        ])
        other = seed_sweep(session, name="views-other", models=[SeedModel("fill-mask", "hub:org/c", [0.003])],
                           cpu_method="cpu-load-estimate", gpu_method="power-sampling")
        empty = seed_sweep(session, name="views-empty", models=[])
    return sweep_id, other, empty


def test_view_columns_are_the_declared_ones(sessions, seeded):
    with sessions() as session:
        inspector = inspect(session.connection())
        names = set(inspector.get_view_names())
        for view, columns in VIEW_COLUMNS.items():
            assert view in names
            assert [c["name"] for c in inspector.get_columns(view)] == list(columns), view


def test_task_summary_matches_hand_computed(sessions, seeded):
    sweep_id, _, _ = seeded
    with sessions() as session:
        rows = {r["task"]: r for r in task_rows(session, sweep_id=sweep_id)}
    assert list(rows) == ["fill-mask", "text-classification"]  # by the median over models
    tc = rows["text-classification"]
    runs = A + B
    assert tc["models"] == 2 and tc["runs"] == 7 and tc["sweep_name"] == "views" and tc["hardware_class"] == "a100"
    assert tc["kwh_per_1k_mean"] == pytest.approx(statistics.mean(runs))
    assert tc["kwh_per_1k_std_pooled"] == pytest.approx(statistics.stdev(runs))
    assert (tc["kwh_per_1k_min"], tc["kwh_per_1k_max"]) == pytest.approx((0.010, 0.300))
    model_means = [statistics.mean(A), statistics.mean(B)]
    assert tc["kwh_per_1k_model_mean"] == pytest.approx(statistics.mean(model_means))
    assert tc["kwh_per_1k_model_median"] == pytest.approx(statistics.median(model_means))
    assert tc["kwh_per_1k_model_std"] == pytest.approx(statistics.stdev(model_means))
    # queries = 1000, so energy per window = kWh per 1,000 queries; model a has idle = 10%, b none.
    assert tc["energy_kwh_total"] == pytest.approx(sum(runs))
    assert tc["net_energy_kwh_total"] == pytest.approx(sum(A) * 0.9)
    assert tc["net_kwh_per_1k_mean"] == pytest.approx(statistics.mean(A) * 0.9)
    assert tc["idle_measured_runs"] == 4 and tc["queries_total"] == 7000
    assert tc["g_co2e_per_1k_mean"] == pytest.approx(statistics.mean(runs) * INTENSITY_G_PER_KWH)
    assert tc["duration_s_total"] == pytest.approx(70.0)
    assert tc["estimated_components"] == "ram"  # RAPL and the NVML energy counter measured the rest
    assert (tc["outlier_runs"], tc["unreliable_runs"]) == (0, 0)
    fm = rows["fill-mask"]
    assert (fm["models"], fm["runs"], fm["kwh_per_1k_std_pooled"], fm["kwh_per_1k_model_std"]) == (1, 1, None, None)
    assert fm["kwh_per_1k_model_median"] == pytest.approx(0.001)


def test_model_summary_matches_hand_computed(sessions, seeded):
    sweep_id, _, _ = seeded
    with sessions() as session:
        rows = {r["model"]: r for r in model_rows(session, sweep_id=sweep_id)}
        # a retried job loads its model again: the view shows the latest load window
        job_a = rows["hub:org/a"]["job_id"]
        session.execute(text("UPDATE measurements SET energy_kwh = 0.25 WHERE job_id = :j AND phase = 'load'"),
                        {"j": job_a})
        session.commit()
        relisted = {r["model"]: r for r in model_rows(session, sweep_id=sweep_id)}
    a, b = rows["hub:org/a"], rows["hub:org/b"]
    assert a["kwh_per_1k_median"] == pytest.approx(statistics.median(A))
    assert b["kwh_per_1k_median"] == pytest.approx(statistics.median(B))
    assert a["kwh_per_1k_std_pooled"] == pytest.approx(statistics.stdev(A))
    assert b["kwh_per_1k_mean"] == pytest.approx(statistics.mean(B))
    assert (a["runs"], a["datasets"], b["datasets"]) == (4, 2, 1)
    assert (a["num_parameters"], b["num_parameters"]) == (110_000_000, None)
    assert (a["model_kind"], b["model_kind"]) == ("task-specific", "multi-purpose")
    assert a["load_energy_kwh"] == pytest.approx(0.0005) and rows["hub:org/c"]["load_energy_kwh"] is None
    assert relisted["hub:org/a"]["load_energy_kwh"] == pytest.approx(0.25)
    assert b["net_kwh_per_1k_mean"] is None and b["idle_measured_runs"] == 0


def test_model_kind_summary_matches_hand_computed(sessions):
    ts = {"hub:ts/a": [0.010, 0.010], "hub:ts/b": [0.020, 0.040], "hub:ts/c": [0.020]}  # means 0.01, 0.03, 0.02
    mp = {"hub:mp/x": [0.4, 0.6], "hub:mp/y": [0.7]}  # means 0.5, 0.7: an even count, the median interpolates
    with sessions.begin() as session:
        sweep_id = seed_sweep(session, name="kinds", models=[
            *(SeedModel("text-classification", m, v) for m, v in ts.items()),
            *(SeedModel("text-classification", m, v, kind="multi-purpose") for m, v in mp.items()),
            SeedModel("summarization", "hub:mp/x", [0.9], kind="multi-purpose"),
        ])
        seed_sweep(session, name="kinds-other", models=[SeedModel("text-classification", "hub:ts/a", [5.0])])
    with sessions() as session:
        rows = {(r["task"], r["model_kind"]): r for r in model_kind_rows(session, sweep_id=sweep_id)}
    assert list(rows) == [("summarization", "multi-purpose"), ("text-classification", "multi-purpose"),
                          ("text-classification", "task-specific")]
    for (task, kind), runs in ((("text-classification", "task-specific"), ts),
                               (("text-classification", "multi-purpose"), mp)):
        row, means = rows[(task, kind)], [statistics.mean(v) for v in runs.values()]
        assert (row["sweep_name"], row["models"], row["runs"]) == ("kinds", len(runs), sum(map(len, runs.values())))
        assert row["kwh_per_1k_model_mean"] == pytest.approx(statistics.mean(means))
        assert row["kwh_per_1k_model_median"] == pytest.approx(statistics.median(means))
        assert (row["kwh_per_1k_model_min"], row["kwh_per_1k_model_max"]) == pytest.approx((min(means), max(means)))
        assert row["g_co2e_per_1k_model_mean"] == pytest.approx(statistics.mean(means) * INTENSITY_G_PER_KWH)
    assert rows[("text-classification", "task-specific")]["kwh_per_1k_model_median"] == pytest.approx(0.02)
    assert rows[("text-classification", "multi-purpose")]["kwh_per_1k_model_median"] == pytest.approx(0.6)
    one = rows[("summarization", "multi-purpose")]
    assert (one["models"], one["runs"], one["kwh_per_1k_model_median"]) == (1, 1, pytest.approx(0.9))


def test_hardware_summary_spans_sweeps_and_marks_estimates(sessions, seeded):
    with sessions() as session:
        rows = {r["task"]: r for r in hardware_rows(session) if r["hardware_class"] == "a100"}
    fm = rows["fill-mask"]
    assert (fm["sweeps"], fm["models"], fm["runs"]) == (2, 1, 2)
    assert fm["kwh_per_1k_mean"] == pytest.approx(0.002)
    assert fm["estimated_components"] == "cpu, gpu, ram"  # one of its sweeps estimated CPU and sampled GPU power
    assert fm["gpu_model"] == "NVIDIA A100-SXM4-80GB"


def test_progress_and_flat_runs(sessions, seeded):
    sweep_id, _, empty = seeded
    with sessions() as session:
        p = progress_row(session, sweep_id=sweep_id)
        e = progress_row(session, sweep_id=empty)
        runs = session.execute(text(
            "SELECT run_status, energy_kwh, net_energy_kwh, estimated_components, torch_version, load_energy_kwh "
            "FROM v_runs WHERE sweep_id = :s AND model = 'hub:org/a' ORDER BY run_id"), {"s": sweep_id}).all()
        assert task_rows(session, sweep_id=empty) == [] and model_rows(session, sweep_id=empty) == []
    assert (p["jobs_total"], p["jobs_done"], p["runs_total"], p["runs_done"], p["runs_pending"]) == (3, 3, 10, 8, 2)
    assert p["pct_runs_done"] == pytest.approx(80.0)
    assert p["query_energy_kwh_total"] == pytest.approx(sum(A + B + C))
    assert p["load_energy_kwh_total"] == pytest.approx(0.001)
    assert p["first_run_finished_at"] is not None and p["cancelled"] is False
    assert (e["jobs_total"], e["runs_total"], e["pct_runs_done"], e["query_energy_kwh_total"]) == (0, 0, None, None)
    assert len(runs) == 6  # 4 measured + 2 pending: the flat view lists every run
    assert runs[0] == ("done", pytest.approx(0.010), pytest.approx(0.009), "ram", "2.4.1", pytest.approx(0.0005))
    assert runs[-1][:4] == ("pending", None, None, None)


def test_outliers_and_unreliable_windows_are_counted(sessions, seeded):
    sweep_id, _, _ = seeded
    with sessions() as session:
        session.execute(Measurement.__table__.update().where(Measurement.kwh_per_1k_queries == 0.3)
                        .values(is_outlier=True, is_unreliable=True, flags="short-window"))
        session.commit()
        tc = next(r for r in task_rows(session, sweep_id=sweep_id) if r["task"] == "text-classification")
    assert (tc["outlier_runs"], tc["unreliable_runs"]) == (1, 1)


def test_downgrade_drops_the_views(sqlite_url):
    command.downgrade(alembic_config(sqlite_url), "0006")
    from db.session import get_engine

    assert not set(VIEW_COLUMNS) & set(inspect(get_engine(sqlite_url)).get_view_names())
    command.upgrade(alembic_config(sqlite_url), "head")
    assert set(VIEW_COLUMNS) <= set(inspect(get_engine(sqlite_url)).get_view_names())


def test_downgrade_to_0008_drops_only_the_model_kind_view(sqlite_url):
    from db.session import get_engine

    command.downgrade(alembic_config(sqlite_url), "0008")
    names = set(inspect(get_engine(sqlite_url)).get_view_names())
    assert "v_model_kind_summary" not in names
    later = {"v_model_kind_summary", "v_cell_summary", "v_decode", "v_serving", "v_serving_cells"}  # after 0008
    assert set(VIEW_COLUMNS) - later <= names
    command.upgrade(alembic_config(sqlite_url), "head")
    assert "v_model_kind_summary" in set(inspect(get_engine(sqlite_url)).get_view_names())
