"""`wattsweep import codecarbon`: CSVs from real CodeCarbon round-trip into the views; bad files import nothing."""

from __future__ import annotations

import csv
import logging

import pytest
from sqlalchemy import func, select, text

from db.models import Measurement, Sweep
from db.session import session_factory
from tests.helpers import V2_HEADER, import_codecarbon_v2, v2_row, wattsweep_cli
from tests.results_data import SeedModel, seed_sweep


def _work() -> int:
    return sum(i * i for i in range(200_000))


@pytest.fixture(scope="module")
def codecarbon_files(tmp_path_factory):
    """emissions.csv and a per-task file with "load model" / "query model" windows, written by CodeCarbon."""
    from codecarbon import OfflineEmissionsTracker

    folder = tmp_path_factory.mktemp("codecarbon")
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    common = dict(country_iso_code="USA", save_to_file=True, output_dir=str(folder), measure_power_secs=1,
                  log_level="error", allow_multiple_runs=True)
    tracker = OfflineEmissionsTracker(project_name="bert-base-uncased", **common)
    tracker.start()
    _work()
    tracker.stop()
    tracker = OfflineEmissionsTracker(project_name="distilbert-base-uncased", experiment_name="study", **common)
    tracker.start_task("load model")
    _work()
    tracker.stop_task()
    for _ in range(3):
        tracker.start_task("query model")
        _work()
        tracker.stop_task()
    tracker.stop()
    task_file = next(folder.glob("emissions_study_*.csv"))
    return folder / "emissions.csv", task_file


