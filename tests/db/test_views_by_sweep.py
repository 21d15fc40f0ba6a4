"""Views that filter by sweep before they aggregate (0021) give the rows the older versions gave, sweep by sweep."""

from __future__ import annotations

import math
import random

from sqlalchemy import text, update

from db.models import Measurement
from migrations.views import definition
from tests.results_data import SeedModel, seed_sweep

TASKS = ("text-classification", "text-generation", "image-to-text")


def _random_sweep(session, rng: random.Random, name: str) -> int:
    models = [SeedModel(rng.choice(TASKS), f"hub:org/{name}-model-{m}",
                        [rng.lognormvariate(-7, 1) for _ in range(rng.randint(1, 12))],
                        kind=rng.choice(("task-specific", "multi-purpose")), num_parameters=rng.randint(10**6, 10**9),
                        datasets=rng.sample(["a", "b", "c"], rng.randint(1, 3)),
                        idle_share=rng.choice((None, 0.1, 0.3)), load_kwh=rng.choice((None, 0.0005, 0.002)),
                        pending_runs=rng.randint(0, 2), latency_p95_s=rng.choice((None, 0.05, 1.5)))
              for m in range(rng.randint(1, 6))]
    return seed_sweep(session, name=name, models=models)


def _rows(session, view: str, sweep_id: int) -> list[dict]:
    return [dict(row) for row in session.execute(
        text(f"SELECT * FROM {view} WHERE sweep_id = :s ORDER BY job_id"), {"s": sweep_id}).mappings()]


def _same(new: list[dict], old: list[dict]) -> None:
    """Column by column; floats to the last bits a different summation order can move (1e-12 relative)."""
    assert len(new) == len(old) > 0
    for a, b in zip(new, old, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], float) and isinstance(b[key], float):
                assert math.isclose(a[key], b[key], rel_tol=1e-12, abs_tol=0.0), (key, a[key], b[key])
            else:
                assert a[key] == b[key], (key, a[key], b[key])


def test_model_summary_by_sweep_gives_what_0014_gave_on_random_sweeps(sessions):
    rng = random.Random(20)
    with sessions.begin() as session:
        sweep_ids = [_random_sweep(session, rng, f"r{i}") for i in range(4)]
        # Windows with attributed shares and one with a second load: the headline and latest-load paths too.
        session.execute(update(Measurement).where(Measurement.id % 3 == 0).values(
            cpu_energy_attributed_kwh=Measurement.cpu_energy_kwh / 2,
            ram_energy_attributed_kwh=Measurement.ram_energy_kwh / 4))
    with sessions.begin() as session:
        dialect = session.get_bind().dialect.name
        old = definition("v_model_summary", "0014", dialect).replace("CREATE VIEW v_model_summary ",
                                                                    "CREATE VIEW v_model_summary_0014 ")
        session.execute(text(old))
    with sessions() as session:
        for sweep_id in sweep_ids:
            new = _rows(session, "v_model_summary", sweep_id)
            assert {row.pop("excluded_runs") for row in new} == {0}  # 0029's count: no window without a GPU reading
            _same(new, _rows(session, "v_model_summary_0014", sweep_id))
        assert {row["sweep_id"] for row in session.execute(text("SELECT sweep_id FROM v_model_summary")).mappings()} \
            == set(sweep_ids)  # and every sweep is still there without a filter


def test_the_head_revision_has_the_by_sweep_model_summary(sessions):
    with sessions() as session:
        dialect = session.get_bind().dialect.name
        stored = session.execute(text(
            "SELECT pg_get_viewdef('v_model_summary'::regclass)" if dialect == "postgresql"
            else "SELECT sql FROM sqlite_master WHERE name = 'v_model_summary'")).scalar()
    # 0021 joined each per-job subquery on the sweep; 0032 reads job_figures (kept in step with the windows), so that
    # no window of any sweep is aggregated at query time
    assert "job_figures" in stored and "measurements" not in stored


def test_provenance_grouped_by_worker_first_gives_what_grouping_v_runs_gave(sessions):
    from db.results.views import PROVENANCE_COLUMNS, provenance_rows

    rng = random.Random(7)
    with sessions.begin() as session:
        sweep_ids = []
        for i in range(3):  # two workers, two CPU methods, in one sweep: several set-ups, one of them twice
            sweep_ids.append(seed_sweep(session, name=f"p{i}", worker_id=rng.choice(("gpu0@node1", "gpu1@node2")),
                                        cpu_method=rng.choice(("rapl", "constant")),
                                        models=[SeedModel("text-classification", f"hub:org/p{i}-{m}", [0.001] * 3)
                                                for m in range(2)]))
        session.execute(update(Measurement).where(Measurement.id % 4 == 0).values(
            hostname=None, carbon_intensity_g_per_kwh=Measurement.carbon_intensity_g_per_kwh + 10))
        session.execute(update(Measurement).where(Measurement.id % 5 == 0).values(worker_id=None))  # the run's
    keys = ", ".join(PROVENANCE_COLUMNS)
    old = text(f"SELECT {keys}, count(*) AS runs, min(carbon_intensity_g_per_kwh) AS intensity_min, "
               f"max(carbon_intensity_g_per_kwh) AS intensity_max FROM v_runs "
               f"WHERE sweep_id = :s AND measurement_id IS NOT NULL GROUP BY {keys}")
    with sessions() as session:
        for sweep_id in sweep_ids:
            new = provenance_rows(session, sweep_id=sweep_id)
            before = [dict(row) for row in session.execute(old, {"s": sweep_id}).mappings()]
            assert sorted(map(repr, (tuple(sorted(r.items())) for r in new))) == \
                sorted(map(repr, (tuple(sorted(r.items())) for r in before)))
            assert [r["runs"] for r in new] == sorted((r["runs"] for r in new), reverse=True)