def _csv(path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_round_trip_with_real_codecarbon(codecarbon_files, database, request):
    url = request.getfixturevalue(f"{database}_url")
    emissions, per_task = codecarbon_files
    result = wattsweep_cli(url, "import", "codecarbon", str(emissions), str(per_task), "--task", "text-classification",
                           "--dataset", "sst2", "--sweep", "past-study", "--queries", "1000")
    assert result.exit_code == 0, result.output
    assert "only CodeCarbon's node-wide readings" in result.output
    task_rows = _csv(per_task)
    # CodeCarbon names repeated tasks "query model_<uuid>"
    queries = [r for r in task_rows if r["task_name"].startswith("query model")]
    loads = [r for r in task_rows if r["task_name"].startswith("load model")]
    assert len(queries) == 3 and len(loads) == 1
    with session_factory(url)() as session:
        sweep = session.scalars(select(Sweep).where(Sweep.name == "past-study")).one()
        assert sweep.mode == "imported" and len(sweep.spec["source_files"]) == 2
        runs = session.execute(text(
            "SELECT model, dataset, energy_kwh, emissions_kg, kwh_per_1k_queries, n_queries, estimated_components, "
            "codecarbon_version, load_energy_kwh, energy_basis, node_energy_kwh FROM v_runs WHERE sweep_id = :s "
            "ORDER BY model, repetition"),
            {"s": sweep.id}).all()
        models = {r.model: r for r in session.execute(text(
            "SELECT model, runs, kwh_per_1k_mean FROM v_model_summary WHERE sweep_id = :s"), {"s": sweep.id})}
    # emissions.csv: one row per tracker (the task-mode tracker's total too); the per-task file: 3 query windows.
    expected = [(r["project_name"], float(r["energy_consumed"])) for r in _csv(emissions)]
    expected += [("distilbert-base-uncased", float(r["energy_consumed"])) for r in queries]
    stored = sorted((r.model, r.energy_kwh) for r in runs)
    assert [m for m, _ in stored] == [m for m, _ in sorted(expected)]
    assert [e for _, e in stored] == pytest.approx([e for _, e in sorted(expected)], rel=1e-12)
    assert len(runs) == 5
    for r in runs:
        assert r.dataset == "sst2" and r.n_queries == 1000
        assert r.kwh_per_1k_queries == pytest.approx(r.energy_kwh)
        assert r.estimated_components == "cpu, ram" and r.codecarbon_version.startswith("3.")
        assert r.energy_basis == "node-wide" and r.node_energy_kwh == r.energy_kwh  # a log has no attributed share
    distil = [r for r in runs if r.model == "distilbert-base-uncased"]
    assert distil[0].load_energy_kwh == pytest.approx(float(loads[0]["energy_consumed"]))
    assert models["distilbert-base-uncased"].runs == 4 and models["bert-base-uncased"].runs == 1


def test_codecarbon_2_files_and_options(sqlite_url, tmp_path):
    import_codecarbon_v2(sqlite_url, tmp_path)
    with session_factory(sqlite_url)() as session:
        row = session.execute(text("SELECT sweep_name, hardware_class, runs, kwh_per_1k_mean, load_energy_kwh, "
                                   "estimated_components FROM v_model_summary")).one()
    assert row.sweep_name.startswith("imported-text-classification-")
    assert row.hardware_class == "nvidia-a100-sxm4-80gb"
    assert (row.runs, row.kwh_per_1k_mean, row.load_energy_kwh) == (3, pytest.approx(0.017 / 3), pytest.approx(0.02))
    assert row.estimated_components == "cpu, gpu, ram"  # CodeCarbon files do not say how GPU power was read
    # Imported figures appear in the report like measured ones, with the files they came from.
    assert "text-classification" in wattsweep_cli(sqlite_url, "report").output
    html = tmp_path / "report.html"
    assert wattsweep_cli(sqlite_url, "report", "-f", "html", "-o", str(html)).exit_code == 0
    assert "Imported from CodeCarbon files" in html.read_text() and "emissions_base_x.csv" in html.read_text()


BAD = {
    "short row": (lambda: [V2_HEADER, v2_row("m", "0.1"), "2023-10-12T15:22:11,m,7c1e,12.5"],
                  "bad.csv: line 3: 4 fields, the header has 31"),
    "not a number": (lambda: [V2_HEADER, v2_row("m", "0.1"), v2_row("m", "lots")],
                     "bad.csv: line 3, column 5 (emissions): not a number: 'lots'"),
    "negative energy": (lambda: [V2_HEADER, v2_row("m", "0.1").replace(",0.1,United", ",-0.1,United")],
                        "bad.csv: line 2, column 13 (energy_consumed): negative energy -0.1"),
    "missing column": (lambda: [V2_HEADER.replace("energy_consumed", "energy"), v2_row("m", "0.1")],
                       "bad.csv: line 1: no column 'energy_consumed'"),
    "empty project": (lambda: [V2_HEADER, v2_row("", "0.1")],
                      "bad.csv: line 2, column 2 (project_name): empty; give --model"),
    "bad timestamp": (lambda: [V2_HEADER, v2_row("m", "0.1").replace("2023-10-12T15:22:11", "yesterday")],
                      "bad.csv: line 2, column 1 (timestamp): not an ISO date and time"),
}


@pytest.mark.parametrize("case", BAD)
def test_malformed_file_imports_nothing(sqlite_url, tmp_path, case):
    lines, message = BAD[case]
    good = tmp_path / "good.csv"
    good.write_text("\n".join([V2_HEADER, v2_row("m", "0.1")]) + "\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines()) + "\n")
    result = wattsweep_cli(sqlite_url, "import", "codecarbon", str(good), str(bad), "--task", "fill-mask")
    assert result.exit_code == 2
    assert message in " ".join(result.output.split()) and "nothing imported" in result.output
    with session_factory(sqlite_url)() as session:
        assert session.scalar(select(func.count()).select_from(Sweep)) == 0
        assert session.scalar(select(func.count()).select_from(Measurement)) == 0


def test_refusals(sqlite_url, tmp_path):
    with session_factory(sqlite_url).begin() as session:
        seed_sweep(session, name="measured", models=[SeedModel("fill-mask", "m", [0.1])])
    good = tmp_path / "emissions.csv"
    good.write_text("\n".join([V2_HEADER, v2_row("m", "0.1")]) + "\n")
    result = wattsweep_cli(sqlite_url, "import", "codecarbon", str(good), "--task", "fill-mask", "--sweep", "measured")
    assert result.exit_code == 2 and "was measured by wattsweep" in result.output
    result = wattsweep_cli(sqlite_url, "import", "codecarbon", str(good), "--task", "fill-mask", "--sweep", "old")
    assert result.exit_code == 0
    result = wattsweep_cli(sqlite_url, "import", "codecarbon", str(good), "--task", "fill-mask", "--sweep", "old")
    assert result.exit_code == 2 and "already imported" in result.output
    result = wattsweep_cli(sqlite_url, "import", "codecarbon", str(good), "--task", "fillmask")
    assert result.exit_code == 2 and "did you mean fill-mask" in result.output
    result = wattsweep_cli(sqlite_url, "import", "codecarbon", str(tmp_path / "missing.csv"), "--task", "fill-mask")
    assert result.exit_code == 2 and "missing.csv: cannot read" in result.output
